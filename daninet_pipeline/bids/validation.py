"""Running the official BIDS validator (PyPI ``bids-validator-deno``, offline)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from ..errors import BIDSInputError
from .inputs import check_bids_root

VALIDATOR = "bids-validator-deno"


def validator_command() -> str:
    """Path of the validator executable, looked up next to this Python first."""
    import sys

    local = Path(sys.executable).parent / VALIDATOR
    if local.exists():
        return str(local)
    found = shutil.which(VALIDATOR)
    if found is None:
        raise BIDSInputError(f"{VALIDATOR} is not installed; install it or pass "
                             "--skip-bids-validation")
    return found


def run_validator(bids_dir: Path, *, recursive: bool = False) -> dict:
    """Validate a dataset; return ``{"errors": [...], "warnings": [...], "report": dict}``.

    Each issue is ``{"code", "location", "message"}``.
    """
    check_bids_root(bids_dir)
    cmd = [validator_command(), str(bids_dir), "--format", "json"]
    if recursive:
        cmd.append("--recursive")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise BIDSInputError(f"{bids_dir}: the BIDS validator failed: "
                             f"{' '.join((proc.stderr or proc.stdout).split())[:300]}") from err
    issues = report.get("issues", {}).get("issues", [])
    out = {"errors": [], "warnings": [], "report": report}
    for issue in issues:
        entry = {"code": issue.get("code"), "location": issue.get("location"),
                 "message": (issue.get("issueMessage") or "").strip()}
        out["errors" if issue.get("severity") == "error" else "warnings"].append(entry)
    return out


def validate_or_raise(bids_dir: Path) -> None:
    """Raise :class:`BIDSInputError` naming the first error when the dataset is invalid."""
    result = run_validator(bids_dir)
    if result["errors"]:
        first = result["errors"][0]
        raise BIDSInputError(
            f"{bids_dir}: the BIDS validator found {len(result['errors'])} error(s), first "
            f"{first['code']} at {first['location']}; fix them or pass --skip-bids-validation")
