"""Running a Nipype workflow from CLI options: plugin, plugin arguments, crash files."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from ..bids.derivatives import ensure_bidsignore
from ..errors import DaniNetError

#: seconds between two scheduling passes of Nipype's MultiProc plugin. Nipype's default
#: (2 s) idles a worker up to 2 s after every node: with about 15 short nodes per T1w
#: that was most of the participant level's wall time. Batch plugins (SLURM, SGE) keep
#: Nipype's default, which paces their queue queries.
MULTIPROC_POLL_SECONDS = 0.1


def multiproc_poll(wf, plugin: str) -> None:
    """Set ``wf``'s scheduling interval to :data:`MULTIPROC_POLL_SECONDS` for MultiProc."""
    if plugin == "MultiProc":
        wf.config["execution"]["poll_sleep_duration"] = MULTIPROC_POLL_SECONDS


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
    try:
        yield path
    finally:
        nipype_logger.removeHandler(handler)
        nipype_logger.propagate = propagate
        handler.close()


def run_workflow(wf, opts, *, what: str, stop_on_first_crash: bool = False) -> None:
    """Run ``wf`` with ``opts.plugin``/``opts.plugin_args`` (``n_procs`` from ``--nprocs``
    for MultiProc); crash files go to ``OUTPUT_DIR/logs`` as text. Raises
    :class:`DaniNetError` naming ``what`` failed and where the crash files are."""
    ensure_bidsignore(opts.output_dir)
    log_dir = Path(opts.output_dir) / "logs"
    wf.config["execution"].update({"crashdump_dir": str(log_dir), "crashfile_format": "txt",
                                   "stop_on_first_crash": stop_on_first_crash or opts.stop_on_first_crash})
    multiproc_poll(wf, opts.plugin)
    plugin_args = dict(opts.plugin_args or {})
    if opts.plugin == "MultiProc" and opts.nprocs:
        plugin_args.setdefault("n_procs", opts.nprocs)
    log_file = log_dir / f"{wf.name}.log"
    try:
        with nipype_log_to(log_file, getattr(opts, "verbose", 0)):
            from .signals import plugin_for

            wf.run(plugin=plugin_for(opts.plugin, plugin_args), plugin_args=plugin_args)
    except RuntimeError as err:
        raise DaniNetError(f"{what} failed; crash files and log are in {log_dir}") from err


def write_table(table, folder, stem: str) -> Path:
    """``table`` as ``folder/<stem>_<content hash>.tsv``, written once: Nipype hashes input
    files by path and time stamp, so the same selection finds the same file and every
    node stays cached, and another selection gets its own file."""
    import hashlib
    import io
    import os
    import uuid

    buffer = io.StringIO()
    table.to_csv(buffer, sep="\t", index=False, na_rep="n/a")
    text = buffer.getvalue()
    path = Path(folder) / f"{stem}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.tsv"
    if path.is_file() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
