"""``make demo``: the whole pipeline on the synthetic demo data.

``python -m daninet_pipeline.demo DEMO_DIR`` runs, each step as a user would, through
the ``daninet`` command line:

1. ``daninet-demo-data``: the synthetic longitudinal dataset in ``DEMO_DIR/bids``
   (reused when there), checked with the official BIDS validator;
2. ``daninet bids out participant``: pre-processing of every T1w;
3. ``daninet bids out group --config demo``: split, regional model, training, and the
   evaluation of the test subjects beside the identity answer;
4. ``daninet bids out participant --model ...``: simulated follow-ups of the test
   subjects, written as BIDS derivatives;
5. the validator on the derivatives;

and prints the evaluation table and where the reports are: each level writes its own
(``OUTPUT_DIR/sub-X.html`` by the participant level, updated with the simulated images and,
for the test subjects, the regional volumes against age that the evaluation predicted by
the simulation; ``OUTPUT_DIR/models/<config>/report.html`` by the group level), and
``OUTPUT_DIR/logs/CITATION.md`` the methods paragraph of the last run. Each step reuses the
outputs of an earlier run (Nipype's cache in ``DEMO_DIR/work``).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from .bids import run_validator
from .data.preview import save_orthogonal_png
from .data.synthetic import write_dataset
from .errors import DaniNetError

DEFAULTS = {"subjects": 8, "seed": 0, "shape": "small", "config": "demo"}


def _step(title: str) -> float:
    print(f"\n[demo] === {title} ===", flush=True)
    return time.perf_counter()


def _daninet(*args: str, log: Path) -> None:
    """Run the ``daninet`` CLI in a child process, its log to ``log``; raise on failure."""
    cmd = [sys.executable, "-m", "daninet_pipeline.cli.run", *args]
    print("[demo] $ daninet " + " ".join(args), flush=True)
    with open(log, "a") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    tail = log.read_text().strip().splitlines()[-3:]
    for line in tail:
        print(f"[demo]   {line}", flush=True)
    if proc.returncode != 0:
        raise DaniNetError(f"'daninet {' '.join(args)}' failed (exit {proc.returncode}); log: {log}")


def _validate(name: str, path: Path) -> None:
    result = run_validator(path)
    print(f"[demo] BIDS validator on the {name}: {len(result['errors'])} errors, "
          f"{len(result['warnings'])} warnings", flush=True)
    if result["errors"]:
        for err in result["errors"][:5]:
            print(f"  {err['code']}: {err['location']}")
        raise DaniNetError(f"the {name} is not valid BIDS")


def run_demo(demo_dir: Path, *, subjects: int = 12, seed: int = 0, shape: str = "small",
             config: str = "demo", nprocs: int = 2, stages: str = "all") -> int:
    """Run the demo; ``stages`` ``"data"`` stops after the dataset (generation, validation)."""
    demo_dir = Path(demo_dir).resolve()
    bids, out, work = demo_dir / "bids", demo_dir / "out", demo_dir / "work"
    logs = demo_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t_all = t0 = _step("1. demo dataset")
    if (bids / "dataset_description.json").is_file():
        print(f"[demo] reusing the demo dataset in {bids}")
    else:
        print(f"[demo] generating {subjects} subjects ({shape} shape, seed {seed}) in {bids}")
        write_dataset(bids, n_subjects=subjects, seed=seed, shape=shape, nprocs=nprocs)
    _validate("raw dataset", bids)
    _validate("ground truth", bids / "derivatives" / "ground_truth")
    sessions = sorted(bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))
    first, last = sessions[0], [s for s in sessions if s.parts[-4] == sessions[0].parts[-4]][-1]
    preview = save_orthogonal_png([first, last], [first.name.split("_T1w")[0], last.parts[-3]],
                                  demo_dir / "preview.png")
    print(f"[demo] {len(sessions)} T1w sessions; preview {preview} ({time.perf_counter() - t0:.0f} s)")
    if stages == "data":
        print(f"[demo] dataset: {bids}")
        return 0
    common = ["--work-dir", str(work), "--nprocs", str(nprocs), "--skip-bids-validation"]

    t0 = _step("2. participant level: pre-processing")
    _daninet(str(bids), str(out), "participant", *common, log=logs / "participant.log")
    print(f"[demo] pre-processing done in {time.perf_counter() - t0:.0f} s")

    t0 = _step(f"3. group level: training (config {config}) and evaluation")
    _daninet(str(bids), str(out), "group", "--config", config, *common, log=logs / "group.log")
    model_dir = out / "models" / Path(config).stem
    print(f"[demo] training and evaluation done in {time.perf_counter() - t0:.0f} s")

    t0 = _step("4. simulation of the test subjects (participant level with --model)")
    test = pd.read_csv(model_dir / "split.tsv", sep="\t", dtype={"subject": str})
    test_subjects = list(test.loc[test["split"] == "test", "subject"])
    _daninet(str(bids), str(out), "participant", "--model", str(model_dir / "model.pt"),
             "--participant-label", *test_subjects, *common, log=logs / "simulation.log")
    print(f"[demo] simulation done in {time.perf_counter() - t0:.0f} s")

    t0 = _step("5. validation of the derivatives")
    group_report = model_dir / "report.html"
    subject_reports = [out / f"sub-{sub}.html" for sub in test_subjects]
    _validate("derivatives", out)
    print(f"[demo] validation done in {time.perf_counter() - t0:.0f} s")

    print(f"\n[demo] finished in {time.perf_counter() - t_all:.0f} s\n")
    print((model_dir / "group_eval.md").read_text())
    print(f"[demo] dataset: {bids}")
    print(f"[demo] derivatives: {out}")
    print(f"[demo] model card: {model_dir / 'model_card.md'}")
    print(f"[demo] methods paragraph: {out / 'logs' / 'CITATION.md'}")
    print(f"[demo] group report: {group_report}")
    for rep in subject_reports:
        print(f"[demo] subject report: {rep}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daninet_pipeline.demo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("demo_dir", type=Path, nargs="?", default=Path("demo"))
    parser.add_argument("--subjects", type=int, default=DEFAULTS["subjects"])
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--shape", choices=("small", "full"), default=DEFAULTS["shape"])
    parser.add_argument("--config", default=DEFAULTS["config"], help="training preset or JSON file")
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--stages", choices=("all", "data"), default="all",
                        help="data: only generate and validate the dataset")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        return run_demo(opts.demo_dir, subjects=opts.subjects, seed=opts.seed, shape=opts.shape,
                        config=opts.config, nprocs=opts.nprocs, stages=opts.stages)
    except DaniNetError as err:
        print(f"[demo] error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
