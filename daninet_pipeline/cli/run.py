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
    from .signals import SIGNAL_NAMES, Stopped, install_handlers, restore_handlers, stop_children

    opts = parse_args(argv)
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
        print(f"daninet: stopped by {SIGNAL_NAMES[stop.signum]}; {n} worker process(es) ended; rerun the "
              "same command to go on from the work folder's cache", file=sys.stderr, flush=True)
        return stop.exit_code
    finally:
        restore_handlers(previous)


def _run(opts) -> int:
    from ..bids import load_sessions, validate_or_raise

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
    if opts.analysis_level == "participant" and opts.model is None:
        from .participant import run_participant

        return run_participant(opts, table)
    if opts.analysis_level == "participant":
        from .simulate import run_simulation

        return run_simulation(opts, table)
    from .group import run_group

    return run_group(opts, table)


if __name__ == "__main__":
    sys.exit(main())
