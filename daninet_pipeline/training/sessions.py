"""The group level's first step, as plain functions: the selected sessions with their
participant-level derivatives and the training records (the test follow-ups:
:func:`daninet_pipeline.evaluation.evaluate.followup_pairs`).

The Nipype interfaces in :mod:`daninet_pipeline.interfaces.group` wrap these; the
workflow :func:`daninet_pipeline.workflows.group.init_group_wf` chains them.
"""

from __future__ import annotations

import logging

import pandas as pd

from ..bids import impute_missing_diagnoses, load_sessions
from ..data.resources import DEFAULT_TEMPLATE
from ..errors import BIDSInputError

LOG = logging.getLogger("daninet.group")

SESSION_COLUMNS = ["subject", "session", "age", "diagnosis", "t1w", "preproc", "mask"]


def attach_derivatives(table: pd.DataFrame, output_dir,
                       template: str = DEFAULT_TEMPLATE) -> tuple[pd.DataFrame, list[str]]:
    """The selected T1w images (:func:`~daninet_pipeline.bids.load_sessions`' table) with
    their participant-level derivatives, named by :mod:`daninet_pipeline.bids.naming`.

    Returns the table (columns :data:`SESSION_COLUMNS`, one row per T1w; ``preproc`` and
    ``mask`` are empty where a derivative is missing) and the subjects that lack at least
    one derivative. Reads no dataset: the selection is the caller's.
    """
    from ..bids.naming import derivative_path

    rows, missing = [], set()
    for rec in table.itertuples(index=False):
        session = rec.session if isinstance(rec.session, str) else None
        preproc = derivative_path(output_dir, rec.t1w, "preproc", template=template)
        mask = derivative_path(output_dir, rec.t1w, "mask_std", template=template)
        ok = preproc.is_file() and mask.is_file()
        if not ok:
            missing.add(rec.subject)
        rows.append({"subject": rec.subject, "session": session, "age": rec.age,
                     "diagnosis": rec.diagnosis if isinstance(rec.diagnosis, str) else None,
                     "t1w": rec.t1w, "preproc": str(preproc) if ok else "",
                     "mask": str(mask) if ok else ""})
    return pd.DataFrame(rows, columns=SESSION_COLUMNS), sorted(missing)


def gather_sessions(bids_dir, output_dir, *, participant_label=None, session_label=None,
                    bids_filter=None, database_dir=None,
                    template: str = DEFAULT_TEMPLATE) -> tuple[pd.DataFrame, list[str]]:
    """:func:`~daninet_pipeline.bids.load_sessions` then :func:`attach_derivatives`: for
    scripts and embedding workflows (the CLI reads the dataset once and calls
    :func:`attach_derivatives` on its selection)."""
    table = load_sessions(bids_dir, participant_label=participant_label, session_label=session_label,
                          bids_filter=bids_filter, database_dir=database_dir)
    return attach_derivatives(table, output_dir, template)


def has_longitudinal_pairs(table: pd.DataFrame) -> bool:
    """Whether some subject has two sessions or more (pairs for the regional constraint
    and follow-ups for the evaluation)."""
    sessions = table.assign(session=table["session"].fillna("")).groupby("subject")["session"].nunique()
    return bool((sessions >= 2).any())


def training_records(sessions: pd.DataFrame, split: pd.DataFrame, splits=("train",)) -> list[dict]:
    """Slice-store records (image, subject, session, age, diagnosis) of the chosen splits.

    Sessions without a diagnosis take their neighbours' when they agree, or are left
    out (:func:`~daninet_pipeline.bids.impute_missing_diagnoses`).
    """
    chosen = set(split.loc[split["split"].isin(splits), "subject"])
    table = sessions[sessions["subject"].isin(chosen)]
    if (table["preproc"] == "").any():
        lacking = sorted(table.loc[table["preproc"] == "", "subject"].unique())
        raise BIDSInputError(f"no pre-processed T1w for sub-{', sub-'.join(lacking)}: run the "
                             "participant level first")
    table = impute_missing_diagnoses(table)
    return [{"image": r.preproc, "subject": r.subject, "session": r.session or "",
             "age": float(r.age), "diagnosis": r.diagnosis} for r in table.itertuples(index=False)]
