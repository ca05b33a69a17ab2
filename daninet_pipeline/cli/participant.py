"""``daninet BIDS_DIR OUTPUT_DIR participant``: pre-processing derivatives.

All selected subjects go into one Nipype workflow (``daninet_participant_wf``, one
``init_participant_wf`` per subject), run with the chosen plugin. A session whose input
is bad crashes only its own branch: the other sessions and subjects finish, the failure
is reported in one line with its crash file, and the exit code is 1.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DaniNetError
from .execution import multiproc_poll

LOG = logging.getLogger("daninet")


@dataclass
class _Progress:
    """Nipype status callback: logs each session's start, end and failure."""

    sessions: dict[tuple[str, str], str]  # (subject wf name, session key) -> "sub-X ses-Y"
    total: int
    started: set = field(default_factory=set)
    done: set = field(default_factory=set)
    failed: dict = field(default_factory=dict)  # label -> node fullname
    t0: float = field(default_factory=time.monotonic)

    def label(self, node) -> str | None:
        hierarchy = f"{node._hierarchy or ''}.{node.name}"
        m = re.search(r"(sub_[A-Za-z0-9_]+?_wf)\.(?:preproc|ds)_(.+?)_wf", hierarchy)
        if not m:
            return None
        return self.sessions.get((m.group(1), m.group(2)))

    def __call__(self, node, status) -> None:
        label = self.label(node)
        if label is None:
            return
        if status == "start" and label not in self.started:
            self.started.add(label)
            LOG.info("%s: started", label)
        elif status == "exception":
            self.failed.setdefault(label, f"{node._hierarchy}.{node.name}")
        elif status == "end" and node.name == "ds_report":
            self.done.add(label)
            elapsed = time.monotonic() - self.t0
            n = len(self.done)
            eta = elapsed / n * (self.total - n - len(self.failed))
            LOG.info("%s: done (%d/%d sessions, %.0f s elapsed, ETA %.0f s)",
                     label, n, self.total, elapsed, max(eta, 0))


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


def build_workflow(table: pd.DataFrame, *, output_dir, work_dir, bids_dir=None,
                   backend: str = "embedded", omp_nthreads: int = 1,
                   brain_extraction: str = "deepbet", registration: str = "fast"):
    """The participant-level workflow of every subject in ``table`` (see
    :func:`daninet_pipeline.bids.load_sessions`), and the session labels by
    (subject workflow name, session key)."""
    from niworkflows.engine.workflows import LiterateWorkflow as Workflow

    from ..workflows.participant import init_participant_wf, session_key

    wf = Workflow(name="daninet_participant_wf", base_dir=str(work_dir))
    labels = {}
    for subject, rows in table.groupby("subject", sort=True):
        sessions = [(None if pd.isna(s) else s, t) for s, t in zip(rows["session"], rows["t1w"])]
        sub_wf = init_participant_wf(subject=subject, sessions=sessions, output_dir=str(output_dir),
                                     bids_dir=str(bids_dir) if bids_dir else None, backend=backend,
                                     omp_nthreads=omp_nthreads, brain_extraction=brain_extraction,
                                     registration=registration)
        seen = set()
        for session, t1w in sessions:
            key = session_key(session, t1w)
            while key in seen:
                key += "_dup"
            seen.add(key)
            extra = "".join(f"_{e}" for e in re.findall(r"(?:acq|rec|run)-[a-zA-Z0-9]+", Path(t1w).name))
            labels[(sub_wf.name, key)] = f"sub-{subject}" + (f" ses-{session}" if session else "") + extra
        wf.add_nodes([sub_wf])
    return wf, labels


def run_participant(opts, table: pd.DataFrame, *, brain_extraction: str = "deepbet",
                    registration: str = "fast") -> int:
    """Pre-process every T1w of ``table``; return the exit code (0: all sessions done)."""
    from ..bids.derivatives import ensure_bidsignore
    from ..interfaces.bids import write_dataset_description
    from .execution import nipype_log_to

    if table.empty:
        raise DaniNetError("no T1w image selected")
    output_dir, work_dir = Path(opts.output_dir), Path(opts.work_dir)
    if output_dir.resolve() == Path(opts.bids_dir).resolve():
        raise DaniNetError("OUTPUT_DIR must differ from BIDS_DIR")
    nprocs = opts.nprocs or os.cpu_count() or 1
    omp = opts.omp_nthreads or min(8, nprocs)
    if opts.preproc_backend == "fsl" and not os.environ.get("FSLDIR"):
        raise DaniNetError("--preproc-backend fsl needs FSL: set FSLDIR (FSL is installed in "
                           "the container image)")
    write_dataset_description(output_dir, bids_dir=opts.bids_dir, backend=opts.preproc_backend)
    ensure_bidsignore(output_dir)
    wf, labels = build_workflow(table, output_dir=output_dir, work_dir=work_dir,
                                bids_dir=opts.bids_dir, backend=opts.preproc_backend,
                                omp_nthreads=omp, brain_extraction=brain_extraction,
                                registration=registration)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "_" + uuid.uuid4().hex[:8]
    crash_dir = output_dir / "logs" / f"participant_{run_id}"
    wf.config["execution"].update({
        "crashdump_dir": str(crash_dir), "crashfile_format": "txt",
        "stop_on_first_crash": bool(opts.stop_on_first_crash),
        "remove_unnecessary_outputs": False,
    })
    multiproc_poll(wf, opts.plugin)
    if not getattr(opts, "verbose", 0):  # Nipype's per-node lines only with -v
        from nipype import logging as nipype_logging

        nipype_logging.getLogger("nipype.workflow").setLevel(logging.WARNING)
    progress = _Progress(sessions=labels, total=len(labels))
    plugin_args = dict(opts.plugin_args or {})
    if opts.plugin == "MultiProc":
        plugin_args.setdefault("n_procs", nprocs)
        if opts.mem_gb:
            plugin_args.setdefault("memory_gb", opts.mem_gb)
        plugin_args.setdefault("raise_insufficient", False)
    if opts.plugin in ("MultiProc", "Linear"):
        plugin_args.setdefault("status_callback", progress)
    LOG.info("pre-processing %d T1w images of %d subjects (%s backend, %s plugin, work dir %s)",
             len(labels), table["subject"].nunique(), opts.preproc_backend, opts.plugin, work_dir)
    crashed = False
    try:
        with nipype_log_to(crash_dir / "nipype.log", getattr(opts, "verbose", 0)):
            from .signals import plugin_for

            wf.run(plugin=plugin_for(opts.plugin, plugin_args), plugin_args=plugin_args)
    except RuntimeError as err:  # Nipype: "Workflow did not execute cleanly"
        crashed = True
        LOG.debug("nipype: %s", err)
    failed = dict(progress.failed)
    if crashed and not failed:  # a plugin without status callbacks: read the crash files
        for crash in sorted(crash_dir.glob("crash-*.txt")):
            node = _crash_node(crash)
            for (sub_name, key), label in labels.items():
                if f".{sub_name}.preproc_{key}_wf." in f".{node}" or f".{sub_name}.ds_{key}_wf." in f".{node}":
                    failed.setdefault(label, crash)
    lines = []
    for label, where in sorted(failed.items()):
        crash = where if isinstance(where, Path) else _find_crash(crash_dir, where)
        reason = _crash_reason(crash) if crash else "crashed"
        lines.append(f"{label}: FAILED: {reason} (crash file: {crash or crash_dir})")
        print(lines[-1], flush=True)
    ok = len(labels) - len(failed)
    if crashed and not failed:
        print(f"daninet: the workflow did not finish cleanly; see {crash_dir}", flush=True)
        return 1
    summary = f"participant level: {ok}/{len(labels)} T1w images pre-processed into {output_dir}"
    if failed:
        summary += f"; failed: {', '.join(sorted(failed))}"
    print(summary, flush=True)
    return 1 if failed else 0
