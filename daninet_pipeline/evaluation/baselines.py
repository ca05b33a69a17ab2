"""Baselines that predict a follow-up from the same starting scan as the model.

- ``identity``: the starting scan copied forward (no change).
- ``population-mean``: the starting scan plus the mean change of the training subjects
  of the same diagnosis over the same interval: :class:`PopulationMean` fits, per
  diagnosis, the voxel-wise annual intensity change on the template grid by least
  squares over the training split's consecutive scan pairs (``change = rate x years``,
  ``rate = sum(years_i * change_i) / sum(years_i^2)``), so a pair twice as long weighs
  as two; a diagnosis without training pairs takes the rate of all pairs. Nothing but
  the training split's files is read.
- ``linear``: each voxel's own least-squares trend over the subject's scans up to and
  including the starting scan, extrapolated from the starting scan
  (:func:`linear_trend`); defined only where there are two scans or more.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

IDENTITY = "identity"
POPULATION_MEAN = "population-mean"
LINEAR = "linear"
ORACLE = "oracle"
BASELINES = (IDENTITY, POPULATION_MEAN, LINEAR)


def _load(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


def one_t1w_per_session(sessions: pd.DataFrame) -> pd.DataFrame:
    """The group level's table with one T1w per session (the first by name: ``run-01``
    before ``run-02``), sorted by subject and age: two runs of one session are one
    time point, not a follow-up. A table without a ``session`` column has one image per
    time point already."""
    if "session" not in sessions:
        return sessions.sort_values(["subject", "age"], kind="stable")
    table = sessions.assign(_ses=sessions["session"].fillna(""))
    if "t1w" not in table:
        table = table.assign(t1w="")
    return (table.sort_values(["subject", "age", "_ses", "t1w"], kind="stable")
            .drop_duplicates(["subject", "_ses"]).drop(columns="_ses"))


def consecutive_pairs(sessions: pd.DataFrame) -> pd.DataFrame:
    """Each subject's consecutive sessions (by age; one T1w per session,
    :func:`one_t1w_per_session`): ``subject``, ``start``, ``followup`` (image paths),
    ``years``, ``diagnosis`` (of the starting scan, else the subject's first known one)."""
    rows = []
    for sub, group in one_t1w_per_session(sessions).groupby("subject", sort=True):
        known = [d for d in group["diagnosis"] if isinstance(d, str) and d]
        for (_, a), (_, b) in zip(group.iterrows(), group.iloc[1:].iterrows()):
            dx = a["diagnosis"] if isinstance(a["diagnosis"], str) and a["diagnosis"] else (known[0] if known else None)
            rows.append({"subject": sub, "start": a["preproc"], "followup": b["preproc"],
                         "years": float(b["age"]) - float(a["age"]), "diagnosis": dx})
    return pd.DataFrame(rows, columns=["subject", "start", "followup", "years", "diagnosis"])


class PopulationMean:
    """Voxel-wise mean annual change per diagnosis, learned from training pairs only."""

    def __init__(self, rates: dict[str, np.ndarray], pooled: np.ndarray, n_pairs: dict[str, int],
                 affine: np.ndarray):
        self.rates, self.pooled, self.n_pairs, self.affine = rates, pooled, n_pairs, affine

    @classmethod
    def fit(cls, sessions: pd.DataFrame, split: pd.DataFrame) -> PopulationMean:
        """Fit on the sessions of the subjects whose ``split`` is ``train``; no other
        subject's file is opened."""
        train = set(split.loc[split["split"] == "train", "subject"])
        pairs = consecutive_pairs(sessions[sessions["subject"].isin(train)])
        pairs = pairs[pairs["years"] > 0]
        if pairs.empty:
            raise ValueError("the training split has no subject with two scans: no population-mean change")
        num: dict[str, np.ndarray] = {}
        den: dict[str, float] = {}
        affine = None
        for rec in pairs.sort_values(["subject", "start"]).itertuples(index=False):
            a, b = _load(rec.start), _load(rec.followup)
            if affine is None:
                affine = nib.load(rec.start).affine
            term = (b.astype(np.float64) - a) * rec.years
            for key in (rec.diagnosis or "n/a", "*"):
                num[key] = num.get(key, 0.0) + term
                den[key] = den.get(key, 0.0) + rec.years ** 2
        rates = {k: (num[k] / den[k]).astype(np.float32) for k in num if k not in ("*", "n/a")}
        counts = pairs["diagnosis"].fillna("n/a").value_counts().to_dict()
        return cls(rates, (num["*"] / den["*"]).astype(np.float32), {k: int(v) for k, v in counts.items()}, affine)

    def rate(self, diagnosis: str | None) -> np.ndarray:
        """The annual change of ``diagnosis`` (pooled over all training pairs if unseen)."""
        return self.rates.get(diagnosis, self.pooled)

    def predict(self, start: np.ndarray, diagnosis: str | None, years: float) -> np.ndarray:
        """``start + years x rate(diagnosis)``."""
        if start.shape != self.pooled.shape:
            raise ValueError(f"shapes differ: start {start.shape}, learned change {self.pooled.shape}")
        return (start + np.float32(years) * self.rate(diagnosis)).astype(np.float32)

    def save(self, path) -> Path:
        """An ``.npz`` of arrays (nothing pickled)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        names = sorted(self.rates)
        np.savez(path, pooled=self.pooled, affine=self.affine, names=np.array(names),
                 counts=np.array([self.n_pairs.get(n, 0) for n in names]),
                 **{f"rate_{n}": self.rates[n] for n in names})
        return path

    @classmethod
    def load(cls, path) -> PopulationMean:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["names"]]
            rates = {n: data[f"rate_{n}"] for n in names}
            counts = dict(zip(names, (int(c) for c in data["counts"])))
            return cls(rates, data["pooled"], counts, data["affine"])


def linear_trend(scans: list[tuple[float, np.ndarray]], start_age: float, target_age: float) -> np.ndarray | None:
    """Each voxel's least-squares line through ``scans`` ((age, image) up to and
    including the starting scan, whose age is ``start_age``), extrapolated from the
    starting scan to ``target_age``; None with fewer than two scans."""
    if len(scans) < 2:
        return None
    ages = np.array([a for a, _ in scans], np.float64)
    if np.ptp(ages) <= 0:
        return None
    start = next(img for a, img in scans if a == start_age)
    centred = ages - ages.mean()
    slope = sum(np.float32(w) * img for w, img in zip(centred / (centred ** 2).sum(), (i for _, i in scans)))
    return (start + np.float32(target_age - start_age) * slope).astype(np.float32)
