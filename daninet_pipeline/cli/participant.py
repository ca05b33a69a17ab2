"""``daninet BIDS_DIR OUTPUT_DIR participant``: pre-processing derivatives.

All selected subjects go into one Nipype workflow
(:func:`~daninet_pipeline.workflows.base.init_daninet_participant_wf`), run by the one
runner (:func:`~daninet_pipeline.cli.execution.run_workflow`). A session whose input
is bad crashes only its own branch: the other sessions and subjects finish, the failure
is reported in one line with its crash file, and the exit code is 1.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pandas as pd

from ..errors import DaniNetError
from .execution import default_omp_nthreads

LOG = logging.getLogger("daninet")


def _crash_reason(crash_file: Path) -> str:
    """The last exception line of a Nipype text crash file."""
    lines = [ln.strip() for ln in crash_file.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b.*:", line) or re.match(r"^[\w.]+Error$", line):
            return line
    return lines[-1] if lines else "unknown error"


def _crash_node(crash_file: Path) -> str:
    """The node a Nipype text crash file is about (its first line: ``Node: <full name>``)."""
    with open(crash_file, errors="replace") as fh:
        first = fh.readline().strip()
    return first[len("Node: "):] if first.startswith("Node: ") else ""


def _find_crash(crash_dir: Path, node_fullname: str) -> Path | None:
    """The crash file of exactly ``node_fullname`` (subject, session and node: every ADNI
    baseline's workflow is named ``preproc_ses_M000_wf``), or None."""
    node = node_fullname.rsplit(".", 1)[-1]
    candidates = sorted(crash_dir.glob(f"crash-*{node}*.txt"), key=os.path.getmtime)
    for path in reversed(candidates):
        if _crash_node(path) == node_fullname:
            return path
    return None


def run_participant(opts, table: pd.DataFrame, run_dir=None, *, brain_extraction: str = "deepbet",
                    registration: str = "fast") -> int:
    """Pre-process every T1w of ``table``; write each subject's report and the run's
    CITATION.md; return the exit code (0: all sessions done). ``run_dir``: the run's
    ``OUTPUT_DIR/logs/<run id>`` (a new one when None)."""
    from ..bids.derivatives import ensure_bidsignore
    from ..interfaces.bids import write_dataset_description
    from ..workflows.base import init_daninet_participant_wf
    from .execution import new_run_id, run_workflow

    if table.empty:
        raise DaniNetError("no T1w image selected")
    output_dir, work_dir = Path(opts.output_dir), Path(opts.work_dir)
    if output_dir.resolve() == Path(opts.bids_dir).resolve():
        raise DaniNetError("OUTPUT_DIR must differ from BIDS_DIR")
    nprocs = opts.nprocs or os.cpu_count() or 1
    omp = opts.omp_nthreads or default_omp_nthreads(nprocs, len(table))
    if opts.preproc_backend == "fsl" and not os.environ.get("FSLDIR"):
        raise DaniNetError("--preproc-backend fsl needs FSL: set FSLDIR (FSL is installed in "
                           "the container image)")
    run_dir = Path(run_dir) if run_dir else output_dir / "logs" / new_run_id("participant")
    write_dataset_description(output_dir, bids_dir=opts.bids_dir, backend=opts.preproc_backend)
    ensure_bidsignore(output_dir)
    wf = init_daninet_participant_wf(table, output_dir=output_dir, work_dir=work_dir,
                                     bids_dir=opts.bids_dir, backend=opts.preproc_backend,
                                     omp_nthreads=omp, brain_extraction=brain_extraction,
                                     registration=registration)
    labels = sorted(set(wf.daninet_groups.values()))
    LOG.info("pre-processing %d T1w images of %d subjects (%s backend, %s plugin, work dir %s)",
             len(labels), table["subject"].nunique(), opts.preproc_backend, opts.plugin, work_dir)
    progress, crashed = run_workflow(wf, opts, what="participant level", run_dir=run_dir, check=False)
    failed = dict(progress.failed)
    if crashed and not failed:  # a plugin without status callbacks: read the crash files
        for crash in sorted(run_dir.glob("crash-*.txt")):
            label = progress.group_of(_crash_node(crash))
            if label is not None:
                failed.setdefault(label, crash)
    lines, reasons = [], {}
    for label, where in sorted(failed.items()):
        crash = where if isinstance(where, Path) else _find_crash(run_dir, where)
        reasons[label] = f"{_crash_reason(crash) if crash else 'crashed'} (crash file: {crash or run_dir})"
        lines.append(f"{label}: FAILED: {reasons[label]}")
        print(lines[-1], flush=True)
    reports = _write_reports(output_dir, table, progress, reasons)
    _write_citation(opts, wf, run_dir)
    ok = len(labels) - len(failed)
    for report in reports:
        print(f"report: {report}", flush=True)
    if crashed and not failed:
        print(f"daninet: the workflow did not finish cleanly; see {run_dir}", flush=True)
        return 1
    summary = f"participant level: {ok}/{len(labels)} T1w images pre-processed into {output_dir}"
    if failed:
        summary += f"; failed: {', '.join(sorted(failed))}"
    print(summary, flush=True)
    return 1 if failed else 0


def _write_reports(output_dir: Path, table: pd.DataFrame, progress, reasons: dict) -> list[Path]:
    """Each subject's step records (``logs/sub-X_steps.tsv``) and ``sub-X.html``."""
    from ..reports.subject import write_steps, write_subject_report

    by_label = progress.by_group()
    reports = []
    for subject in sorted(table["subject"].unique()):
        rows = []
        for label in sorted(by_label):
            if label.split(" ", 1)[0] != f"sub-{subject}":
                continue
            session = label.split(" ", 1)[1] if " " in label else "(no session)"
            for rec in by_label[label]:
                detail = reasons.get(label, "") if rec.status == "failed" else ""
                rows.append({"session": session, "step": rec.name, "status": rec.status,
                             "seconds": None if rec.seconds is None else round(rec.seconds, 3),
                             "detail": detail})
        write_steps(output_dir, subject, rows)
        reports.append(write_subject_report(output_dir, subject))
    return reports


def _write_citation(opts, wf, run_dir: Path) -> Path:
    from ..data.resources import DEFAULT_TEMPLATE
    from ..reports.citation import citation_text, write_citation

    text = citation_text(level="participant", workflow=wf, template=DEFAULT_TEMPLATE,
                         backend=opts.preproc_backend)
    return write_citation(opts.output_dir, run_dir, text)
