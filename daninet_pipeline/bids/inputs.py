"""Reading the input BIDS dataset with pybids: T1w images, age and diagnosis per session.

Ages and diagnoses are read by column name from ``participants.tsv`` and
``sub-*/sub-*_sessions.tsv`` (column order varies between converters):

* Clinica ADNI-to-BIDS: ``sessions.tsv`` has ``age`` and ``diagnosis`` (CN, MCI, AD or
  n/a); ``participants.tsv`` has ``age_bl`` and ``diagnosis_sc`` (CN, SMC, EMCI, LMCI, AD).
* Clinica OASIS-3: ``sessions.tsv`` has ``age`` and ``cdr`` but no ``diagnosis``: CDR 0 is
  CN, 0.5 is MCI, 1 or more is AD.
* A plain dataset: ``age``/``diagnosis`` in ``sessions.tsv``, or in ``participants.tsv``
  for single-session subjects.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from ..diagnoses import DATASET_LABELS, DIAGNOSES
from ..errors import BIDSInputError

LOG = logging.getLogger("daninet.bids")

#: How the labels found in datasets fold into :data:`DIAGNOSES` (ADNI's six into three).
DEFAULT_DIAGNOSIS_MAP = DATASET_LABELS
_MISSING = {"", "n/a", "na", "nan", "none"}
_T1W_QUERY = {"datatype": "anat", "suffix": "T1w", "extension": [".nii", ".nii.gz"]}
COLUMNS = ["subject", "session", "t1w", "age", "diagnosis", "diagnosis_raw"]


def cdr_to_diagnosis(cdr: float) -> str:
    """OASIS convention: CDR 0 -> CN, 0.5 -> MCI, >= 1 -> AD."""
    if cdr <= 0:
        return "CN"
    return "MCI" if cdr < 1 else "AD"


def _strip(label: str, prefix: str) -> str:
    return label[len(prefix):] if label.startswith(prefix) else label


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise BIDSInputError(f"{path}: cannot be read as a TSV table ({err})") from err
    table.columns = [c.strip() for c in table.columns]
    return table


def _is_missing(value) -> bool:
    return value is None or str(value).strip().lower() in _MISSING


def _parse_age(value, path: Path, line: int, what: str) -> float:
    if _is_missing(value):
        raise BIDSInputError(f"{path}, line {line}: missing age for {what}")
    try:
        age = float(value)
    except ValueError:
        raise BIDSInputError(f"{path}, line {line}: age {value!r} of {what} is not a number") from None
    if not math.isfinite(age) or not 0 < age < 130:
        raise BIDSInputError(f"{path}, line {line}: age {value!r} of {what} is out of range")
    return age


def _parse_diagnosis(value, mapping: dict[str, str], path: Path, line: int, what: str) -> str | None:
    if _is_missing(value):
        return None
    label = mapping.get(str(value).strip().upper())
    if label is None:
        known = ", ".join(sorted(mapping))
        raise BIDSInputError(f"{path}, line {line}: unknown diagnosis {value!r} for {what} "
                             f"(known labels: {known})")
    return label


class _Clinical:
    """Ages and diagnoses of one subject, from its sessions.tsv and participants.tsv."""

    def __init__(self, subject: str, sessions_tsv: Path | None, participants: pd.DataFrame | None,
                 participants_tsv: Path | None, mapping: dict[str, str]):
        self.subject = subject
        self.mapping = mapping
        self.sessions_tsv = sessions_tsv
        self.sessions = _read_tsv(sessions_tsv) if sessions_tsv else None
        if self.sessions is not None and "session_id" not in self.sessions.columns:
            raise BIDSInputError(f"{sessions_tsv}: no 'session_id' column")
        self.participants_tsv = participants_tsv
        self.participant_row, self.participant_line = None, None
        if participants is not None:
            ids = participants["participant_id"].map(lambda v: _strip(v.strip(), "sub-"))
            hits = participants.index[ids == subject]
            if len(hits):
                self.participant_row = participants.loc[hits[0]]
                self.participant_line = int(hits[0]) + 2

    def lookup(self, session: str | None, n_sessions: int) -> tuple[float, str | None, str | None]:
        """(age, diagnosis, raw diagnosis label) of one session."""
        what = f"sub-{self.subject}" + (f" ses-{session}" if session else "")
        if self.sessions is not None and session is not None:
            ids = self.sessions["session_id"].map(lambda v: _strip(v.strip(), "ses-"))
            hits = self.sessions.index[ids == session]
            if not len(hits):
                raise BIDSInputError(f"{self.sessions_tsv}: no row for ses-{session}")
            row, line = self.sessions.loc[hits[0]], int(hits[0]) + 2
            if "age" in row.index:
                age = _parse_age(row["age"], self.sessions_tsv, line, what)
            elif n_sessions == 1 and self._participant_has("age"):
                age = self._participant_age(what)
            else:
                raise BIDSInputError(f"{self.sessions_tsv}, line {line}: missing age for {what} "
                                     "(no 'age' column)")
            if "diagnosis" in row.index:
                raw = row["diagnosis"]
                return age, _parse_diagnosis(raw, self.mapping, self.sessions_tsv, line, what), _raw(raw)
            if "cdr" in row.index or "cdr_global" in row.index:
                raw = row["cdr"] if "cdr" in row.index else row["cdr_global"]
                if _is_missing(raw):
                    return age, None, None
                try:
                    return age, cdr_to_diagnosis(float(raw)), f"CDR {raw}"
                except ValueError:
                    raise BIDSInputError(f"{self.sessions_tsv}, line {line}: CDR {raw!r} of "
                                         f"{what} is not a number") from None
            if n_sessions == 1:
                return age, *self._participant_diagnosis(what)
            return age, None, None
        # single-session subject without sessions.tsv: participants.tsv
        if not self._participant_has("age"):
            where = self.participants_tsv or "participants.tsv"
            raise BIDSInputError(f"{where}: missing age for {what} (no sessions.tsv row and no "
                                 "'age' column)")
        return self._participant_age(what), *self._participant_diagnosis(what)

    def _participant_has(self, column: str) -> bool:
        return self.participant_row is not None and column in self.participant_row.index

    def _participant_age(self, what: str) -> float:
        return _parse_age(self.participant_row["age"], self.participants_tsv,
                          self.participant_line, what)

    def _participant_diagnosis(self, what: str) -> tuple[str | None, str | None]:
        for column in ("diagnosis", "diagnosis_sc", "dx"):
            if self._participant_has(column):
                raw = self.participant_row[column]
                return (_parse_diagnosis(raw, self.mapping, self.participants_tsv,
                                         self.participant_line, what), _raw(raw))
        return None, None


def _raw(value) -> str | None:
    return None if _is_missing(value) else str(value).strip()


def check_bids_root(bids_dir) -> Path:
    """Raise :class:`BIDSInputError` unless ``bids_dir`` is a folder with a dataset_description.json."""
    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise BIDSInputError(f"{bids_dir}: not a directory")
    if not (bids_dir / "dataset_description.json").is_file():
        raise BIDSInputError(f"{bids_dir}: no dataset_description.json; not a BIDS dataset")
    return bids_dir


def open_layout(bids_dir: Path, database_dir: Path | None = None):
    """A pybids :class:`~bids.layout.BIDSLayout` of the raw dataset (no derivatives).

    With ``database_dir`` the index is saved there on first use and reused after, so a
    batch of jobs indexes the dataset once.
    """
    from bids.layout import BIDSLayout

    bids_dir = check_bids_root(bids_dir)
    kwargs = {}
    if database_dir is not None:
        Path(database_dir).mkdir(parents=True, exist_ok=True)
        kwargs["database_path"] = str(database_dir)
    try:
        return BIDSLayout(str(bids_dir), validate=False, derivatives=False, **kwargs)
    except Exception as err:  # pybids raises several types for a broken tree
        raise BIDSInputError(f"{bids_dir}: pybids cannot index this dataset ({err})") from err


def load_sessions(bids_dir, *, participant_label=None, session_label=None, bids_filter=None,
                  database_dir=None, diagnosis_map=None, layout=None) -> pd.DataFrame:
    """One row per selected T1w image, with the age and diagnosis of its session.

    Parameters
    ----------
    bids_dir : path of the BIDS dataset
    participant_label, session_label : labels to keep (with or without ``sub-``/``ses-``)
    bids_filter : fMRIPrep-style filter dict; its ``"t1w"`` entry adds pybids entities
        to the T1w query (e.g. ``{"t1w": {"acquisition": "mprage"}}``)
    database_dir : folder of a saved pybids index (created when missing)
    diagnosis_map : label -> model diagnosis (default :data:`DEFAULT_DIAGNOSIS_MAP`)

    Returns
    -------
    DataFrame with columns ``subject``, ``session`` (None in a dataset without
    sessions), ``t1w`` (absolute path), ``age`` (years, float), ``diagnosis`` (one of
    :data:`DIAGNOSES`, or None where the dataset says n/a) and ``diagnosis_raw``.
    """
    bids_dir = Path(bids_dir).resolve()
    layout = layout or open_layout(bids_dir, database_dir)
    mapping = {k.upper(): v for k, v in (diagnosis_map or DEFAULT_DIAGNOSIS_MAP).items()}
    unknown = set(mapping.values()) - set(DIAGNOSES)
    if unknown:
        raise BIDSInputError(f"diagnosis map targets {sorted(unknown)}; allowed: {', '.join(DIAGNOSES)}")

    subjects = sorted(layout.get_subjects())
    if participant_label:
        wanted = [_strip(p, "sub-") for p in participant_label]
        missing = [p for p in wanted if p not in subjects]
        if missing:
            raise BIDSInputError(f"{bids_dir}: no subject {', '.join('sub-' + m for m in missing)}")
        subjects = [s for s in subjects if s in wanted]
    if not subjects:
        raise BIDSInputError(f"{bids_dir}: no subjects found")
    query = dict(_T1W_QUERY)
    query.update((bids_filter or {}).get("t1w", {}))
    sessions_wanted = [_strip(s, "ses-") for s in session_label] if session_label else None

    participants_tsv = bids_dir / "participants.tsv"
    participants = _read_tsv(participants_tsv) if participants_tsv.is_file() else None
    if participants is not None and "participant_id" not in participants.columns:
        raise BIDSInputError(f"{participants_tsv}: no 'participant_id' column")

    rows = []
    for sub in subjects:
        files = layout.get(subject=sub, return_type="object", **query)
        if not files:
            raise BIDSInputError(f"{bids_dir / ('sub-' + sub)}: no T1w image")
        if sessions_wanted is not None:
            files = [f for f in files if f.entities.get("session") in sessions_wanted]
            if not files:
                continue
        sessions_file = layout.get(subject=sub, suffix="sessions", extension=".tsv",
                                   return_type="filename")
        clinical = _Clinical(sub, Path(sessions_file[0]) if sessions_file else None,
                             participants, participants_tsv if participants is not None else None,
                             mapping)
        n_sessions = len(layout.get_sessions(subject=sub)) or 1
        for f in sorted(files, key=lambda f: f.path):
            session = f.entities.get("session")
            age, dx, raw = clinical.lookup(session, n_sessions)
            rows.append({"subject": sub, "session": session, "t1w": str(Path(f.path).resolve()),
                         "age": age, "diagnosis": dx, "diagnosis_raw": raw})
    if not rows:
        raise BIDSInputError(f"{bids_dir}: no T1w image matches the session selection "
                             f"{', '.join('ses-' + s for s in sessions_wanted or [])}")
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["subject", "session", "t1w"], na_position="first").reset_index(drop=True)


def impute_missing_diagnoses(table: pd.DataFrame) -> pd.DataFrame:
    """Training rows: a session with no diagnosis takes its neighbours' when they agree.

    Sessions are ordered by age within a subject. A session whose previous and next
    sessions (with a diagnosis) agree takes that diagnosis; any other session without a
    diagnosis is left out. A warning counts both kinds. Returns a new table.
    """
    table = table.sort_values(["subject", "age"]).reset_index(drop=True)
    diagnosis = table["diagnosis"].astype(object).copy()
    filled, dropped = 0, []
    for _, group in table.groupby("subject", sort=False):
        known = group["diagnosis"].notna()
        for idx in group.index[~known]:
            before = group.loc[(group.index < idx) & known, "diagnosis"]
            after = group.loc[(group.index > idx) & known, "diagnosis"]
            if len(before) and len(after) and before.iloc[-1] == after.iloc[0]:
                diagnosis[idx] = before.iloc[-1]
                filled += 1
            else:
                dropped.append(idx)
    if filled or dropped:
        LOG.warning("%d sessions without a diagnosis took their neighbours'; %d left out of "
                    "training (neighbours disagree or missing)", filled, len(dropped))
    out = table.assign(diagnosis=diagnosis).drop(index=dropped)
    return out.reset_index(drop=True)
