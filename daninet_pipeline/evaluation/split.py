"""Splitting subjects (never sessions) into train, validation and test sets."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")


def split_subjects(table: pd.DataFrame, *, seed: int = 0,
                   fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> pd.DataFrame:
    """Assign every subject of a session table to one split, stratified by diagnosis.

    ``table`` has one row per session with ``subject``, ``age`` and ``diagnosis``; a
    subject's stratum is the diagnosis of its first session with one (or ``n/a``).
    Within each stratum subjects are shuffled with ``seed`` and cut by ``fractions``;
    every non-empty split of a stratum gets at least one subject when the stratum has
    enough. Returns a table ``subject``, ``split``, ``stratum``, ``sessions``, sorted by
    subject. All sessions of a subject stay in one split.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    if table.empty:
        raise ValueError("no sessions to split")
    ordered = table.sort_values(["subject", "age"])
    first_dx = ordered.groupby("subject")["diagnosis"].agg(
        lambda s: next((d for d in s if isinstance(d, str) and d), "n/a"))
    sessions = ordered.groupby("subject").size()
    rng = np.random.default_rng(seed)
    rows = []
    for stratum in sorted(first_dx.unique()):
        subjects = sorted(first_dx.index[first_dx == stratum])
        order = rng.permutation(len(subjects))
        n = len(subjects)
        counts = np.floor(np.array(fractions) * n).astype(int)
        # hand out the remainder to the splits with the largest shortfall
        for k in np.argsort(-(np.array(fractions) * n - counts))[: n - counts.sum()]:
            counts[k] += 1
        bounds = np.cumsum(counts)
        for rank, idx in enumerate(order):
            split = SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
            sub = subjects[idx]
            rows.append({"subject": sub, "split": split, "stratum": stratum,
                         "sessions": int(sessions[sub])})
    return pd.DataFrame(rows).sort_values("subject").reset_index(drop=True)
