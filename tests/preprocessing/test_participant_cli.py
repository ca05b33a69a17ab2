"""The participant level end to end on small demo data: derivatives, accuracy against the
truth, failure isolation (a truncated and a 4D session), and the cache (a rerun runs no
node again)."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.cli.run import main
from daninet_pipeline.preprocessing import read_itk_affine
from daninet_pipeline.preprocessing.transforms import mean_displacement
from daninet_pipeline.qc.measures import QC_MEASURES

from .conftest import demo_sessions, dice

TEMPLATE = "MNI152NLin2009aSym"


@pytest.fixture(scope="module")
def bids_with_bad_sessions(demo_bids, tmp_path_factory):
    """One subject of the demo data with 4 sessions: 2 good, 1 truncated, 1 4D."""
    sessions = demo_sessions(demo_bids)
    subject = next(s.subject for s in sessions
                   if sum(t.subject == s.subject for t in sessions) >= 4)
    mine = [s for s in sessions if s.subject == subject][:4]
    root = tmp_path_factory.mktemp("cli") / "bids"
    shutil.copytree(demo_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    for other in root.glob("sub-*"):
        if other.is_dir() and other.name != f"sub-{subject}":
            shutil.rmtree(other)
    for extra in sorted((root / f"sub-{subject}").glob("ses-*"))[4:]:
        shutil.rmtree(extra)
    bad_cut = root / mine[2].t1w.relative_to(demo_bids)
    raw = bad_cut.read_bytes()
    bad_cut.write_bytes(raw[: len(raw) // 3])
    bad_4d = root / mine[3].t1w.relative_to(demo_bids)
    img = nib.load(bad_4d)
    data = np.asarray(img.dataobj)
    nib.Nifti1Image(np.stack([data, data], -1), img.affine).to_filename(bad_4d)
    return root, subject, mine


def _result_mtimes(work, sessions):
    """Result files of the sessions' computing nodes (the sinks run on every run)."""
    out = {}
    for ses in sessions:
        for path in work.rglob("result_*.pklz"):
            if f"preproc_ses_{ses.session}_wf" in str(path):
                out[str(path)] = path.stat().st_mtime_ns
    return out


def test_participant_level(bids_with_bad_sessions, tmp_path, capsys):
    root, subject, sessions = bids_with_bad_sessions
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [str(root), str(out), "participant", "--participant-label", subject,
            "--skip-bids-validation", "--nprocs", "2", "--omp-nthreads", "1", "-w", str(work)]
    assert main(argv) == 1
    printed = capsys.readouterr().out
    good, cut, four_d = sessions[:2], sessions[2], sessions[3]
    # one line per failed session, with the reason and an existing crash file
    for bad, reason in ((cut, "cannot read the voxel data"), (four_d, "4D image with 2 volumes")):
        line = next(ln for ln in printed.splitlines() if f"ses-{bad.session}: FAILED" in ln)
        assert reason in line
        crash = line.rsplit("crash file: ", 1)[1].rstrip(")")
        assert crash.endswith(".txt") and open(crash).read()
    assert f"2/4 T1w images pre-processed" in printed
    assert f"sub-{subject} ses-{cut.session}" in printed.splitlines()[-1]

    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Version"]
    for ses in good:
        anat = out / f"sub-{subject}" / f"ses-{ses.session}" / "anat"
        stem = f"sub-{subject}_ses-{ses.session}"
        expected = {f"{stem}_space-{TEMPLATE}_desc-preproc_T1w.nii.gz",
                    f"{stem}_space-{TEMPLATE}_desc-preproc_T1w.json",
                    f"{stem}_desc-brain_mask.nii.gz", f"{stem}_desc-brain_mask.json",
                    f"{stem}_space-{TEMPLATE}_desc-brain_mask.nii.gz",
                    f"{stem}_space-{TEMPLATE}_desc-brain_mask.json",
                    f"{stem}_from-T1w_to-{TEMPLATE}_mode-image_xfm.txt",
                    f"{stem}_from-T1w_to-{TEMPLATE}_mode-image_xfm.json",
                    f"{stem}_desc-qc_T1w.tsv"}
        assert {p.name for p in anat.iterdir()} == expected
        # issue 13, item 5: every session's QC measures, one row
        qc = pd.read_csv(anat / f"{stem}_desc-qc_T1w.tsv", sep="\t")
        assert list(qc.columns) == list(QC_MEASURES) and len(qc) == 1
        true_ml = (np.asarray(nib.load(ses.true_mask).dataobj) > 0).sum() * abs(
            np.linalg.det(nib.load(ses.true_mask).affine[:3, :3])) / 1000
        assert abs(qc.loc[0, "brain_volume_ml"] / true_ml - 1) < 0.1
        assert qc.loc[0, "mask_dice"] > 0.9 and qc.loc[0, "template_corr"] > 0.5
        assert 0 < qc.loc[0, "wm_cov"] < 0.3 and qc.loc[0, "snr_wm"] > 3 and qc.loc[0, "cnr"] > 0.5
        assert (out / f"sub-{subject}" / "figures" /
                f"{stem}_space-{TEMPLATE}_desc-preproc_T1w.svg").is_file()
        meta = json.loads((anat / f"{stem}_space-{TEMPLATE}_desc-preproc_T1w.json").read_text())
        assert meta["Sources"] == [f"bids:raw:{ses.t1w.relative_to(ses.t1w.parents[3])}"]
        assert meta["SkullStripped"] is True and "SimpleITK" in meta["Software"]
        preproc = nib.load(anat / f"{stem}_space-{TEMPLATE}_desc-preproc_T1w.nii.gz")
        assert preproc.shape == (197, 233, 189)
        # accuracy against the truth (small, 2 mm data: looser than the full-size targets)
        true_mask = nib.load(ses.true_mask)
        mask = nib.load(anat / f"{stem}_desc-brain_mask.nii.gz")
        assert mask.shape == true_mask.shape and np.allclose(mask.affine, true_mask.affine)
        assert dice(mask, true_mask) > 0.95
        xfm = read_itk_affine(anat / f"{stem}_from-T1w_to-{TEMPLATE}_mode-image_xfm.txt")
        assert mean_displacement(xfm, ses.true_xfm, true_mask) < 2.0
    assert not (out / f"sub-{subject}" / f"ses-{cut.session}").exists()
    assert not list(out.rglob(".daninet-staging-*"))
    from daninet_pipeline.bids import run_validator

    assert run_validator(out)["errors"] == []  # the derivatives are valid BIDS

    # rerun: no computing node of the good sessions runs again; the sinks run and leave
    # the outputs untouched (same content)
    before = _result_mtimes(work, good)
    outputs = {str(p): p.stat().st_mtime_ns for p in (out / f"sub-{subject}").rglob("*.*")}
    assert len(before) >= 2 * 10
    assert main(argv) == 1
    assert _result_mtimes(work, good) == before
    assert {str(p): p.stat().st_mtime_ns for p in (out / f"sub-{subject}").rglob("*.*")} == outputs
