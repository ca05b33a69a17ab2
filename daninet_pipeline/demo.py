"""``make demo``: the main job on the demo data.

``python -m daninet_pipeline.demo DEMO_DIR`` generates the full-shape synthetic dataset
in ``DEMO_DIR/bids`` (reused when already there), validates it with the official BIDS
validator, reads it back with pybids, and prints where everything is.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .bids import load_sessions, run_validator
from .data.preview import save_orthogonal_png
from .data.synthetic import write_dataset
from .errors import DaniNetError


def run_demo(demo_dir: Path, *, subjects: int = 8, seed: int = 0, shape: str = "full",
             nprocs: int = 2) -> int:
    demo_dir = Path(demo_dir).resolve()
    bids_dir = demo_dir / "bids"
    t0 = time.perf_counter()
    if (bids_dir / "dataset_description.json").is_file():
        print(f"[demo] reusing the demo dataset in {bids_dir}")
    else:
        print(f"[demo] generating {subjects} subjects ({shape} shape, seed {seed}) in {bids_dir}")
        write_dataset(bids_dir, n_subjects=subjects, seed=seed, shape=shape, nprocs=nprocs)
        print(f"[demo] generated in {time.perf_counter() - t0:.0f} s")
    for name, path in (("raw dataset", bids_dir),
                       ("ground truth", bids_dir / "derivatives" / "ground_truth")):
        result = run_validator(path)
        print(f"[demo] BIDS validator on the {name}: {len(result['errors'])} errors, "
              f"{len(result['warnings'])} warnings")
        if result["errors"]:
            for err in result["errors"][:5]:
                print(f"  {err['code']}: {err['location']}")
            return 1
    table = load_sessions(bids_dir)
    print(f"[demo] pybids: {table['subject'].nunique()} subjects, {len(table)} T1w sessions")
    print(table[["subject", "session", "age", "diagnosis"]].to_string(index=False))
    first = table.iloc[0]
    last = table[table["subject"] == first["subject"]].iloc[-1]
    png = save_orthogonal_png([first["t1w"], last["t1w"]],
                              [f"sub-{first['subject']} ses-{first['session']}",
                               f"ses-{last['session']}"], demo_dir / "preview.png")
    print(f"[demo] dataset: {bids_dir}")
    print(f"[demo] ground truth: {bids_dir / 'derivatives' / 'ground_truth'}")
    print(f"[demo] preview: {png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daninet_pipeline.demo", description=__doc__)
    parser.add_argument("demo_dir", type=Path, nargs="?", default=Path("demo"))
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", choices=("small", "full"), default="full")
    parser.add_argument("--nprocs", type=int, default=2)
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        return run_demo(opts.demo_dir, subjects=opts.subjects, seed=opts.seed, shape=opts.shape,
                        nprocs=opts.nprocs)
    except DaniNetError as err:
        print(f"[demo] error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
