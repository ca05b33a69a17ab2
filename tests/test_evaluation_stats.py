"""Paired bootstrap comparisons over test subjects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.evaluation.stats import (
    bootstrap_mean_ci,
    compare,
    comparison_table,
    subject_differences,
    verdict,
)


def test_bootstrap_interval_covers_a_known_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(2026)
    true_difference, hits, reps = -0.01, 0, 400
    for rep in range(reps):
        # 40 subjects; per-subject differences skewed (a shifted gamma) around the truth
        values = true_difference + rng.gamma(2.0, 0.01, size=40) - 0.02
        _, lo, hi = bootstrap_mean_ci(values, n_boot=1000, seed=rep)
        hits += lo <= true_difference <= hi
    assert 0.91 <= hits / reps <= 0.98, hits / reps


def test_verdict_follows_the_interval():
    assert verdict(-0.3, -0.1) == "better"
    assert verdict(0.1, 0.3) == "worse"
    assert verdict(-0.1, 0.2) == "not distinguishable"
    assert verdict(float("nan"), 0.1) == "not distinguishable"
    assert verdict(0.1, 0.3, lower_is_better=False) == "better"


def _rows(rng, n_subjects=30, effect=-0.02):
    rows = []
    for s in range(n_subjects):
        for k in range(int(rng.integers(1, 4))):
            base = rng.uniform(0.02, 0.08)
            for method, err in (("identity", base), ("model", base + effect + rng.normal(0, 0.005))):
                rows.append({"subject": f"S{s}", "start_session": f"M{k}", "followup_session": f"M{k + 1}",
                             "measurement": "tbm", "method": method, "error": err,
                             "horizon": "<1" if k == 0 else "1-3", "diagnosis": "CN"})
    return pd.DataFrame(rows)


def test_differences_are_paired_and_averaged_per_subject():
    rows = _rows(np.random.default_rng(0))
    diff = subject_differences(rows, "model", "identity")
    assert len(diff) == 30
    s0 = rows[rows["subject"] == "S0"].pivot_table(index="followup_session", columns="method", values="error")
    assert diff["S0"] == pytest.approx((s0["model"] - s0["identity"]).mean())


def test_a_clear_effect_is_called_and_no_effect_is_not():
    rng = np.random.default_rng(1)
    better = compare(_rows(rng, effect=-0.02), "model", "identity")
    assert better["verdict"] == "better" and better["ci_high"] < 0 and better["n_subjects"] == 30
    same = compare(_rows(rng, effect=0.0), "model", "identity")
    assert same["verdict"] == "not distinguishable" and same["ci_low"] < 0 < same["ci_high"]
    table = comparison_table(_rows(rng), ["model"], ["identity"], by=("horizon",))
    assert list(table["stratum"]) == ["all", "<1", "1-3"]
    assert table.loc[0, "n_followups"] == table.loc[1:, "n_followups"].sum()


def test_too_few_subjects_give_no_interval_and_no_verdict():
    rows = _rows(np.random.default_rng(3), n_subjects=4, effect=-0.05)
    c = compare(rows, "model", "identity")
    assert c["verdict"] == "too few subjects" and np.isnan(c["ci_low"]) and c["n_subjects"] == 4
    assert compare(_rows(np.random.default_rng(3), n_subjects=5, effect=-0.05), "model", "identity")["verdict"] == "better"
