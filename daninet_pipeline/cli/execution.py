"""Running a Nipype workflow from CLI options: plugin, plugin arguments, crash files."""

from __future__ import annotations

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
    try:
        wf.run(plugin=opts.plugin, plugin_args=plugin_args)
    except RuntimeError as err:
        raise DaniNetError(f"{what} failed; crash files are in {log_dir}") from err
