#!/usr/bin/env python3
"""Check the participant-level derivatives of a run against its BIDS input.

For every T1w image of the input (``sub-X[/ses-Y]/anat/*_T1w.nii[.gz]``, optionally only
some subjects), the output must hold, in ``sub-X[/ses-Y]/anat/``, a pre-processed T1w
(``*_desc-preproc_T1w.nii.gz``) and a brain mask (``*_desc-brain_mask.nii.gz``) of the
same session that load with nibabel, have the same grid, and where the mask is binary,
not empty, and the image finite. ``OUTPUT_DIR/dataset_description.json`` must say
``"DatasetType": "derivative"``.

Used by the container test, the SLURM test and operators after an array job:
``--missing FILE`` writes one subject label a line for the subjects to run again (the
array recipe reads such a file). Exit status: 0 when complete, 1 otherwise.

    python workflows/check_derivatives.py BIDS_DIR OUTPUT_DIR [--participant-label A B]
                    [--session-label M000] [--missing rerun.txt] [--quick]

Needs only nibabel and numpy (both inside the image).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

T1W = re.compile(r"^(sub-[A-Za-z0-9]+)(?:_(ses-[A-Za-z0-9]+))?.*_T1w\.nii(?:\.gz)?$")


def input_sessions(bids_dir: Path, labels: list[str] | None,
                   sessions: list[str] | None = None) -> list[tuple[str, str | None]]:
    """(subject, session or None) of every T1w image of the input, sorted, unique."""
    wanted = {f"sub-{label.removeprefix('sub-')}" for label in labels} if labels else None
    wanted_ses = {f"ses-{label.removeprefix('ses-')}" for label in sessions} if sessions else None
    found = set()
    for path in bids_dir.glob("sub-*/**/anat/*_T1w.nii*"):
        match = T1W.match(path.name)
        if match and (wanted is None or match.group(1) in wanted) \
                and (wanted_ses is None or match.group(2) in wanted_ses):
            found.add((match.group(1), match.group(2)))
    return sorted(found, key=lambda item: (item[0], item[1] or ""))


def check_session(out_dir: Path, sub: str, ses: str | None, *, quick: bool = False) -> list[str]:
    """Problems with one session's derivatives (empty when fine)."""
    anat = out_dir / sub / (ses or "") / "anat"
    prefix = f"{sub}_{ses}" if ses else sub
    preproc = sorted(anat.glob(f"{prefix}_*desc-preproc_T1w.nii.gz"))
    masks = sorted(anat.glob(f"{prefix}_*desc-brain_mask.nii.gz"))
    problems = []
    if not preproc:
        problems.append(f"no {prefix}_*desc-preproc_T1w.nii.gz in {anat}")
    if not masks:
        problems.append(f"no {prefix}_*desc-brain_mask.nii.gz in {anat}")
    if problems or quick:
        return problems
    import nibabel as nib
    import numpy as np

    for img_path in preproc:
        # the mask of the same space as the image
        space = re.search(r"_space-[A-Za-z0-9]+", img_path.name)
        mask_path = next((m for m in masks if space is None or space.group(0) in m.name), masks[0])
        try:
            img, mask = nib.load(img_path), nib.load(mask_path)
            data, mdata = np.asanyarray(img.dataobj), np.asanyarray(mask.dataobj)
        except Exception as err:  # noqa: BLE001 - any unreadable file is a problem
            problems.append(f"{img_path.name}: cannot be read ({err})")
            continue
        if data.shape[:3] != mdata.shape[:3] or not np.allclose(img.affine, mask.affine, atol=1e-3):
            problems.append(f"{img_path.name} and {mask_path.name} are not on the same grid")
        if not np.all(np.isfinite(data)):
            problems.append(f"{img_path.name} has non-finite values")
        if not set(np.unique(mdata)).issubset({0, 1}):
            problems.append(f"{mask_path.name} is not binary")
        elif not mdata.any():
            problems.append(f"{mask_path.name} is empty")
        elif float(np.abs(data[mdata > 0]).max(initial=0)) == 0.0:
            problems.append(f"{img_path.name} is zero inside the brain mask")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bids_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--participant-label", nargs="+", metavar="LABEL")
    parser.add_argument("--session-label", nargs="+", metavar="LABEL")
    parser.add_argument("--missing", type=Path, metavar="FILE",
                        help="write the labels of incomplete subjects here, one a line")
    parser.add_argument("--quick", action="store_true",
                        help="only check that the files exist (no image loading)")
    opts = parser.parse_args(argv)

    sessions = input_sessions(opts.bids_dir, opts.participant_label, opts.session_label)
    if not sessions:
        print(f"check_derivatives: no T1w images selected in {opts.bids_dir}", file=sys.stderr)
        return 1
    problems: dict[str, list[str]] = {}
    description = opts.output_dir / "dataset_description.json"
    try:
        if json.loads(description.read_text()).get("DatasetType") != "derivative":
            problems.setdefault("dataset", []).append(f"{description}: DatasetType is not derivative")
    except (OSError, json.JSONDecodeError) as err:
        problems.setdefault("dataset", []).append(f"{description}: {err}")
    for sub, ses in sessions:
        found = check_session(opts.output_dir, sub, ses, quick=opts.quick)
        if found:
            problems.setdefault(sub, []).extend(found)
        print(f"{sub} {ses or '-'}: {'OK' if not found else 'INCOMPLETE'}")
    subjects = sorted({sub for sub, _ in sessions})
    bad = sorted(key for key in problems if key != "dataset")
    for key, items in problems.items():
        for item in items:
            print(f"  {key}: {item}", file=sys.stderr)
    if opts.missing is not None:
        opts.missing.write_text("".join(f"{sub.removeprefix('sub-')}\n" for sub in bad))
    print(f"check_derivatives: {len(subjects) - len(bad)}/{len(subjects)} subjects complete "
          f"({len(sessions)} sessions checked){'' if not problems else '; problems listed above'}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
