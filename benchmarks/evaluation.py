"""The evaluation benchmark of docs/group_and_simulation.md: data, participant level,
one model per ablation, then the paired evaluation with baselines and intervals.

    python benchmarks/evaluation.py DIR [--subjects N] [--seed S] [--nprocs P]
        [--configs base P C T full full-residual] [--stages data participant train select evaluate]
        [--split TRAIN VALIDATION TEST] [--syn-voxel-mm MM]

Every stage is cached in DIR and skipped when done, so the command resumes where it
stopped (also across working sessions); ``DIR/stages.tsv`` records each stage's wall
time. A train or evaluate stage done from presets that were edited since runs again
(``DIR/stages/<stage>.done`` keeps the presets' digest). Stages:

1. ``data``: ``daninet-demo-data DIR/bids --subjects N --seed S --shape small``;
2. ``participant``: ``daninet DIR/bids DIR/out participant`` (pre-processing, Nipype's
   cache in ``DIR/work``, so an interrupted run resumes per session); with
   ``--derivatives truth`` instead the ground truth's noise-free template-space images
   stand in for the derivatives (stage ``truth-derivatives``: no pre-processing error
   and no scanner contrast, so it is a shortcut for a short run, not the benchmark);
3. ``train``: for each configuration (``benchmarks/configs/bench-<name>.json``: the
   paper's ablation presets at the demo's size and 300 steps), the group level's
   training workflow (``init_group_wf(evaluate=False)``); one model per configuration
   in ``DIR/out/models/bench-<name>``, all on the same split (seed 0; ``--split`` the
   shares of the subjects, the group level's 0.7 0.15 0.15 by default: a larger test share
   reaches 40 test subjects with fewer subjects to pre-process, on less training data),
   with the model files of its earlier steps (the presets' ``model_every``: 100) in
   ``.../bench-<name>/steps/``;
4. ``select``: for each configuration, the step whose change-mode prediction errs
   least on the **validation** split's follow-ups (TBM as the evaluate stage measures it,
   with the transfer step), written to ``.../bench-<name>/chosen.json``; the evaluate
   stage scores that step's model (the last one when nothing was chosen);
5. ``evaluate``: :func:`daninet_pipeline.workflows.evaluation.init_evaluation_wf`, one
   Nipype node per test subject (MultiProc with ``--nprocs``), each writing its rows
   (``--syn-voxel-mm``: TBM on a grid that coarse at least, as the group level's quick
   evaluation; default the derivatives' own grid);
   each subject's rows are in Nipype's work folder (``benchmarks/evaluation_partial.py``
   tables them while it runs; a restarted stage re-runs no finished subject: tested in
   ``tests/group/test_evaluation_rerun.py``). Writes
   ``DIR/out/models/evaluation/``:
   ``group_eval.tsv`` (one row per follow-up, method and measurement) and
   ``group_eval.md`` (the tables with intervals; its note gives the node time per
   follow-up).

   ``--min-years Y`` scores only the follow-ups at least Y years after their starting
   scan; ``--models-only`` leaves out ``population-mean`` and ``linear`` (``identity``
   and ``oracle`` stay). Such a run adds models to a finished one at a fraction of its
   cost (the ablations at the primary comparison's horizons): it has its own work
   folder and table (``DIR/out/models/evaluation-<settings>/``), and with
   ``--models-only`` it is joined to the finished run's table
   (``DIR/out/models/evaluation/group_eval.tsv``) in ``.../joined/``
   (:func:`daninet_pipeline.evaluation.report.join_runs`: every method on the same
   follow-ups; the identity and oracle rows of both runs must agree).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from daninet_pipeline.evaluation.split import FRACTIONS

HERE = Path(__file__).resolve().parent
CONFIGS = ("base", "P", "C", "T", "full", "full-residual")
STAGES = ("data", "participant", "train", "select", "evaluate")


def preset_digest(names) -> str:
    """SHA-256 of the presets ``benchmarks/configs/bench-<name>.json`` (their text): what a
    train or evaluate stage was made from, so an edited preset is not taken as done."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0" + (HERE / "configs" / f"bench-{name}.json").read_bytes() + b"\0")
    return digest.hexdigest()


def _done_with(root: Path, stage: str) -> str | None:
    """The digest a stage was done with ("" for a stage without one, or recorded before
    digests were); None if it is not done."""
    marker = root / "stages" / f"{stage}.done"
    if not marker.is_file():
        return None
    text = marker.read_text().strip()
    return json.loads(text).get("digest", "") if text.startswith("{") else ""


def _record(root: Path, stage: str, seconds: float, note: str = "", digest: str = "") -> None:
    (root / "stages").mkdir(parents=True, exist_ok=True)
    (root / "stages" / f"{stage}.done").write_text(json.dumps({"seconds": round(seconds, 1), "digest": digest}) + "\n")
    log = root / "stages.tsv"
    new = not log.is_file()
    with open(log, "a") as fh:
        if new:
            fh.write("stage\tseconds\tfinished_utc\tnote\n")
        fh.write(f"{stage}\t{seconds:.1f}\t{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}\t{note}\n")
    print(f"[bench] {stage}: {seconds:.0f} s", flush=True)


def _run(cmd: list[str], log: Path) -> None:
    print("[bench] $ " + " ".join(cmd), flush=True)
    with open(log, "a") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"[bench] failed (exit {proc.returncode}): see {log}")


def stage_data(root: Path, opts) -> None:
    from daninet_pipeline.data.synthetic import write_dataset

    write_dataset(root / "bids", n_subjects=opts.subjects, seed=opts.seed, shape="small",
                  nprocs=opts.nprocs)


def stage_participant(root: Path, opts) -> None:
    _run([sys.executable, "-m", "daninet_pipeline.cli.run", str(root / "bids"), str(root / "out"),
          "participant", "--work-dir", str(root / "work"), "--nprocs", str(opts.nprocs),
          "--omp-nthreads", "1", "--skip-bids-validation"], root / "logs" / "participant.log")


def stage_truth_derivatives(root: Path, opts) -> None:
    """Stand-in participant derivatives: each session's noise-free, bias-free truth on the
    template grid times its true brain mask (no pre-processing error, no scanner contrast:
    a shortcut for a run that cannot afford the participant level; said in the table)."""
    import nibabel as nib
    import numpy as np

    from daninet_pipeline.bids.naming import derivative_path

    tpl = "MNI152NLin2009aSym"
    truth = root / "bids" / "derivatives" / "ground_truth"
    for img_path in sorted(truth.glob(f"sub-*/ses-*/anat/*_space-{tpl}_desc-noisefree_T1w.nii.gz")):
        sub, ses = img_path.name.split("_")[:2]
        mask_path = img_path.with_name(img_path.name.replace("desc-noisefree_T1w", "desc-brain_mask"))
        img, mask = nib.load(img_path), nib.load(mask_path)
        (raw,) = sorted((root / "bids" / sub / ses / "anat").glob(f"{sub}_{ses}*_T1w.nii.gz"))
        preproc = derivative_path(root / "out", raw, "preproc", template=tpl)
        out_mask = derivative_path(root / "out", raw, "mask_std", template=tpl)
        preproc.parent.mkdir(parents=True, exist_ok=True)
        data = np.asarray(img.dataobj, np.float32) * (np.asarray(mask.dataobj) > 0)
        nib.save(nib.Nifti1Image(data, img.affine), preproc)
        shutil.copy(mask_path, out_mask)


def stage_train(root: Path, name: str, opts) -> None:
    from daninet_pipeline.atomic import write_text
    from daninet_pipeline.model.config import TrainConfig
    from daninet_pipeline.training.sessions import gather_sessions
    from daninet_pipeline.workflows.group import init_group_wf

    config = HERE / "configs" / f"bench-{name}.json"
    table, missing = gather_sessions(root / "bids", root / "out")
    if missing:
        raise SystemExit(f"[bench] no participant-level derivatives for sub-{missing[0]}: run the participant stage")
    # the same table keeps its time stamp, so the split node stays cached (Nipype hashes by time stamp)
    sessions_tsv = write_text(root / "work" / "bench_sessions.tsv", table.to_csv(sep="\t", index=False, na_rep="n/a"))
    # training in a folder of its own: Nipype empties a node's folder of all but its outputs,
    # and the model files of earlier steps (the preset's model_every) are the select stage's candidates
    train_dir = root / "work" / f"train-{name}"
    shutil.rmtree(train_dir, ignore_errors=True)  # no step file of an earlier training
    wf = init_group_wf(bids_dir=root / "bids", output_dir=root / "out", config=str(config),
                       seed=0, evaluate=False, split_fractions=tuple(opts.split), train_dir=train_dir)
    wf.inputs.inputnode.sessions_tsv = str(sessions_tsv)
    wf.base_dir = str(root / "work")
    wf.run(plugin="Linear")
    steps = model_dir(root, name) / "steps"
    (steps.parent / CHOSEN).unlink(missing_ok=True)  # an earlier choice was among another training's files
    shutil.rmtree(steps, ignore_errors=True)
    steps.mkdir(parents=True)
    for path in sorted(train_dir.glob("model_step-*.pt")):
        shutil.copy2(path, steps / path.name)
    if TrainConfig.from_file(config).model_every and not any(steps.iterdir()):
        raise SystemExit(f"[bench] {name}: the preset keeps a model file every model_every steps but the "
                         f"training left none in {train_dir}")


#: the select stage's record of the chosen step, beside the model
CHOSEN = "chosen.json"


def model_dir(root: Path, name: str) -> Path:
    """``DIR/out/models/bench-<name>``: a preset's model, its step files and choice."""
    return root / "out" / "models" / f"bench-{name}"


def stage_select(root: Path, name: str, opts) -> None:
    """Choose the step of ``bench-<name>`` to score: of the model files of its earlier
    steps (``steps/``) and its last, the one whose change-mode prediction errs least on
    the **validation** split's follow-ups (TBM as the evaluate stage measures it, with the
    model's transfer; :func:`~daninet_pipeline.evaluation.evaluate.choose_on_validation`).
    Writes ``chosen.json``: the step, its model file and each candidate's error."""
    from daninet_pipeline.atomic import write_text
    from daninet_pipeline.evaluation.evaluate import ModelPredictor, choose_on_validation, ground_truth_volumes
    from daninet_pipeline.model.config import TrainConfig
    from daninet_pipeline.training.sessions import gather_sessions

    folder = model_dir(root, name)
    candidates = {int(p.stem.split("-")[-1]): p for p in sorted((folder / "steps").glob("model_step-*.pt"))}
    candidates[TrainConfig.from_file(HERE / "configs" / f"bench-{name}.json").steps] = folder / "model.pt"
    split = pd.read_csv(folder / "split.tsv", sep="\t", dtype={"subject": str})
    record = {"validation_subjects": int((split["split"] == "validation").sum())}
    if len(candidates) == 1:  # a model trained without model_every: nothing to choose from
        (step,) = candidates
        errors, record["note"] = {}, "the only model file"
    else:
        table, _ = gather_sessions(root / "bids", root / "out")
        chosen, scores = choose_on_validation(
            # the change mode alone: the choice is made on it
            [ModelPredictor(f"step{k}", p, modes=("change",)) for k, p in sorted(candidates.items())], table, split,
            truth=ground_truth_volumes(root / "bids"), syn_voxel_mm=opts.syn_voxel_mm, nprocs=opts.nprocs)
        step, errors = int(chosen[len("step"):]), {k: round(float(v), 6) for k, v in scores.items()}
    write_text(folder / CHOSEN, json.dumps({"step": step, "model_file": str(candidates[step]),
                                               "validation_error": errors, **record}, indent=2) + "\n")
    print(f"[bench] {name}: step {step} chosen on the validation split (errors: {errors or 'one candidate'})",
          flush=True)


def evaluation_digest(root: Path, names) -> str:
    """What an evaluate stage is made from: the presets and the steps the select stage chose."""
    chosen = [model_dir(root, name) / CHOSEN for name in names]
    text = "".join(f"{p.read_text() if p.is_file() else ''}\0" for p in chosen)
    return hashlib.sha256((preset_digest(names) + text).encode()).hexdigest()


def model_to_score(root: Path, name: str) -> Path:
    """``bench-<name>``'s model file chosen by the select stage, else its last."""
    chosen = model_dir(root, name) / CHOSEN
    if chosen.is_file():
        return Path(json.loads(chosen.read_text())["model_file"])
    return model_dir(root, name) / "model.pt"


def evaluation_stage(opts) -> tuple[str, str]:
    """The evaluate stage's name (its settings, so a run with others is not taken as done)
    and its folder name: ``evaluation`` for a whole run, else one per setting."""
    grid = f"-grid{opts.syn_voxel_mm:g}mm" if opts.syn_voxel_mm else ""
    only = "" if set(opts.measurements) == {"tbm", "atropos"} else "-" + "-".join(opts.measurements)
    part = (f"-min{opts.min_years:g}y" if opts.min_years else "") + ("-models-only" if opts.models_only else "")
    name = "evaluate-" + "-".join(opts.configs) + grid + only + part
    return name, "evaluation" + (name[len("evaluate"):] if part else "")


def write_trajectory(rows: pd.DataFrame, out_dir: Path) -> Path:
    """The regional trajectories of the test subject with the most same-scanner follow-ups
    (then the longest span, then the first name): ``out_dir/trajectory_sub-<label>.png``,
    the real scans beside identity, population-mean and each model's change mode."""
    from daninet_pipeline.evaluation.evaluate import EVAL_MODES
    from daninet_pipeline.reports.progression import regional_trajectories, regional_trajectory_figure, save_figure
    from daninet_pipeline.reports.subject import TRAJECTORY_BASELINES

    same = rows[~rows["scanner_change"].astype(bool) & (rows["measurement"] == "tbm")]
    per = same.drop_duplicates(["subject", "start_session", "followup_session"]).groupby("subject").agg(
        n=("years_ahead", "size"), span=("years_ahead", "sum"))
    subject = per.sort_values(["n", "span"], ascending=False, kind="stable").index[0]
    models = [m for m in dict.fromkeys(rows["method"]) if m.endswith(EVAL_MODES["change"])]
    fig = regional_trajectory_figure(regional_trajectories(rows, subject), methods=(*TRAJECTORY_BASELINES, *models))
    return save_figure(fig, out_dir / f"trajectory_sub-{subject}.png")


def stage_evaluate(root: Path, opts) -> None:
    from daninet_pipeline.evaluation.baselines import IDENTITY, ORACLE
    from daninet_pipeline.evaluation.evaluate import HORIZONS
    from daninet_pipeline.evaluation.report import (compact_table, join_runs, measurement_note, read_rows,
                                                    write_evaluation)
    from daninet_pipeline.workflows.evaluation import run_evaluation

    _, folder = evaluation_stage(opts)
    out_dir = root / "out" / "models" / folder
    models = {name: model_to_score(root, name) for name in opts.configs}
    tsv, _ = run_evaluation(bids_dir=root / "bids", output_dir=root / "out", models=models, out_dir=out_dir,
                            work_dir=root / "work", nprocs=opts.nprocs, measurements=tuple(opts.measurements),
                            syn_voxel_mm=opts.syn_voxel_mm, min_years=opts.min_years,
                            baselines=not opts.models_only,
                            name="evaluation_wf" if folder == "evaluation" else folder.replace("-", "_").replace(".", "_"))
    if opts.models_only:
        whole = root / "out" / "models" / "evaluation" / "group_eval.tsv"
        if not whole.is_file():
            raise SystemExit(f"[bench] --models-only joins its rows to a finished run's {whole}: run the evaluate "
                             "stage without it first")
        extra = read_rows(tsv)
        joined, gap = join_runs(read_rows(whole), extra)
        note = (f"{measurement_note(joined, syn_voxel_mm=opts.syn_voxel_mm)} Two runs joined on the same "
                f"{joined.groupby(['subject', 'start_session', 'followup_session']).ngroups} follow-ups: "
                f"{', '.join(f'`{m}`' for m in sorted(set(extra['method']) - {IDENTITY, ORACLE}))} from "
                f"`{folder}`, the rest from `evaluation`; their identity and oracle rows agree to {gap:.1g} "
                "(the same measurement).")
        rows = joined
        write_evaluation(rows, out_dir / "joined", note=note)
    else:
        rows = read_rows(tsv)
        print(f"[bench] {write_trajectory(rows, out_dir)}", flush=True)
    # one line per method: its intervals against identity and population-mean at each scored horizon
    horizons = [h for h, _, _ in HORIZONS if (rows["horizon"] == h).any()]
    compact = out_dir / "group_eval_compact.md"
    compact.write_text("\n".join(f"## {meas}\n\n{compact_table(rows, horizons, meas)}"
                                 for meas in sorted(rows["measurement"].unique())))
    print(f"[bench] {compact}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--subjects", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--measurements", nargs="+", default=["tbm", "atropos"], choices=("tbm", "atropos"))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--split", nargs=3, type=float, default=list(FRACTIONS),
                        metavar=("TRAIN", "VALIDATION", "TEST"), help="shares of the subjects in each split")
    parser.add_argument("--syn-voxel-mm", type=float, default=None,
                        help="TBM registers on a grid this coarse at least (default: the derivatives' own)")
    parser.add_argument("--min-years", type=float, default=0.0,
                        help="score only the follow-ups at least this many years after their starting scan")
    parser.add_argument("--models-only", action="store_true",
                        help="leave out population-mean and linear; join the rows to the finished run's table")
    parser.add_argument("--derivatives", choices=("participant", "truth"), default="participant",
                        help="truth: stand in for the participant level with the ground truth (no "
                             "pre-processing error, no scanner contrast; a shortcut, said in the table)")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    root = opts.dir.resolve()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    settings = root / "settings.json"
    wanted = {"subjects": opts.subjects, "seed": opts.seed, "split": opts.split}
    if settings.is_file() and json.loads(settings.read_text()) != wanted:
        raise SystemExit(f"[bench] {root} holds a run with {settings.read_text().strip()}: use another DIR")
    settings.write_text(json.dumps(wanted) + "\n")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    plan = []  # (stage, what it is made from: the presets' digest or "", what runs it)
    for stage in [s for s in STAGES if s in opts.stages]:  # in their order, however given
        if stage in ("train", "select"):
            fn = {"train": stage_train, "select": stage_select}[stage]
            plan += [(f"{stage}-{name}", preset_digest([name]), lambda n=name, f=fn: f(root, n, opts))
                     for name in opts.configs]
        elif stage == "evaluate":
            plan.append((evaluation_stage(opts)[0], None, lambda: stage_evaluate(root, opts)))
        elif stage == "participant" and opts.derivatives == "truth":
            plan.append(("truth-derivatives", "", lambda: stage_truth_derivatives(root, opts)))
        else:
            fn = {"data": stage_data, "participant": stage_participant}[stage]
            plan.append((stage, "", lambda f=fn: f(root, opts)))
    for name, digest, fn in plan:
        if digest is None:  # the evaluate stage: its digest depends on what the select stage chose before it
            digest = evaluation_digest(root, opts.configs)
        done_with = _done_with(root, name)
        if done_with == digest:
            print(f"[bench] {name}: done before, skipped", flush=True)
            continue
        note = "" if done_with is None else "run again: its presets or chosen steps changed since it was done"
        t0 = time.perf_counter()
        print(f"[bench] {time.strftime('%H:%M:%S')} {name} ...{' (' + note + ')' if note else ''}", flush=True)
        fn()
        _record(root, name, time.perf_counter() - t0, note, digest)
    table = root / "out" / "models" / evaluation_stage(opts)[1]
    table = table / "joined" / "group_eval.md" if opts.models_only else table / "group_eval.md"
    if "evaluate" in opts.stages and table.is_file():
        print(table.read_text())
    print(pd.read_csv(root / "stages.tsv", sep="\t").to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
