"""Sessions left out of the group level: ``--exclude-sessions FILE``.

The file is a TSV with a header line and the columns ``participant_id``, ``session_id``
and ``reason`` (other columns are ignored), written by hand or from the QC table's flags
(:func:`daninet_pipeline.qc.table.exclusions_from_flags`; the group level writes them as
``OUTPUT_DIR/models/<name>/qc_outliers.tsv``)::

    participant_id	session_id	reason
    sub-ADNI002S0295	ses-M006	motion (rated by hand)
    sub-ADNI011S0002	n/a	consent withdrawn: every session

``sub-``/``ses-`` prefixes are optional; a ``session_id`` of ``n/a`` or empty leaves out
every session of the subject. Excluded sessions take part in neither training nor
evaluation; the group level writes them with their reasons to
``OUTPUT_DIR/models/<name>/excluded_sessions.tsv`` (:func:`read_excluded_sessions`).
A malformed file is a one-line error naming the file and the line.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import pandas as pd

from ..errors import DaniNetError

LOG = logging.getLogger("daninet.qc")

#: columns of an exclusion file and of ``excluded_sessions.tsv``
EXCLUSION_COLUMNS = ["participant_id", "session_id", "reason"]
_LABEL = re.compile(r"^[A-Za-z0-9]+$")


class ExclusionFileError(DaniNetError):
    """A malformed ``--exclude-sessions`` file (the message names the file and line)."""


def _label(value: str, prefix: str, where: str) -> str:
    value = value.strip()
    if value.startswith(prefix):
        value = value[len(prefix):]
    if not _LABEL.match(value):
        raise ExclusionFileError(f"{where}: {prefix}{value!s} is not a BIDS label "
                                 f"({prefix}<letters and digits>)")
    return value


def read_exclusions(path) -> pd.DataFrame:
    """The rows of an exclusion file: ``subject``, ``session`` (None: every session) and
    ``reason``. Raises :class:`ExclusionFileError` naming the file and line on a missing
    file or column, a row with too few fields, a bad label or an empty reason."""
    path = Path(path)
    if not path.is_file():
        raise ExclusionFileError(f"{path}: exclusion file not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ExclusionFileError(f"{path}: cannot read the exclusion file ({err})") from err
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ExclusionFileError(f"{path} line 1: empty; expected a header with "
                                 + ", ".join(EXCLUSION_COLUMNS) + " (tab-separated)")
    header = next(csv.reader([lines[0]], delimiter="\t"))
    header = [h.strip() for h in header]
    missing = [c for c in EXCLUSION_COLUMNS if c not in header]
    if missing:
        raise ExclusionFileError(f"{path} line 1: no column {', '.join(missing)} in the header "
                                 f"({', '.join(header)}); expected tab-separated "
                                 + ", ".join(EXCLUSION_COLUMNS))
    col = {c: header.index(c) for c in EXCLUSION_COLUMNS}
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = next(csv.reader([line], delimiter="\t"))
        where = f"{path} line {number}"
        if len(fields) <= max(col.values()):
            raise ExclusionFileError(f"{where}: {len(fields)} tab-separated field(s), the header "
                                     f"has {len(header)}")
        subject = _label(fields[col["participant_id"]], "sub-", where)
        raw_session = fields[col["session_id"]].strip()
        session = None if raw_session in ("", "n/a") else _label(raw_session, "ses-", where)
        reason = fields[col["reason"]].strip()
        if not reason or reason == "n/a":
            raise ExclusionFileError(f"{where}: no reason given for sub-{subject}"
                                     + (f" ses-{session}" if session else ""))
        rows.append({"subject": subject, "session": session, "reason": reason})
    table = pd.DataFrame(rows, columns=["subject", "session", "reason"], dtype=object)
    table["session"] = table["session"].astype(object).where(table["session"].notna(), None)
    return table


def apply_exclusions(selected: pd.DataFrame, exclusions: pd.DataFrame, *,
                     source: str = "the exclusion file") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the selection (columns ``subject``, ``session``, ...) into the kept rows and
    the excluded sessions (:data:`EXCLUSION_COLUMNS`, one row per excluded session, with
    its reason). Exclusions that match no selected session are logged in one line."""
    keep = pd.Series(True, index=selected.index)
    reasons = pd.Series("", index=selected.index)
    sessions = selected["session"].where(selected["session"].notna(), None)
    unmatched = []
    for ex in exclusions.itertuples(index=False):
        session = ex.session if isinstance(ex.session, str) else None
        hit = selected["subject"] == ex.subject
        if session is not None:
            hit &= sessions == session
        if not hit.any():
            unmatched.append(f"sub-{ex.subject}" + (f" ses-{session}" if session else ""))
            continue
        keep &= ~hit
        for i in selected.index[hit]:
            reasons[i] = "; ".join(filter(None, [reasons[i], ex.reason]))
    if unmatched:
        LOG.warning("%d exclusion(s) of %s match no selected session: %s", len(unmatched), source,
                    ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else ""))
    dropped = selected[~keep]
    excluded = pd.DataFrame({
        "participant_id": "sub-" + dropped["subject"].astype(str),
        "session_id": [f"ses-{s}" if isinstance(s, str) and s else "n/a" for s in dropped["session"]],
        "reason": reasons[~keep],
    }, columns=EXCLUSION_COLUMNS).drop_duplicates(["participant_id", "session_id"])
    return selected[keep].reset_index(drop=True), excluded.reset_index(drop=True)


def read_excluded_sessions(model_folder) -> pd.DataFrame:
    """The sessions a group run left out, with their reasons
    (``OUTPUT_DIR/models/<name>/excluded_sessions.tsv``; columns
    :data:`EXCLUSION_COLUMNS`; no rows when none was excluded): for the group report."""
    return pd.read_csv(Path(model_folder) / "excluded_sessions.tsv", sep="\t", dtype=str,
                       keep_default_na=False)
