"""The group level's QC table: every selected session's QC measures in one table, with
outliers flagged by a stated rule.

Rule (:func:`flag_outliers`): for each measure of :data:`~daninet_pipeline.qc.measures.QC_MEASURES`,
the robust z-score of a session is ``(x - median) / (1.4826 * MAD)`` over the sessions of
the table (MAD: median absolute deviation; 1.4826 makes it the standard deviation of a
normal distribution; where the MAD is 0, the mean absolute deviation times 1.2533 is used
instead). A session is an **outlier** when any measure's ``|z|`` exceeds
:data:`OUTLIER_Z` = 3.5 (Iglewicz and Hoaglin's cut-off for the modified z-score).
Flags do not exclude anything by themselves: the table's flagged rows, written as an
exclusion file (:func:`exclusions_from_flags`), are excluded when given back with
``--exclude-sessions``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .measures import QC_MEASURES

#: |robust z| above which a measure flags a session
OUTLIER_Z = 3.5
#: columns that name a session in every QC table
ID_COLUMNS = ["participant_id", "session_id"]


def read_session_qc(path) -> dict[str, float]:
    """The measures of one session's QC TSV (one header line, one row)."""
    row = pd.read_csv(path, sep="\t", na_values=["n/a"]).iloc[0]
    return {k: float(row[k]) for k in QC_MEASURES if k in row.index}


def gather_qc(sessions: pd.DataFrame, output_dir, *, template: str | None = None) -> pd.DataFrame:
    """One row per T1w of ``sessions`` (columns ``subject``, ``session``, ``t1w``: the
    CLI's selection) with its participant-level QC measures read from
    ``OUTPUT_DIR/.../<T1w entities>_desc-qc_T1w.tsv``; measures are NaN where that file is
    missing (a session pre-processed before QC files were written)."""
    from ..bids.naming import derivative_path
    from ..data.resources import DEFAULT_TEMPLATE

    rows = []
    for rec in sessions.itertuples(index=False):
        session = rec.session if isinstance(rec.session, str) and rec.session else None
        path = derivative_path(output_dir, rec.t1w, "qc", template=template or DEFAULT_TEMPLATE)
        measures = read_session_qc(path) if path.is_file() else {}
        rows.append({"participant_id": f"sub-{rec.subject}",
                     "session_id": f"ses-{session}" if session else "n/a",
                     "t1w": Path(rec.t1w).name,
                     **{k: measures.get(k, np.nan) for k in QC_MEASURES}})
    return pd.DataFrame(rows, columns=[*ID_COLUMNS, "t1w", *QC_MEASURES])


def robust_z(values: pd.Series) -> pd.Series:
    """``(x - median) / (1.4826 MAD)`` (mean absolute deviation x 1.2533 where the MAD
    is 0; 0 where both are 0); NaN stays NaN.

    >>> robust_z(pd.Series([1.0, 2.0, 3.0, 4.0, 100.0])).round(2).tolist()
    [-1.35, -0.67, 0.0, 0.67, 65.43]
    """
    x = values.astype(float)
    med = x.median()
    mad = (x - med).abs().median() * 1.4826
    if not mad or np.isnan(mad):
        mad = (x - x.mean()).abs().mean() * 1.2533
    if not mad or np.isnan(mad):
        return x * 0.0
    return (x - med) / mad


def flag_outliers(qc: pd.DataFrame, *, threshold: float = OUTLIER_Z,
                  measures=tuple(QC_MEASURES)) -> pd.DataFrame:
    """``qc`` with a ``z_<measure>`` column per measure, ``outlier`` (bool) and
    ``outlier_reason`` (e.g. ``brain_volume_ml z=-6.2``; empty when not an outlier)."""
    out = qc.copy()
    flagged = pd.Series(False, index=out.index)
    reasons = pd.Series("", index=out.index)
    for m in measures:
        if m not in out:
            continue
        z = robust_z(out[m])
        out[f"z_{m}"] = z.round(3)
        hit = z.abs() > threshold
        flagged |= hit.fillna(False)
        for i in out.index[hit.fillna(False)]:
            reasons[i] = "; ".join(filter(None, [reasons[i], f"{m} z={z[i]:+.1f}"]))
    out["outlier"] = flagged
    out["outlier_reason"] = reasons
    return out


def exclusions_from_flags(flagged: pd.DataFrame) -> pd.DataFrame:
    """The flagged rows of :func:`flag_outliers` as an exclusion file's rows
    (``participant_id``, ``session_id``, ``reason``), ready for ``--exclude-sessions``."""
    rows = flagged[flagged["outlier"]]
    return pd.DataFrame({"participant_id": rows["participant_id"], "session_id": rows["session_id"],
                         "reason": "QC outlier: " + rows["outlier_reason"]}).reset_index(drop=True)


def read_group_qc(model_folder) -> pd.DataFrame:
    """The QC table a group run wrote (``OUTPUT_DIR/models/<name>/qc.tsv``), for reports."""
    return pd.read_csv(Path(model_folder) / "qc.tsv", sep="\t", na_values=["n/a"],
                       keep_default_na=False)
