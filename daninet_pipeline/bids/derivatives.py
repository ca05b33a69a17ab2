"""Keeping the derivatives folder valid for the BIDS validator."""

from __future__ import annotations

from pathlib import Path

#: Files the derivatives folder holds that BIDS 1.10 has no rule for: transforms (BEP014),
#: QC figures, the group level's models and reports, Nipype crash logs.
#: (bids-validator-deno's syntax: ``**/figures`` and ``models`` match folders, a trailing
#: slash does not.)
BIDSIGNORE = ("*_xfm.txt", "*_xfm.json", "**/figures", "models", "logs", "*.html")


def ensure_bidsignore(output_dir, patterns=BIDSIGNORE) -> Path:
    """Add the missing ``patterns`` to ``output_dir/.bidsignore`` (kept lines stay)."""
    path = Path(output_dir) / ".bidsignore"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.is_file() else []
    missing = [p for p in patterns if p not in lines]
    if missing:
        path.write_text("\n".join(lines + missing) + "\n")
    return path
