"""Quality control at a study's scale: per-session measures (:mod:`.measures`, written by
the participant level), the group level's table with outliers flagged (:mod:`.table`),
and the sessions a user leaves out (:mod:`.exclusions`, ``--exclude-sessions``)."""

from .exclusions import apply_exclusions, read_excluded_sessions, read_exclusions
from .measures import QC_MEASURES, session_qc
from .table import OUTLIER_Z, exclusions_from_flags, flag_outliers, gather_qc, read_group_qc

__all__ = ["QC_MEASURES", "OUTLIER_Z", "apply_exclusions", "exclusions_from_flags", "flag_outliers",
           "gather_qc", "read_excluded_sessions", "read_exclusions", "read_group_qc", "session_qc"]
