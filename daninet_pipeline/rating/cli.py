"""The ``daninet-rating`` entry point::

    daninet-rating build OUTPUT_DIR STUDY_DIR [--models A B ...] [--subjects ...]
                         [--trials N] [--seed S]
    daninet-rating score STUDY_DIR ANSWERS...
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import __version__
from ..errors import DaniNetError


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``daninet-rating``."""
    parser = argparse.ArgumentParser(
        prog="daninet-rating",
        description="Blinded expert rating of simulated images: build a study folder for raters, "
                    "then score their answers.")
    parser.add_argument("--version", action="version", version=f"daninet-rating {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a blinded study folder from simulation derivatives")
    build.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR",
                       help="daninet derivatives: pre-processed sessions and simulated images")
    build.add_argument("study_dir", type=Path, metavar="STUDY_DIR",
                       help="new folder: rater/ (for the raters), key.tsv and study.json")
    build.add_argument("--models", nargs="+", metavar="NAME",
                       help="configurations to offer (model names, 'identity'); default: every "
                            "model found, plus identity")
    build.add_argument("--subjects", nargs="+", metavar="LABEL", help="subjects to use (default all)")
    build.add_argument("--trials", type=int, metavar="N", help="draw N trials (default all)")
    build.add_argument("--seed", type=int, metavar="S",
                       help="seed of the trial draw and the candidates' order (default random, "
                            "recorded in study.json)")
    build.add_argument("--one-per-subject", action="store_true",
                       help="one follow-up per subject (drawn), so identity cannot be recognised as "
                            "the candidate that stays the same across a subject's trials")
    build.add_argument("--bids-dir", type=Path,
                       help="the raw BIDS dataset (default: DatasetLinks.raw of OUTPUT_DIR)")
    build.add_argument("--slices", type=int, default=24, metavar="N",
                       help="slices per view on each image's slider (default 24)")
    score = sub.add_parser("score", help="unblind and summarise the raters' answers")
    score.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    score.add_argument("answers", type=Path, nargs="+", metavar="ANSWERS",
                       help="answers_<rater>.tsv files exported by the page")
    score.add_argument("--out", type=Path, help="results folder (default STUDY_DIR/results)")
    score.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamplings (default 2000)")
    score.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``daninet-rating``; return the exit code (0 on success, 1 on a user error)."""
    opts = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if opts.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("bidsschematools").setLevel(logging.WARNING)  # pybids' schema notice
    try:
        if opts.command == "build":
            from .build import build_study

            info = build_study(opts.output_dir, opts.study_dir, models=opts.models, subjects=opts.subjects,
                               n_trials=opts.trials, seed=opts.seed, bids_dir=opts.bids_dir,
                               n_slices=opts.slices, one_per_subject=opts.one_per_subject)
            print(f"study {info['StudyID']}: {info['Trials']} trials of {info['Subjects']} subjects, "
                  f"configurations {', '.join(info['Configurations'])}")
            print(f"send {opts.study_dir / 'rater'} to the raters; keep {opts.study_dir / 'key.tsv'}")
        else:
            from .score import score_study

            _, _, text = score_study(opts.study_dir, opts.answers, out_dir=opts.out,
                                     n_boot=opts.n_boot, seed=opts.seed)
            print(text, end="")
            print(f"written to {opts.out or opts.study_dir / 'results'}")
    except DaniNetError as err:
        print(f"daninet-rating: error: {err}", file=sys.stderr)
        return 1
    return 0
