"""daninet-rating build: trials from sidecars, the blinded rater folder, the key, errors."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.rating.build import build_study
from daninet_pipeline.errors import RatingError
from daninet_pipeline.rating.trials import find_trials

from .conftest import AFFINE, write_simulated

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunks(path: Path) -> list[str]:
    """Chunk types of a PNG file, in order."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append(kind.decode("ascii"))
        pos += 12 + length
    return chunks


def assert_rater_folder_blind(study_dir: Path, key: pd.DataFrame) -> None:
    """Nothing under rater/ names or encodes the key: no configuration, subject, session or
    candidate file name in any file's name or content, no sidecar, no PNG text chunk."""
    rater = study_dir / "rater"
    files = [p for p in rater.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".html", ".png", ".txt"}
    secrets = set()
    for rec in key.itertuples(index=False):
        secrets |= {rec.configuration, re.sub(r"[^A-Za-z0-9]", "", rec.configuration),
                    f"sub-{rec.subject}", f"ses-{rec.session}", Path(rec.file).name, rec.file}
    secrets |= {"desc-", "preproc", ".nii", "Synthetic", "SimulatedAge", "Model"}
    secrets.discard("real")
    for path in files:
        if path.suffix == ".png":
            chunks = png_chunks(path)  # no tEXt/iTXt/zTXt/tIME/eXIf: pixels only
            assert chunks[0] == "IHDR" and chunks[-1] == "IEND" and set(chunks[1:-1]) == {"IDAT"}
            text = path.name
        else:
            text = path.name + "\n" + path.read_text()
        for secret in secrets:
            assert not re.search(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", text), (path, secret)
    assert not (rater / "key.tsv").exists() and (study_dir / "key.tsv").is_file()


def test_build_writes_a_blinded_study(rating_derivatives, tmp_path):
    _, out = rating_derivatives
    info = build_study(out, tmp_path / "study", seed=3)
    assert info["Trials"] == 6 and info["Subjects"] == 3
    assert sorted(info["Configurations"]) == ["base", "full-residual", "identity"]
    key = pd.read_csv(tmp_path / "study" / "key.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert set(key["study_id"]) == {info["StudyID"]}
    assert key.groupby("trial_id")["role"].apply(list).map(sorted).map(tuple).unique().tolist() == \
        [("candidate", "candidate", "candidate", "real")]
    # identity is the baseline named in the sidecars' Sources; the real image is the follow-up
    ident = key[key["configuration"] == "identity"]
    assert ident["file"].str.endswith("ses-M000_space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz").all()
    real = key[key["role"] == "real"]
    assert not real["file"].str.contains("ses-M000").any()
    assert sorted(real["age"].astype(float)) == [73.0, 74.0, 75.0, 76.5, 77.5, 78.5]
    # candidates match the follow-up's age
    sims = key[key["configuration"].isin(["base", "full-residual"])]
    for rec in sims.itertuples(index=False):
        side = json.loads((out / rec.file.replace(".nii.gz", ".json")).read_text())
        assert abs(side["SimulatedAge"] - float(rec.age)) <= 0.05
    # the build order is shuffled per trial
    orders = {tuple(g.sort_values("position")["configuration"]) for _, g in key[key["role"] == "candidate"].groupby("trial_id")}
    assert len(orders) > 1
    # every shown image has its three views
    pngs = sorted((tmp_path / "study" / "rater" / "img").glob("*.png"))
    assert len(pngs) == 6 * 4 * 3
    assert {p.name.split("_")[0] for p in pngs} == set(key["image_id"])
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    assert study["StudyID"] == info["StudyID"] and study["Seed"] == 3
    page = (tmp_path / "study" / "rater" / "index.html").read_text()
    assert info["StudyID"] in page and "http" not in page.replace("http-equiv", "")
    assert_rater_folder_blind(tmp_path / "study", key)


def test_slices_share_one_window_and_differ_between_candidates(rating_derivatives, tmp_path):
    from PIL import Image

    _, out = rating_derivatives
    build_study(out, tmp_path / "study", seed=0)
    key = pd.read_csv(tmp_path / "study" / "key.tsv", sep="\t", dtype=str, keep_default_na=False)
    trial = key[key["trial_id"] == key["trial_id"].iloc[0]]
    strips = {rec.configuration: np.asarray(Image.open(tmp_path / "study" / "rater" / "img" / f"{rec.image_id}_axial.png"))
              for rec in trial.itertuples(index=False)}
    shapes = {s.shape for s in strips.values()}
    assert len(shapes) == 1
    assert strips["real"].max() == 255 and strips["real"].min() == 0
    assert not np.array_equal(strips["base"], strips["full-residual"])


def test_models_subjects_and_trials_select(rating_derivatives, tmp_path):
    _, out = rating_derivatives
    trials = find_trials(out, models=["base", "identity"], subjects=["sub-02"])
    assert [t.subject for t in trials] == ["02", "02"]
    assert all([c.configuration for c in t.candidates] == ["base", "identity"] for t in trials)
    a = build_study(out, tmp_path / "a", n_trials=4, seed=9)
    b = build_study(out, tmp_path / "b", n_trials=4, seed=9)
    key_a = pd.read_csv(tmp_path / "a" / "key.tsv", sep="\t", dtype=str)
    key_b = pd.read_csv(tmp_path / "b" / "key.tsv", sep="\t", dtype=str)
    assert a["Trials"] == 4 and a["StudyID"] != b["StudyID"]
    cols = ["subject", "session", "configuration", "position"]
    assert key_a[cols].equals(key_b[cols])  # the seed fixes the draw and the build order
    one = build_study(out, tmp_path / "c", one_per_subject=True, seed=2)
    real = pd.read_csv(tmp_path / "c" / "key.tsv", sep="\t", dtype=str).query("role == 'real'")
    assert one["Trials"] == 3 and sorted(real["subject"]) == ["01", "02", "03"]


def test_build_errors_are_one_line(rating_derivatives, tmp_path):
    bids, out = rating_derivatives
    with pytest.raises(RatingError, match=r"no simulated images of fancy \(found: base, full-residual\)"):
        find_trials(out, models=["fancy"])
    with pytest.raises(RatingError, match="no follow-up session has two or more candidates"):
        find_trials(out, models=["base"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(RatingError, match="exists and is not empty"):
        build_study(out, tmp_path / "full")
    # a sidecar written before models were named
    side = next(out.glob("sub-01/ses-M000/anat/*desc-simbase*_T1w.json"))
    meta = json.loads(side.read_text())
    meta["Model"] = {"File": "model.pt", "SHA256": "0" * 64}
    side.write_text(json.dumps(meta))
    proc = subprocess.run([sys.executable, "-m", "daninet_pipeline.rating", "build", str(out), str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"daninet-rating: error: {side}: no Model.Name in the sidecar "
                                                "(written before models were named: simulate again with this version)"]
    assert not (tmp_path / "s").exists()


def test_grid_mismatch_and_moved_raw_dataset(rating_derivatives, tmp_path):
    bids, out = rating_derivatives
    raw = bids / "sub-01" / "ses-M000" / "anat" / "sub-01_ses-M000_T1w.nii.gz"
    bad = write_simulated(out, bids, subject="01", base_session="M000", raw_t1w=raw, model="small",
                          age=73.0, source_age=71.0, data=np.ones((5, 5, 5), np.float32))
    with pytest.raises(RatingError, match=f"{bad}: grid"):
        build_study(out, tmp_path / "study", models=["small", "identity"])
    assert not list(tmp_path.glob(".study.partial-*"))
    moved = bids.rename(tmp_path / "moved")
    with pytest.raises(RatingError, match="give it with --bids-dir"):
        find_trials(out)
    assert len(find_trials(out, bids_dir=moved, models=["base", "identity"])) == 6


def test_counterfactual_and_native_images_are_not_candidates(rating_derivatives):
    bids, out = rating_derivatives
    for side in out.glob("sub-01/ses-M000/anat/*desc-simbase*_T1w.json"):
        meta = json.loads(side.read_text())
        meta["CounterfactualDiagnosis"] = True
        side.write_text(json.dumps(meta))
    for side in out.glob("sub-02/ses-M000/anat/*desc-simbase*_T1w.json"):
        meta = json.loads(side.read_text())
        meta["SpatialReference"] = "orig"
        side.write_text(json.dumps(meta))
    trials = find_trials(out, models=["base", "full-residual"])
    assert sorted({t.subject for t in trials}) == ["03"]
    assert nib.load(trials[0].candidates[0].image).shape == (14, 16, 12)
    assert np.allclose(nib.load(trials[0].followup).affine, AFFINE)


def test_views_are_oriented_and_capped_in_size():
    from daninet_pipeline.rating.render import render_scale, trial_layout, view_strip

    data = np.zeros((40, 50, 30), np.float32)
    data[5:35, 5:45, 5:25] = 10.0
    data[30:35, 40:45, 20:25] = 100.0  # right, anterior, superior corner
    layout = trial_layout(data, None, (1.0, 1.0, 1.0), n_slices=4)
    assert layout.box == ((3, 37), (3, 47), (3, 27))
    axial = view_strip(data, layout, "axial")
    n = len(layout.slices["axial"])
    frame = axial[(n - 1) * axial.shape[0] // n:]  # the most superior slice
    rows, cols = np.nonzero(frame == 255)
    assert rows.max() < frame.shape[0] / 2 and cols.min() > frame.shape[1] / 2  # anterior up, right on the right
    sagittal = view_strip(data, layout, "sagittal")
    frame = sagittal[-sagittal.shape[0] // len(layout.slices["sagittal"]):]  # the rightmost slice
    rows, cols = np.nonzero(frame == 255)
    assert rows.max() < frame.shape[0] / 2 and cols.min() > frame.shape[1] / 2  # superior up, anterior right
    scale = render_scale(layout, 22)
    assert scale == pytest.approx(0.5)
    small = view_strip(data, layout, "axial", scale=scale)
    assert small.shape == (n * 22, 17) and small.dtype == np.uint8


def test_build_command_line(rating_derivatives, tmp_path):
    _, out = rating_derivatives
    proc = subprocess.run([sys.executable, "-m", "daninet_pipeline.rating", "build", str(out), str(tmp_path / "s"),
                           "--models", "base", "identity", "--subjects", "01", "sub-03", "--trials", "3",
                           "--seed", "4", "--slices", "5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    study = json.loads((tmp_path / "s" / "study.json").read_text())
    assert f"study {study['StudyID']}: 3 trials of 2 subjects, configurations base, identity" in proc.stdout
    assert study["SlicesPerView"] == 5 and study["Seed"] == 4
    assert len(list((tmp_path / "s" / "rater" / "img").glob("*.png"))) == 3 * 3 * 3
