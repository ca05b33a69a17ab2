"""Issue 13, item 5: QC measures per session, the group's table with outliers flagged,
and the exclusion file."""

from __future__ import annotations

import numpy as np
import nibabel as nib
import pandas as pd
import pytest

from daninet_pipeline.data.resources import load_template, load_template_mask
from daninet_pipeline.errors import DaniNetError
from daninet_pipeline.qc import (
    QC_MEASURES,
    apply_exclusions,
    exclusions_from_flags,
    flag_outliers,
    read_exclusions,
    session_qc,
)


@pytest.fixture(scope="module")
def template_session():
    """The template as a perfect session: its own mask, noise added."""
    tpl, mask = load_template(), load_template_mask()
    data = np.asarray(tpl.dataobj, np.float32)
    brain = (np.asarray(mask.dataobj) > 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    noisy = data + rng.normal(0, 0.02 * data[brain > 0].mean(), data.shape).astype(np.float32)
    return tpl, mask, nib.Nifti1Image(noisy * brain, tpl.affine), nib.Nifti1Image(brain, tpl.affine)


def test_session_qc_measures_alignment_bias_and_noise(template_session):
    tpl, tmask, img, brain = template_session
    good = session_qc(img, brain, brain, tpl, tmask)
    assert list(good) == list(QC_MEASURES)
    voxel_ml = abs(np.linalg.det(tpl.affine[:3, :3])) / 1000
    assert good["brain_volume_ml"] == pytest.approx((np.asarray(brain.dataobj) > 0).sum() * voxel_ml)
    assert good["mask_dice"] == pytest.approx(1.0)
    assert good["template_corr"] > 0.95
    assert good["cnr"] > 1 and good["snr_wm"] > 5

    data = np.asarray(img.dataobj)
    # a bias field left in the image: residual_bias rises, by more than the voxel noise would
    x = np.linspace(-1, 1, data.shape[0])[:, None, None]
    biased = session_qc(nib.Nifti1Image(data * np.exp(0.3 * x).astype(np.float32), tpl.affine),
                        brain, brain, tpl, tmask)
    assert biased["residual_bias"] > 3 * good["residual_bias"]
    # a mask and image shifted by 8 voxels: the alignment measures drop
    shifted = session_qc(nib.Nifti1Image(np.roll(data, 8, axis=1), tpl.affine),
                         nib.Nifti1Image(np.roll(np.asarray(brain.dataobj), 8, axis=1), tpl.affine),
                         brain, tpl, tmask)
    assert shifted["mask_dice"] < 0.95 and shifted["template_corr"] < good["template_corr"] - 0.1
    # more noise: SNR and CNR drop
    noisy = session_qc(nib.Nifti1Image(data + np.random.default_rng(1).normal(
        0, 0.2 * data[data > 0].mean(), data.shape).astype(np.float32) * (data > 0), tpl.affine),
        brain, brain, tpl, tmask)
    assert noisy["snr_wm"] < 0.5 * good["snr_wm"] and noisy["cnr"] < good["cnr"]
    with pytest.raises(ValueError, match="shape"):
        session_qc(nib.Nifti1Image(data[:-1], tpl.affine), brain, brain, tpl, tmask)


def _table(n=30, seed=0):
    rng = np.random.default_rng(seed)
    qc = pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(n)],
                       "session_id": ["ses-M000"] * n, "t1w": ["x"] * n})
    for m in QC_MEASURES:
        qc[m] = rng.normal(1.0, 0.02, n)
    return qc


def test_robust_z_flags_only_the_outlying_session():
    qc = _table()
    qc.loc[7, "brain_volume_ml"] = 0.6  # a mask that lost 40 % of the brain
    qc.loc[3, "mask_dice"] = np.nan  # a measure that could not be taken flags nothing
    flagged = flag_outliers(qc)
    assert flagged["outlier"].tolist() == [i == 7 for i in range(len(qc))]
    assert flagged.loc[7, "outlier_reason"].startswith("brain_volume_ml z=-")
    assert flagged.loc[7, "z_brain_volume_ml"] < -3.5
    rows = exclusions_from_flags(flagged)
    assert rows.to_dict("records") == [{"participant_id": "sub-07", "session_id": "ses-M000",
                                        "reason": flagged.loc[7, "outlier_reason"].join(["QC outlier: ", ""])}]


def _write(path, text):
    path.write_text(text)
    return path


def test_exclusion_file_is_read_and_applied(tmp_path):
    path = _write(tmp_path / "exclude.tsv",
                  "participant_id\tsession_id\treason\tnote\n"
                  "sub-01\tses-M006\tmotion\tby hand\n"
                  "02\tn/a\twithdrawn\t\n"
                  "\n# a comment\n"
                  "sub-99\tses-M000\tnot selected\t\n")
    ex = read_exclusions(path)
    assert ex.to_dict("records") == [
        {"subject": "01", "session": "M006", "reason": "motion"},
        {"subject": "02", "session": None, "reason": "withdrawn"},
        {"subject": "99", "session": "M000", "reason": "not selected"}]
    selected = pd.DataFrame({"subject": ["01", "01", "02", "02", "03"],
                             "session": ["M000", "M006", "M000", "M012", "M000"],
                             "t1w": list("abcde")})
    kept, excluded = apply_exclusions(selected, ex)
    assert kept[["subject", "session"]].values.tolist() == [["01", "M000"], ["03", "M000"]]
    assert excluded.values.tolist() == [["sub-01", "ses-M006", "motion"], ["sub-02", "ses-M000", "withdrawn"],
                                        ["sub-02", "ses-M012", "withdrawn"]]


@pytest.mark.parametrize(("text", "line", "what"), [
    ("participant_id\tsession\treason\nsub-01\tses-M000\tx\n", 1, "no column session_id"),
    ("participant_id\tsession_id\treason\nsub-01\tses-M000\tmotion\nsub-02 ses-M000 motion\n", 3, "field"),
    ("participant_id\tsession_id\treason\nsub-01\tses-M000\t\n", 2, "no reason"),
    ("participant_id\tsession_id\treason\nsub-0_1\tses-M000\tmotion\n", 2, "not a BIDS label"),
    ("", 1, "empty"),
])
def test_bad_exclusion_file_is_one_line_naming_file_and_line(tmp_path, text, line, what):
    path = _write(tmp_path / "bad.tsv", text)
    with pytest.raises(DaniNetError) as err:
        read_exclusions(path)
    message = str(err.value)
    assert message.startswith(f"{path} line {line}:") and what in message and "\n" not in message


def test_bad_exclusion_file_stops_the_group_level_in_one_line(demo_bids, tmp_path, capsys):
    from daninet_pipeline.cli.run import main

    path = _write(tmp_path / "bad.tsv", "participant_id\tsession_id\treason\nsub-01\tses-M000\n")
    code = main([str(demo_bids), str(tmp_path / "out"), "group", "--skip-bids-validation",
                 "--work-dir", str(tmp_path / "work"), "--config", "demo", "--exclude-sessions", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"daninet: error: {path} line 2: 2 tab-separated field(s), the header has 3"]
