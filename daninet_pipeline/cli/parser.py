"""Argument parser of the ``daninet`` BIDS App (BIDS-Apps shape, fMRIPrep-like options)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import __version__
from ..model.config import DEFAULT_SIMULATION_MODE, SIMULATION_MODES

NIPYPE_PLUGINS = ("MultiProc", "Linear", "SLURM", "SLURMGraph", "SGE", "SGEGraph", "PBS", "LSF")


def _label(value: str) -> str:
    """Strip an optional ``sub-``/``ses-`` prefix from a BIDS label."""
    for prefix in ("sub-", "ses-"):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def _json_file(value: str) -> dict:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{value}: not valid JSON ({err})") from err


def build_parser() -> argparse.ArgumentParser:
    """The ``daninet`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="daninet",
        description="DaniNet BIDS App: pre-process T1w MRI, train the DaniNet progression "
        "model, and simulate brains at other ages and diagnoses.",
    )
    parser.add_argument("bids_dir", type=Path, help="root of the input BIDS dataset")
    parser.add_argument("output_dir", type=Path, help="root of the BIDS derivatives to write")
    parser.add_argument(
        "analysis_level",
        choices=("participant", "group"),
        help="participant: pre-process (or, with --model, simulate) each subject; "
        "group: train the model on all subjects' derivatives",
    )
    parser.add_argument("--version", action="version", version=f"daninet {__version__}")

    g = parser.add_argument_group("selecting data")
    g.add_argument("--participant-label", "--participant_label", nargs="+", type=_label,
                   metavar="LABEL", help="subjects to process (with or without 'sub-')")
    g.add_argument("--session-label", nargs="+", type=_label, metavar="LABEL",
                   help="sessions to process (with or without 'ses-')")
    g.add_argument("--bids-filter-file", type=_json_file, metavar="FILE",
                   help="JSON of pybids entities selecting the T1w images, e.g. "
                   '{"t1w": {"acquisition": "mprage"}}')
    g.add_argument("--bids-database-dir", type=Path, metavar="DIR",
                   help="directory of a saved pybids index; created when missing, reused "
                   "when present (index once for a whole SLURM array)")
    g.add_argument("--skip-bids-validation", action="store_true",
                   help="do not run the BIDS validator on the input")

    g = parser.add_argument_group("pre-processing")
    g.add_argument("--preproc-backend", choices=("embedded", "fsl"), default="embedded",
                   help="embedded: pip-installable tools (default); fsl: FSL through Nipype")

    g = parser.add_argument_group("model and simulation")
    g.add_argument("--config", metavar="PRESET_OR_FILE",
                   help="training preset name (base, P, C, T, full, full-residual) or a JSON file")
    g.add_argument("--allow-cpu", action="store_true",
                   help="train a GPU-sized configuration (the paper's presets) without a GPU: days on "
                   "a few cores; without it such a run stops before it starts")
    g.add_argument("--model", type=Path, metavar="FILE",
                   help="trained model file; with it the participant level simulates")
    ages = g.add_mutually_exclusive_group()
    ages.add_argument("--target-ages", nargs="+", type=float, metavar="AGE",
                      help="ages (years) to simulate")
    ages.add_argument("--years-ahead", nargs="+", type=float, metavar="YEARS",
                      help="years after the baseline to simulate")
    g.add_argument("--diagnosis", metavar="LABEL",
                   help="simulate under this diagnosis instead of the subject's own")
    g.add_argument("--transfer", action="store_true",
                   help="fine-tune the model on the subject's own scans before simulating")
    g.add_argument("--simulation-mode", choices=SIMULATION_MODES, default=DEFAULT_SIMULATION_MODE,
                   help="change (default): the baseline plus the change the model generates from the "
                        "baseline's age; direct: the generator's own image (the paper's output)")
    g.add_argument("--native", action="store_true",
                   help="also write simulated images in the subject's native space")
    g.add_argument("--exclude-sessions", type=Path, metavar="FILE",
                   help="group level: TSV (participant_id, session_id, reason) of sessions to leave out "
                        "of training and evaluation, written by hand or from the QC flags "
                        "(OUTPUT_DIR/models/<name>/qc_outliers.tsv); a session_id of n/a leaves out the "
                        "whole subject")
    g.add_argument("--evaluate", action="store_true",
                   help="group level: train nothing; score the trained models of OUTPUT_DIR/models (or --config's) side by side with identity on their test split")

    g = parser.add_argument_group("performance and execution")
    g.add_argument("--work-dir", "-w", type=Path, metavar="DIR",
                   help="Nipype working directory (its cache); default OUTPUT_DIR/../work")
    g.add_argument("--nprocs", "--n-cpus", type=int, metavar="N",
                   help="processes Nipype may run at once (default: all cores)")
    g.add_argument("--omp-nthreads", type=int, metavar="N",
                   help="threads one process may use (default: the cores each T1w gets when all run side by side, nprocs // min(nprocs, T1w images), at most 8)")
    g.add_argument("--mem-gb", type=float, metavar="GB", help="memory Nipype may plan for")
    g.add_argument("--plugin", choices=NIPYPE_PLUGINS, default="MultiProc",
                   help="Nipype execution plugin")
    g.add_argument("--plugin-args", type=json.loads, default=None, metavar="JSON",
                   help='Nipype plugin arguments as JSON, e.g. \'{"sbatch_args": "-p short"}\'')
    g.add_argument("--train-plugin-args", type=json.loads, default=None, metavar="JSON",
                   help="plugin arguments of the group level's training node alone, e.g. "
                        '\'{"sbatch_args": "--partition=gpu --gpus=1 --time=24:00:00"}\' with --plugin SLURM')
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (training resumes from its checkpoint)")
    g.add_argument("--stop-on-first-crash", action="store_true",
                   help="stop at the first failing node instead of finishing the others")
    g.add_argument("--seed", type=int, default=0, help="random seed")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    g.add_argument("--replay-run", metavar="FILE",
                   help="run again what a run recorded in its OUTPUT_DIR/logs/<run id>/config.toml "
                   "(every option and seed); options given besides override it. Not a model preset: "
                   "that is --config")
    return parser


def expand_replay(argv: list[str]) -> list[str]:
    """``argv`` with ``--replay-run FILE`` replaced by the command FILE recorded (the
    options given besides it come after, so they override); other argv unchanged."""
    from .replay import REPLAY_OPTION, read_replay_argv

    for i, arg in enumerate(argv):
        if arg == REPLAY_OPTION and i + 1 < len(argv):
            return read_replay_argv(argv[i + 1]) + argv[:i] + argv[i + 2:]
        if arg.startswith(REPLAY_OPTION + "="):
            return read_replay_argv(arg.split("=", 1)[1]) + argv[:i] + argv[i + 1:]
    return argv


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and fill in derived defaults; a
    ``--replay-run`` file's command is expanded first (:func:`expand_replay`)."""
    import sys

    argv = expand_replay(list(sys.argv[1:] if argv is None else argv))
    opts = build_parser().parse_args(argv)
    opts.bids_dir = opts.bids_dir.resolve()
    opts.output_dir = opts.output_dir.resolve()
    if opts.work_dir is None:
        opts.work_dir = opts.output_dir.parent / "work"
    opts.work_dir = opts.work_dir.resolve()
    return opts
