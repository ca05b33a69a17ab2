"""Running a Nipype workflow from CLI options: plugin, plugin arguments, crash files."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from ..bids.derivatives import ensure_bidsignore
from ..errors import DaniNetError

#: seconds between two scheduling passes of Nipype's MultiProc plugin. Nipype's default
#: (2 s) idles a worker up to 2 s after every node: with about 15 short nodes per T1w
#: that was most of the participant level's wall time. Batch plugins (SLURM, SGE) keep
#: Nipype's default, which paces their queue queries.
MULTIPROC_POLL_SECONDS = 0.1


def default_omp_nthreads(nprocs: int, n_images: int) -> int:
    """Threads one node may use when ``--omp-nthreads`` is not given: the cores left to
    each T1w when all of them (at most ``nprocs``) run side by side, at most 8.

    Each T1w is a chain of nodes, and Nipype's MultiProc starts a node only when its
    ``n_procs`` fit in the free cores. With 2 cores, 10 T1w images and nodes that ask for
    2 threads, the heavy nodes ran one at a time and the single-threaded parts of each
    (file reading, gzip, scipy) left the second core idle: 1 thread per node and 2 nodes
    at once keeps both cores busy (docs/benchmarks.md, "Throughput of the participant
    level"). A single T1w gets every core, since its chain can run no node beside another.

    >>> default_omp_nthreads(2, 10), default_omp_nthreads(2, 1), default_omp_nthreads(16, 5)
    (1, 2, 3)
    >>> default_omp_nthreads(32, 1)
    8
    """
    nprocs, n_images = max(1, int(nprocs)), max(1, int(n_images))
    return max(1, min(8, nprocs // min(nprocs, n_images)))


def multiproc_poll(wf, plugin: str) -> None:
    """Set ``wf``'s scheduling interval to :data:`MULTIPROC_POLL_SECONDS` for MultiProc."""
    if plugin == "MultiProc":
        wf.config["execution"]["poll_sleep_duration"] = MULTIPROC_POLL_SECONDS


#: environment variable naming the file a MultiProc worker writes Nipype's lines to
WORKER_LOG_ENV = "DANINET_NIPYPE_LOG"


def log_nipype_to_file(path) -> None:
    """In a worker process: Nipype's lines go to the file ``path`` (appended), not to the
    terminal."""
    import nipype  # noqa: F401  (installs its stdout handler first)

    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    nipype_logger = logging.getLogger("nipype")
    nipype_logger.handlers.clear()
    nipype_logger.addHandler(handler)
    nipype_logger.propagate = False


@contextlib.contextmanager
def nipype_log_to(path, verbose: int = 0):
    """Nipype's log lines (its 30-line tracebacks among them) go to the file ``path``
    (and, with ``-v``, also to the terminal); without ``-v`` the terminal keeps the app's
    own lines, one per failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    nipype_logger = logging.getLogger("nipype")
    propagate = nipype_logger.propagate
    nipype_logger.addHandler(handler)
    nipype_logger.propagate = bool(verbose)
    # spawned MultiProc workers import nipype afresh, with its handler to stdout: they send
    # their lines to the same file (cli.signals._worker_initializer)
    previous = os.environ.get(WORKER_LOG_ENV)
    if not verbose:
        os.environ[WORKER_LOG_ENV] = str(path)
    try:
        yield path
    finally:
        nipype_logger.removeHandler(handler)
        nipype_logger.propagate = propagate
        handler.close()
        if previous is None:
            os.environ.pop(WORKER_LOG_ENV, None)
        else:
            os.environ[WORKER_LOG_ENV] = previous


def new_run_id(level: str) -> str:
    """``<level>_<UTC date-time>_<8 hex>``: the name of a run's folder under ``OUTPUT_DIR/logs``."""
    import time
    import uuid

    return f"{level}_{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}_{uuid.uuid4().hex[:8]}"


def run_workflow(wf, opts, *, what: str, run_dir, stop_on_first_crash: bool = False,
                 check: bool = True):
    """Run ``wf`` (a level's top-level workflow from :mod:`daninet_pipeline.workflows.base`)
    with ``opts.plugin``/``opts.plugin_args``: the one runner of every level.

    MultiProc gets ``n_procs`` from ``--nprocs`` (default: all cores) and ``memory_gb`` from
    ``--mem-gb``; crash files (text) and Nipype's log go to ``run_dir``
    (``OUTPUT_DIR/logs/<run id>``); with MultiProc and Linear a
    :class:`~daninet_pipeline.cli.progress.StepProgress` is Nipype's status callback (the
    progress line; the per-step times and failures the reports show). Returns
    ``(progress, crashed)``; with ``check`` a crash raises :class:`DaniNetError` naming
    ``what`` failed and where the crash files are.
    """
    import os

    from .progress import StepProgress, graph_steps

    ensure_bidsignore(opts.output_dir)
    run_dir = Path(run_dir)
    wf.config["execution"].update({"crashdump_dir": str(run_dir), "crashfile_format": "txt",
                                   "stop_on_first_crash": stop_on_first_crash or opts.stop_on_first_crash})
    multiproc_poll(wf, opts.plugin)
    if not getattr(opts, "verbose", 0):  # Nipype's per-node lines only with -v
        from nipype import logging as nipype_logging

        nipype_logging.getLogger("nipype.workflow").setLevel(logging.WARNING)
    plugin_args = dict(opts.plugin_args or {})
    workers = 1
    if opts.plugin == "MultiProc":
        plugin_args.setdefault("n_procs", opts.nprocs or os.cpu_count() or 1)
        if opts.mem_gb:
            plugin_args.setdefault("memory_gb", opts.mem_gb)
        plugin_args.setdefault("raise_insufficient", False)
        workers = plugin_args["n_procs"]
    progress = StepProgress(what, graph_steps(wf), workers=workers,
                            groups=getattr(wf, "daninet_groups", {}))
    if opts.plugin in ("MultiProc", "Linear"):
        plugin_args.setdefault("status_callback", progress)
        progress.start()
    crashed = False
    try:
        with nipype_log_to(run_dir / "nipype.log", getattr(opts, "verbose", 0)):
            from .signals import plugin_for

            wf.run(plugin=plugin_for(opts.plugin, plugin_args), plugin_args=plugin_args)
    except RuntimeError as err:  # Nipype: "Workflow did not execute cleanly"
        crashed = True
        logging.getLogger("daninet").debug("nipype: %s", err)
        if check:
            raise DaniNetError(f"{what} failed; crash files and log are in {run_dir}") from err
    finally:
        progress.close()
    return progress, crashed


def write_table(table, folder, stem: str) -> Path:
    """``table`` as ``folder/<stem>_<content hash>.tsv``, written once: Nipype hashes input
    files by path and time stamp, so the same selection finds the same file and every
    node stays cached, and another selection gets its own file."""
    import hashlib
    import io

    from ..atomic import write_text

    buffer = io.StringIO()
    table.to_csv(buffer, sep="\t", index=False, na_rep="n/a")
    text = buffer.getvalue()
    return write_text(Path(folder) / f"{stem}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.tsv", text)
