"""Subject split and the evaluation of predictions beside the identity answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.evaluation.evaluate import (
    IDENTITY,
    FollowUp,
    evaluate_followups,
    horizon_of,
    summarise,
    to_markdown,
    write_evaluation,
)
from daninet_pipeline.evaluation.split import split_subjects

TPL = "MNI152NLin2009aSym"


def _sessions(n_subjects, rng):
    rows = []
    for s in range(n_subjects):
        dx = ["CN", "MCI", "AD"][s % 3]
        for k in range(rng.integers(2, 5)):
            rows.append({"subject": f"S{s:03d}", "age": 70 + k, "diagnosis": dx})
    return pd.DataFrame(rows)


def test_split_keeps_subjects_whole_and_is_stratified_and_seeded():
    table = _sessions(60, np.random.default_rng(0))
    split = split_subjects(table, seed=4)
    assert split["subject"].is_unique and len(split) == 60
    assert split["split"].value_counts().to_dict() == {"train": 42, "validation": 9, "test": 9}
    counts = split.groupby(["stratum", "split"]).size().unstack()
    assert ((counts - pd.Series({"train": 14, "validation": 3, "test": 3})).abs() <= 1).all().all()
    assert split.equals(split_subjects(table, seed=4))
    assert not split["split"].equals(split_subjects(table, seed=5)["split"])
    assert split["sessions"].sum() == len(table)


def test_small_cohorts_still_get_a_test_subject():
    split = split_subjects(_sessions(3, np.random.default_rng(0)), seed=0)
    assert split["split"].value_counts().to_dict() == {"train": 2, "test": 1}


def test_split_refuses_bad_fractions():
    with pytest.raises(ValueError, match="summing to 1"):
        split_subjects(_sessions(3, np.random.default_rng(0)), fractions=(0.5, 0.5, 0.5))


def test_horizons():
    assert [horizon_of(y) for y in (0.5, 1.0, 2.9, 3.0, 6.0)] == ["<1", "1-3", "1-3", ">=3", ">=3"]
    with pytest.raises(ValueError):
        horizon_of(-1)


def _truth_pair(demo_bids, with_truth: bool):
    truth = demo_bids / "derivatives" / "ground_truth"
    vols = pd.read_csv(truth / "regional_volumes.tsv", sep="\t")
    span = vols.groupby("participant_id")["years_since_baseline"].max()
    sub = span.idxmax()
    v = vols[vols["participant_id"] == sub]
    first, last = v["session_id"].iloc[0], v.loc[v["years_since_baseline"].idxmax(), "session_id"]
    anat = lambda ses: truth / sub / ses / "anat"
    img = lambda ses: anat(ses) / f"{sub}_{ses}_space-{TPL}_desc-noisefree_T1w.nii.gz"
    change = None
    if with_truth:
        a = v[v["session_id"] == first].set_index("region")["volume_template_mm3"]
        b = v[v["session_id"] == last].set_index("region")["volume_template_mm3"]
        change = (b / a - 1).to_dict()
    return FollowUp(sub, first, last, float(span.max()), img(first), img(last),
                    anat(last) / f"{sub}_{last}_space-{TPL}_desc-brain_mask.nii.gz",
                    predictions={"oracle": img(last)}, true_change=change)


def test_a_perfect_prediction_beats_identity(demo_bids, tmp_path):
    results = evaluate_followups([_truth_pair(demo_bids, with_truth=False)])
    by = results.set_index("method")
    assert by.loc["oracle", "ssim"] == pytest.approx(1.0)
    assert by.loc["oracle", "volume_change_error"] == 0.0
    assert by.loc[IDENTITY, "volume_change_error"] > 0.005
    assert by.loc[IDENTITY, "ssim"] < 1.0 and by.loc[IDENTITY, "mae"] > 0
    tsv, md = write_evaluation(results, tmp_path)
    assert pd.read_csv(tsv, sep="\t").shape[0] == 2
    assert "| identity |" in md.read_text() and "| oracle |" in md.read_text()


def test_identity_scores_the_true_change_from_ground_truth(demo_bids):
    pair = _truth_pair(demo_bids, with_truth=True)
    results = evaluate_followups([pair]).set_index("method")
    regions = [k for k in pair.true_change if k != "Brain"]
    expected = np.mean([abs(pair.true_change[k]) for k in regions])
    assert results.loc[IDENTITY, "volume_change_error"] == pytest.approx(expected, rel=1e-6)
    # the real follow-up, measured with the intensity proxy, is closer to the truth
    assert results.loc["oracle", "volume_change_error"] < results.loc[IDENTITY, "volume_change_error"]


def test_summary_orders_identity_first_within_each_horizon():
    rows = pd.DataFrame([
        {"method": m, "horizon": h, "ssim": 0.9, "psnr": 30.0, "mae": 0.1, "volume_change_error": 0.01}
        for h in (">=3", "<1") for m in ("full", IDENTITY)])
    s = summarise(rows)
    assert list(zip(s["horizon"], s["method"])) == [("<1", IDENTITY), ("<1", "full"),
                                                   (">=3", IDENTITY), (">=3", "full")]
    assert to_markdown(s).count("\n") == 6
