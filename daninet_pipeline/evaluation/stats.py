"""Paired comparisons of methods with bootstrap intervals over test subjects.

A method's error on a follow-up is compared with a reference's error on the same
follow-up (the same starting scan, measurement and regions). The follow-ups of one
subject are not independent, so each subject contributes one number per stratum (the
mean of its paired differences there), and the bootstrap resamples subjects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The one comparison declared before the run (docs/group_and_simulation.md): the full
#: model in change mode against the population mean, on regional volume change error
#: (TBM) at horizons of 3 years or more. Everything else is secondary.
PRIMARY = {"method": "full-change", "reference": "population-mean", "measurement": "tbm",
           "metric": "error", "horizons": ("3-5", ">=5")}
N_BOOTSTRAP = 2000
#: Fewer subjects than this give no interval (a bootstrap over 1-4 subjects is degenerate
#: or nearly so) and the verdict "too few subjects".
MIN_SUBJECTS = 5
TOO_FEW = "too few subjects"


def bootstrap_mean_ci(values, *, n_boot: int = N_BOOTSTRAP, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values`` (one per subject) and its percentile bootstrap interval."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    means = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(values.mean()), float(lo), float(hi)


def verdict(lo: float, hi: float, lower_is_better: bool = True) -> str:
    """'better' / 'worse' / 'not distinguishable' from an interval of method - reference."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "not distinguishable"
    if hi < 0:
        return "better" if lower_is_better else "worse"
    if lo > 0:
        return "worse" if lower_is_better else "better"
    return "not distinguishable"


def subject_differences(rows: pd.DataFrame, method: str, reference: str, metric: str = "error") -> pd.Series:
    """Per subject: mean over its follow-ups of ``metric(method) - metric(reference)``,
    on the follow-ups where both have a value."""
    keys = ["subject", "start_session", "followup_session", "measurement"]
    a = rows[rows["method"] == method].set_index(keys)[metric]
    b = rows[rows["method"] == reference].set_index(keys)[metric]
    diff = (a - b).dropna()
    if diff.empty:
        return pd.Series(dtype=float)
    return diff.groupby(level="subject").mean()


def compare(rows: pd.DataFrame, method: str, reference: str, *, metric: str = "error",
            lower_is_better: bool = True, seed: int = 0) -> dict:
    """One paired comparison: n subjects and follow-ups, mean difference, 95% interval, verdict
    (no interval and the verdict "too few subjects" below :data:`MIN_SUBJECTS` subjects)."""
    per_subject = subject_differences(rows, method, reference, metric)
    mean, lo, hi = bootstrap_mean_ci(per_subject.to_numpy(), seed=seed)
    call = verdict(lo, hi, lower_is_better)
    if per_subject.size < MIN_SUBJECTS:
        lo = hi = float("nan")
        call = TOO_FEW
    both = rows[rows["method"].isin([method, reference])]
    n_fu = both.groupby(["subject", "start_session", "followup_session"])["method"].nunique()
    return {"method": method, "reference": reference, "metric": metric, "n_subjects": int(per_subject.size),
            "n_followups": int((n_fu == 2).sum()), "difference": mean, "ci_low": lo, "ci_high": hi,
            "verdict": call}


def comparison_table(rows: pd.DataFrame, methods, references, *, by=("horizon",), metric: str = "error",
                     seed: int = 0) -> pd.DataFrame:
    """:func:`compare` for each method x reference within each stratum of ``by``
    (columns of ``rows``, e.g. horizon, diagnosis), plus an ``all`` stratum."""
    out = []
    strata = [("all", rows)] + ([(" / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))), g)
                                 for key, g in rows.groupby(list(by), sort=False)] if by else [])
    for label, group in strata:
        for ref in references:
            for m in methods:
                if m == ref or not (group["method"] == m).any() or not (group["method"] == ref).any():
                    continue
                out.append({"stratum": label, **compare(group, m, ref, metric=metric, seed=seed)})
    return pd.DataFrame(out)
