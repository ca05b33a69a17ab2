"""Baselines: population-mean (training split only) and the voxel-wise linear trend."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.evaluation.baselines import PopulationMean, consecutive_pairs, linear_trend

RATE = {"CN": 0.01, "MCI": 0.03, "AD": 0.05}


def _cohort(tmp_path, rng):
    """12 subjects x 3 scans of 5^3 voxels whose change per year is RATE[dx] x a pattern."""
    pattern = rng.uniform(-1, 1, (5, 5, 5)).astype(np.float32)
    rows, split = [], []
    for s in range(12):
        dx = ("CN", "MCI", "AD")[s % 3]
        base = rng.uniform(0, 1, (5, 5, 5)).astype(np.float32)
        age0 = 70.0 + s
        for k, years in enumerate((0.0, 1.0, 3.0)):
            path = tmp_path / f"s{s}_{k}.nii.gz"
            nib.save(nib.Nifti1Image(base + RATE[dx] * years * pattern, np.eye(4)), path)
            rows.append({"subject": f"S{s:02d}", "session": f"M{k}", "age": age0 + years, "diagnosis": dx,
                         "preproc": str(path)})
        split.append({"subject": f"S{s:02d}", "split": "train" if s < 8 else ("validation" if s < 10 else "test")})
    return pd.DataFrame(rows), pd.DataFrame(split), pattern


def test_population_mean_learns_the_mean_change_per_diagnosis(tmp_path):
    sessions, split, pattern = _cohort(tmp_path, np.random.default_rng(0))
    model = PopulationMean.fit(sessions, split)
    for dx, rate in RATE.items():
        assert np.allclose(model.rate(dx), rate * pattern, atol=1e-5)
    start = np.zeros((5, 5, 5), np.float32)
    assert np.allclose(model.predict(start, "AD", 2.0), 2 * RATE["AD"] * pattern, atol=1e-5)
    assert model.n_pairs == {"CN": 6, "MCI": 6, "AD": 4}
    loaded = PopulationMean.load(model.save(tmp_path / "pm.npz"))
    assert all(np.array_equal(loaded.rate(d), model.rate(d)) for d in RATE)
    assert np.array_equal(loaded.rate("unknown"), model.pooled)


def test_population_mean_learns_from_the_training_split_only(tmp_path):
    sessions, split, _ = _cohort(tmp_path, np.random.default_rng(1))
    before = PopulationMean.fit(sessions, split)
    held_out = split.loc[split["split"] != "train", "subject"]
    for path in sessions.loc[sessions["subject"].isin(held_out), "preproc"]:
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 3 + 7, img.affine), path)
    after = PopulationMean.fit(sessions, split)
    assert all(np.array_equal(before.rate(d), after.rate(d)) for d in RATE)
    assert np.array_equal(before.pooled, after.pooled)
    # and the check can fail: changing a training scan changes the learned change
    path = sessions.loc[sessions["subject"] == "S00", "preproc"].iloc[1]
    nib.save(nib.Nifti1Image(np.asarray(nib.load(path).dataobj) + 1, np.eye(4)), path)
    assert not np.array_equal(before.rate("CN"), PopulationMean.fit(sessions, split).rate("CN"))


def test_consecutive_pairs_take_the_starting_scans_diagnosis():
    sessions = pd.DataFrame({"subject": ["A", "A", "A"], "age": [70, 72, 71], "preproc": ["a0", "a2", "a1"],
                             "diagnosis": ["CN", "AD", None]})
    pairs = consecutive_pairs(sessions)
    assert list(zip(pairs["start"], pairs["followup"], pairs["diagnosis"])) == [("a0", "a1", "CN"), ("a1", "a2", "CN")]


def test_linear_trend_extrapolates_each_voxel_from_the_starting_scan():
    rng = np.random.default_rng(2)
    slope = rng.normal(size=(4, 4, 4)).astype(np.float32)
    base = rng.normal(size=(4, 4, 4)).astype(np.float32)
    scans = [(a, base + slope * (a - 70)) for a in (70.0, 71.0, 72.5)]
    pred = linear_trend(scans, 72.5, 75.0)
    assert np.allclose(pred, base + slope * 5.0, atol=1e-5)
    assert linear_trend(scans[:1], 70.0, 75.0) is None
