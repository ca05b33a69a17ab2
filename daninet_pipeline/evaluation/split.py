"""Splitting subjects (never sessions) into train, validation and test sets."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")
#: the shares of the subjects in train, validation and test, unless a caller asks for others
FRACTIONS = (0.7, 0.15, 0.15)


def split_subjects(table: pd.DataFrame, *, seed: int = 0,
                   fractions: tuple[float, float, float] = FRACTIONS) -> pd.DataFrame:
    """Assign every subject of a session table to one split, stratified by diagnosis.

    ``table`` has one row per session with ``subject``, ``age`` and ``diagnosis``; a
    subject's stratum is the diagnosis of its first session with one (or ``n/a``).
    Test and validation sizes are ``fractions`` of the number of subjects, rounded, with
    at least one test subject when there are two subjects or more and one validation
    subject from four; training takes the rest. Subjects are shuffled with ``seed`` within their stratum, the
    strata are laid end to end, and the splits are dealt along that order in proportion
    to their sizes, so every stratum is spread over the splits. Returns a table
    ``subject``, ``split``, ``stratum``, ``sessions``, sorted by subject; all sessions of
    a subject stay in one split.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    if table.empty:
        raise ValueError("no sessions to split")
    ordered = table.sort_values(["subject", "age"])
    first_dx = ordered.groupby("subject")["diagnosis"].agg(
        lambda s: next((d for d in s if isinstance(d, str) and d), "n/a"))
    sessions = ordered.groupby("subject").size()
    n = len(first_dx)
    n_test = max(1 if n >= 2 else 0, int(round(fractions[2] * n)))
    n_val = max(1 if n >= 4 else 0, int(round(fractions[1] * n)))
    counts = np.array([n - n_test - n_val, n_val, n_test])
    if counts[0] < 1:
        raise ValueError(f"{n} subjects are too few for fractions {fractions}")
    rng = np.random.default_rng(seed)
    order = []
    for stratum in sorted(first_dx.unique()):
        subjects = sorted(first_dx.index[first_dx == stratum])
        order += [subjects[i] for i in rng.permutation(len(subjects))]
    dealt = np.zeros(3)
    rows = []
    for i, sub in enumerate(order):
        behind = counts * (i + 1) / n - dealt
        behind[dealt >= counts] = -np.inf
        k = int(np.argmax(behind))
        dealt[k] += 1
        rows.append({"subject": sub, "split": SPLITS[k], "stratum": first_dx[sub],
                     "sessions": int(sessions[sub])})
    return pd.DataFrame(rows).sort_values("subject").reset_index(drop=True)
