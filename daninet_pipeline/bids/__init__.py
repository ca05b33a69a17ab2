"""Reading BIDS inputs (pybids) and validating datasets."""

from .inputs import (
    DEFAULT_DIAGNOSIS_MAP,
    DIAGNOSES,
    cdr_to_diagnosis,
    impute_missing_diagnoses,
    load_sessions,
    open_layout,
)
from .validation import run_validator, validate_or_raise

__all__ = [
    "DEFAULT_DIAGNOSIS_MAP",
    "DIAGNOSES",
    "cdr_to_diagnosis",
    "impute_missing_diagnoses",
    "load_sessions",
    "open_layout",
    "run_validator",
    "validate_or_raise",
]
