"""The ``daninet`` entry point: ``daninet BIDS_DIR OUTPUT_DIR {participant,group} [options]``."""

from __future__ import annotations

import getpass
import logging
import os
import sys

from ..errors import DaniNetError
from .parser import parse_args

LOG = logging.getLogger("daninet")


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S")
    # Nipype puts its own stdout handler on the "nipype" logger at import, which also
    # propagates to the root handler: every Nipype line came out twice. Keep the root's.
    import nipype  # noqa: F401

    logging.getLogger("nipype").handlers.clear()


def _ensure_logname() -> None:
    """Nipype's SLURM/SGE plugins read LOGNAME, which batch and container shells may lack;
    a container run as a uid without a passwd entry (Apptainer) has no user name at all."""
    if "LOGNAME" in os.environ:
        return
    try:
        os.environ["LOGNAME"] = getpass.getuser()
    except (KeyError, OSError):
        os.environ["LOGNAME"] = str(os.getuid())


def main(argv: list[str] | None = None) -> int:
    """Run the BIDS App; return the process exit code (0 on success)."""
    from .replay import ReplayError
    from .signals import SIGNAL_NAMES, Stopped, install_handlers, restore_handlers, stop_children

    try:
        opts = parse_args(argv)
    except ReplayError as err:
        print(f"daninet: error: {err}", file=sys.stderr)
        return 2
    _setup_logging(opts.verbose)
    _ensure_logname()
    previous = install_handlers()
    try:
        return _run(opts)
    except DaniNetError as err:
        print(f"daninet: error: {err}", file=sys.stderr)
        return 1
    except Stopped as stop:
        # the pool's futures fail as their workers end: expected, not worth a traceback
        logging.getLogger("concurrent.futures").disabled = True
        n = stop_children()
        from .batch import cancel_submitted_jobs

        jobs = cancel_submitted_jobs()
        cancelled = f", {len(jobs)} batch job(s) cancelled" if jobs else ""
        print(f"daninet: stopped by {SIGNAL_NAMES[stop.signum]}; {n} worker process(es) ended{cancelled}; "
              "rerun the same command to go on from the work folder's cache", file=sys.stderr, flush=True)
        return stop.exit_code
    finally:
        restore_handlers(previous)


def _run(opts) -> int:
    """Select the sessions, record the run (``logs/<run id>/config.toml``) and call the
    level's runner."""
    from pathlib import Path

    from ..bids import load_sessions, validate_or_raise
    from .execution import new_run_id
    from .parser import build_parser
    from .replay import write_run_config

    level = ("simulation" if opts.model is not None else "participant") \
        if opts.analysis_level == "participant" else "group"
    train_config = None
    if level == "group" and not opts.evaluate:
        from ..model.config import TrainConfig

        # read once, here: a bad preset is one line before anything runs
        train_config = TrainConfig.from_file(opts.config or "full")
    if not opts.skip_bids_validation:
        validate_or_raise(opts.bids_dir)
    table = load_sessions(
        opts.bids_dir,
        participant_label=opts.participant_label,
        session_label=opts.session_label,
        bids_filter=opts.bids_filter_file,
        database_dir=opts.bids_database_dir,
    )
    LOG.info("%d subjects, %d sessions, %d T1w images selected",
             table["subject"].nunique(), table[["subject", "session"]].drop_duplicates().shape[0],
             len(table))
    run_id = new_run_id(level)
    run_dir = Path(opts.output_dir) / "logs" / run_id
    config_toml = write_run_config(run_dir / "config.toml", opts, build_parser(), run_id=run_id,
                                   model=train_config.to_dict() if train_config else None)
    LOG.info("run %s: options and seeds in %s (replay: daninet --replay-run %s)", run_id, config_toml,
             config_toml)
    if level == "participant":
        from .participant import run_participant

        return run_participant(opts, table, run_dir)
    if level == "simulation":
        from .simulate import run_simulation

        return run_simulation(opts, table, run_dir)
    from .group import run_group

    return run_group(opts, table, run_dir, train_config)


if __name__ == "__main__":
    sys.exit(main())
