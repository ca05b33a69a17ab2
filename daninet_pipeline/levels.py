"""What each level of the app does around its Nipype workflow, and the one runner of them all.

A level is prepared (its checks, its inputs, its top-level workflow from
:mod:`daninet_pipeline.workflows.base`), run by :func:`run_level` through
:func:`~daninet_pipeline.cli.execution.run_workflow` (plugin, crash files, progress line),
and finished (reports, ``logs/CITATION.md``, the run's last lines, the exit code):

- ``participant``: pre-processing derivatives of every selected T1w; a session whose input
  is bad crashes only its own branch, and its failure is one line with its own cause;
- ``group``: the model trained (and evaluated) on the selected sessions, pre-processing
  first the subjects that lack derivatives; ``--evaluate`` scores the trained models and
  runs no workflow;
- ``simulation`` (``participant --model``): each selected subject's synthetic images.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from .errors import DaniNetError

LOG = logging.getLogger("daninet")


@dataclass
class PreparedLevel:
    """A level ready to run: its ``workflow`` (None: nothing to run), how the runner runs
    it, and ``finish(progress, crashed) -> exit code``."""

    workflow: object | None
    what: str
    finish: Callable[[object, bool], int]
    run_options: dict = field(default_factory=dict)


def run_level(level: str, opts, table: pd.DataFrame, run_dir=None, **kwargs) -> int:
    """Prepare, run and finish ``level`` (``participant``, ``group`` or ``simulation``) on
    the selected sessions ``table``; return the exit code. ``run_dir``: the run's
    ``OUTPUT_DIR/logs/<run id>`` (a new one when None); ``kwargs`` go to the level's
    preparation (``train_config`` for the group level)."""
    from .cli.execution import new_run_id, run_workflow

    run_dir = Path(run_dir) if run_dir else Path(opts.output_dir) / "logs" / new_run_id(level)
    prepared = PREPARE[level](opts, table, run_dir, **kwargs)
    if prepared.workflow is None:
        return prepared.finish(None, False)
    progress, crashed = run_workflow(prepared.workflow, opts, what=prepared.what, run_dir=run_dir,
                                     **prepared.run_options)
    return prepared.finish(progress, crashed)


# ---- participant -------------------------------------------------------------------------

def crash_reason(crash_file: Path) -> str:
    """The last exception line of a Nipype text crash file."""
    lines = [ln.strip() for ln in crash_file.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b.*:", line) or re.match(r"^[\w.]+Error$", line):
            return line
    return lines[-1] if lines else "unknown error"


def crash_node(crash_file: Path) -> str:
    """The node a Nipype text crash file is about (its first line: ``Node: <full name>``)."""
    with open(crash_file, errors="replace") as fh:
        first = fh.readline().strip()
    return first[len("Node: "):] if first.startswith("Node: ") else ""


def find_crash(crash_dir: Path, node_fullname: str) -> Path | None:
    """The crash file of exactly ``node_fullname`` (subject, session and node: every ADNI
    baseline's workflow is named ``preproc_ses_M000_wf``), or None."""
    node = node_fullname.rsplit(".", 1)[-1]
    candidates = sorted(crash_dir.glob(f"crash-*{node}*.txt"), key=os.path.getmtime)
    for path in reversed(candidates):
        if crash_node(path) == node_fullname:
            return path
    return None


def prepare_participant(opts, table: pd.DataFrame, run_dir: Path, *, brain_extraction: str = "deepbet",
                        registration: str = "fast") -> PreparedLevel:
    """Pre-process every T1w of ``table``; the finish writes each subject's report and the
    run's CITATION.md and returns 0 when every session is done, else 1."""
    from .bids.derivatives import ensure_bidsignore
    from .cli.execution import default_omp_nthreads
    from .interfaces.bids import write_dataset_description
    from .workflows.base import init_daninet_participant_wf

    if table.empty:
        raise DaniNetError("no T1w image selected")
    output_dir, work_dir = Path(opts.output_dir), Path(opts.work_dir)
    if output_dir.resolve() == Path(opts.bids_dir).resolve():
        raise DaniNetError("OUTPUT_DIR must differ from BIDS_DIR")
    nprocs = opts.nprocs or os.cpu_count() or 1
    omp = opts.omp_nthreads or default_omp_nthreads(nprocs, len(table))
    if opts.preproc_backend == "fsl" and not os.environ.get("FSLDIR"):
        raise DaniNetError("--preproc-backend fsl needs FSL: set FSLDIR (FSL is installed in "
                           "the container image)")
    write_dataset_description(output_dir, bids_dir=opts.bids_dir, backend=opts.preproc_backend)
    ensure_bidsignore(output_dir)
    wf = init_daninet_participant_wf(table, output_dir=output_dir, work_dir=work_dir,
                                     bids_dir=opts.bids_dir, backend=opts.preproc_backend,
                                     omp_nthreads=omp, brain_extraction=brain_extraction,
                                     registration=registration)
    labels = sorted(set(wf.daninet_groups.values()))
    LOG.info("pre-processing %d T1w images of %d subjects (%s backend, %s plugin, work dir %s)",
             len(labels), table["subject"].nunique(), opts.preproc_backend, opts.plugin, work_dir)

    def finish(progress, crashed: bool) -> int:
        failed = dict(progress.failed)
        if crashed and not failed:  # a plugin without status callbacks: read the crash files
            for crash in sorted(run_dir.glob("crash-*.txt")):
                label = progress.group_of(crash_node(crash))
                if label is not None:
                    failed.setdefault(label, crash)
        reasons = {}
        for label, where in sorted(failed.items()):
            crash = where if isinstance(where, Path) else find_crash(run_dir, where)
            reasons[label] = f"{crash_reason(crash) if crash else 'crashed'} (crash file: {crash or run_dir})"
            print(f"{label}: FAILED: {reasons[label]}", flush=True)
        reports = _write_subject_reports(output_dir, table, progress, reasons)
        from .data.resources import DEFAULT_TEMPLATE
        from .reports.citation import citation_text, write_citation

        write_citation(output_dir, run_dir, citation_text(level="participant", workflow=wf,
                                                          template=DEFAULT_TEMPLATE, backend=opts.preproc_backend))
        for report in reports:
            print(f"report: {report}", flush=True)
        if crashed and not failed:
            print(f"daninet: the workflow did not finish cleanly; see {run_dir}", flush=True)
            return 1
        summary = (f"participant level: {len(labels) - len(failed)}/{len(labels)} T1w images pre-processed "
                   f"into {output_dir}")
        if failed:
            summary += f"; failed: {', '.join(sorted(failed))}"
        print(summary, flush=True)
        return 1 if failed else 0

    return PreparedLevel(wf, "participant level", finish, {"check": False})


def _write_subject_reports(output_dir: Path, table: pd.DataFrame, progress, reasons: dict) -> list[Path]:
    """Each subject's step records (``logs/sub-X_steps.tsv``) and ``sub-X.html``."""
    from .reports.subject import write_steps, write_subject_report

    by_label = progress.by_group()
    reports = []
    for subject in sorted(table["subject"].unique()):
        rows = []
        for label in sorted(by_label):
            if label.split(" ", 1)[0] != f"sub-{subject}":
                continue
            session = label.split(" ", 1)[1] if " " in label else "(no session)"
            for rec in by_label[label]:
                detail = reasons.get(label, "") if rec.status == "failed" else ""
                rows.append({"session": session, "step": rec.name, "status": rec.status,
                             "seconds": None if rec.seconds is None else round(rec.seconds, 3),
                             "detail": detail})
        write_steps(output_dir, subject, rows)
        reports.append(write_subject_report(output_dir, subject))
    return reports


# ---- group -------------------------------------------------------------------------------

def prepare_group(opts, selected: pd.DataFrame, run_dir: Path, train_config=None) -> PreparedLevel:
    """Train (and evaluate) the model on the selected sessions, and no others; subjects of
    them without participant-level derivatives are pre-processed first. With
    ``--evaluate`` no model is trained: the trained models of ``OUTPUT_DIR/models`` are
    scored side by side. ``train_config``: ``--config`` already read (read here when
    None), the only reading of it: the checks, the graph and the citation use it."""
    from .bids.naming import model_dir, model_name
    from .cli.execution import write_table
    from .cli.plan import check_training_plan
    from .model.config import TrainConfig
    from .training.sessions import attach_derivatives, has_longitudinal_pairs
    from .workflows.base import init_daninet_group_wf

    everyone = selected
    selected, excluded = _exclude_sessions(opts, selected)
    if opts.evaluate:
        return PreparedLevel(None, "the evaluation", lambda progress, crashed: _evaluate_only(opts, selected))
    config = opts.config or "full"
    name = model_name(config)
    # a bad preset or file: one line, before anything runs
    cfg = train_config if train_config is not None else TrainConfig.from_file(config)
    pairs = has_longitudinal_pairs(selected)
    _check_longitudinal(cfg, name, pairs)
    plan = check_training_plan(cfg, allow_cpu=opts.allow_cpu, name=name)
    if plan:
        print(plan, flush=True)
    table, missing = attach_derivatives(selected, opts.output_dir)
    if missing:
        _preprocess_missing(opts, selected, missing)
        table, missing = attach_derivatives(selected, opts.output_dir)
        if missing:
            raise DaniNetError(f"sub-{missing[0]} still lacks participant-level derivatives in {opts.output_dir}")
    LOG.info("group level: %d subjects, %d T1w images, configuration %s", table["subject"].nunique(),
             len(table), config)
    folder_in_work = Path(opts.work_dir) / "group" / name
    sessions_tsv = write_table(table, folder_in_work, "sessions")
    qc_files = _qc_tables(opts, everyone, excluded, folder_in_work)
    wf = init_daninet_group_wf(sessions_tsv=sessions_tsv, output_dir=opts.output_dir, work_dir=opts.work_dir,
                               config=config, bids_dir=opts.bids_dir, seed=opts.seed, resume=opts.resume,
                               evaluate=pairs, train_plugin_args=opts.train_plugin_args, train_config=cfg,
                               qc_files={k: v for k, v in qc_files.items() if k.endswith("_tsv")})

    def finish(progress, crashed: bool) -> int:
        from .qc import read_excluded_sessions, read_group_qc
        from .reports.citation import citation_text, write_citation
        from .reports.progression import write_group_report

        folder = model_dir(opts.output_dir, config)
        report = write_group_report(folder, qc=read_group_qc(folder), excluded=read_excluded_sessions(folder))
        write_citation(opts.output_dir, run_dir,
                       citation_text(level="group", workflow=wf, model_name=name, model_config=cfg.to_dict()))
        if (folder / "group_eval.md").is_file():
            print((folder / "group_eval.md").read_text())
        print(f"model: {folder / 'model.pt'}")
        print(f"model card: {folder / 'model_card.md'}")
        print(f"QC table: {folder / 'qc.tsv'} ({qc_files['n_outliers']} outlier(s) flagged, listed in "
              f"{folder / 'qc_outliers.tsv'}; {len(excluded)} session(s) excluded)")
        print(f"report: {report}", flush=True)
        return 0

    return PreparedLevel(wf, "the group level", finish, {"stop_on_first_crash": True})


def _exclude_sessions(opts, selected):
    """The selection less the sessions of ``--exclude-sessions`` (a malformed file: one
    line naming it and the line), and the excluded sessions with their reasons."""
    from .qc.exclusions import EXCLUSION_COLUMNS, apply_exclusions, read_exclusions

    path = getattr(opts, "exclude_sessions", None)
    if path is None:
        return selected, pd.DataFrame(columns=EXCLUSION_COLUMNS)
    kept, excluded = apply_exclusions(selected, read_exclusions(path), source=str(path))
    LOG.info("group level: %d T1w image(s) of %d session(s) left out by %s", len(selected) - len(kept),
             len(excluded), path)
    if kept.empty:
        raise DaniNetError(f"{path} leaves out every selected session")
    return kept, excluded


def _qc_tables(opts, everyone, excluded, folder) -> dict:
    """The QC table of every selected session (the excluded ones too, marked) with
    outliers flagged, the outliers as an exclusion file, and the excluded sessions: TSVs
    in ``folder`` for the group workflow's sinks."""
    from .cli.execution import write_table
    from .qc.table import exclusions_from_flags, flag_outliers, gather_qc

    qc = flag_outliers(gather_qc(everyone, opts.output_dir))
    key = qc["participant_id"] + "|" + qc["session_id"]
    reasons = dict(zip(excluded["participant_id"] + "|" + excluded["session_id"], excluded["reason"]))
    qc["excluded"] = key.isin(reasons)
    qc["exclusion_reason"] = key.map(reasons).fillna("")
    outliers = exclusions_from_flags(qc)
    return {"qc_tsv": write_table(qc, folder, "qc"),
            "qc_outliers_tsv": write_table(outliers, folder, "qc_outliers"),
            "excluded_tsv": write_table(excluded, folder, "excluded_sessions"),
            "n_outliers": len(outliers)}


def _check_longitudinal(cfg, name: str, pairs: bool) -> None:
    """A configuration with the regional constraint needs longitudinal pairs: one line
    naming a preset that does not, when the selection has no subject with two sessions."""
    if pairs:
        return
    w = cfg.weight_reg
    if w.value > 0 or (w.kind != "constant" and w.initial > 0):
        raise DaniNetError(f"configuration {name} fits its regional constraint on "
                           "longitudinal pairs, and no selected subject has two sessions: use "
                           "--config base (no regional constraint), or select subjects with follow-ups")


def _preprocess_missing(opts, selected, missing: list[str]) -> None:
    """Run the participant level for the subjects in ``missing``; raise if any session fails."""
    todo = selected[selected["subject"].isin(missing)]
    LOG.info("group level: %d subject(s) lack participant-level derivatives (sub-%s): running the "
             "participant level for them first", len(missing), ", sub-".join(missing))
    if run_level("participant", opts, todo) != 0:
        raise DaniNetError("the participant level failed for some sessions (see above); the group level "
                           "needs every selected subject pre-processed")


def _evaluate_only(opts, selected) -> int:
    """``group --evaluate``: every trained model (or ``--config``'s) beside identity on the
    shared test split, on the selected sessions; writes ``OUTPUT_DIR/models/group_eval.{tsv,md}``."""
    from .training.evaluation import evaluate_trained_models

    names = [Path(str(opts.config)).stem] if opts.config else None
    _, md = evaluate_trained_models(opts.bids_dir, opts.output_dir, selected, names=names)
    print(md.read_text())
    print(f"evaluation: {md}")
    return 0


# ---- simulation --------------------------------------------------------------------------

def check_model_file(path) -> dict:
    """Read and check a model file before any node runs; :class:`ModelFileError` in one line
    naming the file and what is wrong (missing, not a model file, another version's
    format, a configuration this version cannot read). Nothing is unpickled."""
    import zipfile

    from .errors import ModelFileError
    from .model.modelfile import load_model_file

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise ModelFileError(f"{path}: not a readable DaniNet model file (not a PyTorch archive)")
    return load_model_file(path)


def prepare_simulation(opts, selected: pd.DataFrame, run_dir: Path) -> PreparedLevel:
    """Simulate every selected subject's baseline (one Nipype sub-workflow per subject):
    its first selected session by age and, in it, the first T1w by name. The finish writes
    or updates each subject's report with its simulated images, and the run's CITATION.md."""
    from .bids.naming import model_name_of
    from .cli.execution import write_table
    from .training.sessions import attach_derivatives
    from .workflows.base import init_daninet_simulation_wf

    state = check_model_file(opts.model)
    table, missing = attach_derivatives(selected, opts.output_dir)
    if missing:
        raise DaniNetError(f"no pre-processed T1w for sub-{', sub-'.join(missing)} in {opts.output_dir}: "
                           "run the participant level without --model first")
    work = Path(opts.work_dir)
    tables = {subject: write_table(table[table["subject"] == subject], work / "simulation", f"sub-{subject}")
              for subject in sorted(table["subject"].unique())}
    wf = init_daninet_simulation_wf(tables, model_file=opts.model, output_dir=opts.output_dir,
                                    work_dir=work, bids_dir=opts.bids_dir, target_ages=opts.target_ages,
                                    years_ahead=opts.years_ahead, diagnosis=opts.diagnosis,
                                    transfer=opts.transfer, native=opts.native, mode=opts.simulation_mode)

    def finish(progress, crashed: bool) -> int:
        from .reports.citation import citation_text, write_citation
        from .reports.subject import write_subject_report

        reports = [write_subject_report(opts.output_dir, subject, sessions=table) for subject in sorted(tables)]
        write_citation(opts.output_dir, run_dir,
                       citation_text(level="simulation", workflow=wf, model_file=str(opts.model),
                                     model_name=model_name_of(opts.model), model_config=state.get("config")))
        for report in reports:
            print(f"report: {report}", flush=True)
        print(f"simulation: {len(tables)} subjects simulated into {opts.output_dir}", flush=True)
        return 0

    return PreparedLevel(wf, "the simulation of some subjects", finish)


#: each level's preparation, by the name :func:`run_level` takes
PREPARE = {"participant": prepare_participant, "group": prepare_group, "simulation": prepare_simulation}
