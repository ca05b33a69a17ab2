"""``daninet BIDS_DIR OUTPUT_DIR group``: train (and evaluate) the DaniNet model."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DaniNetError
from ..training.sessions import attach_derivatives, has_longitudinal_pairs
from .execution import run_workflow, write_table

LOG = logging.getLogger("daninet")


def run_group(opts, selected, run_dir=None, train_config=None) -> int:
    """Build :func:`~daninet_pipeline.workflows.base.init_daninet_group_wf` from CLI options
    and run it; write the model's report and the run's CITATION.md.

    ``selected``: the sessions table of the CLI's selection (the dataset's only read): its
    sessions, and no others, are used for training and evaluation; subjects of it without
    participant-level derivatives are pre-processed first. With ``--evaluate`` no model is
    trained: the trained models of ``OUTPUT_DIR/models`` are scored side by side.
    ``run_dir``: the run's ``OUTPUT_DIR/logs/<run id>`` (a new one when None);
    ``train_config``: ``--config`` already read (read here when None), the only reading
    of it: the checks, the graph and the citation use it.
    """
    from ..bids.naming import model_dir, model_name
    from ..model.config import TrainConfig
    from ..reports.progression import write_group_report
    from ..workflows.base import init_daninet_group_wf
    from .execution import new_run_id

    everyone = selected
    selected, excluded = _exclude_sessions(opts, selected)
    if opts.evaluate:
        return evaluate_only(opts, selected)
    config = opts.config or "full"
    # a bad preset or file: one line, before anything runs
    cfg = train_config if train_config is not None else TrainConfig.from_file(config)
    run_dir = Path(run_dir) if run_dir else Path(opts.output_dir) / "logs" / new_run_id("group")
    pairs = has_longitudinal_pairs(selected)
    _check_longitudinal(cfg, model_name(config), pairs)
    from .plan import check_training_plan

    plan = check_training_plan(cfg, allow_cpu=opts.allow_cpu, name=model_name(config))
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
    name = model_name(config)
    sessions_tsv = write_table(table, Path(opts.work_dir) / "group" / name, "sessions")
    qc_files = _qc_tables(opts, everyone, excluded, Path(opts.work_dir) / "group" / name)
    wf = init_daninet_group_wf(sessions_tsv=sessions_tsv, output_dir=opts.output_dir, work_dir=opts.work_dir,
                               config=config, bids_dir=opts.bids_dir, seed=opts.seed, resume=opts.resume,
                               evaluate=pairs, train_plugin_args=opts.train_plugin_args, train_config=cfg,
                               qc_files={k: v for k, v in qc_files.items() if k.endswith("_tsv")})
    run_workflow(wf, opts, what="the group level", run_dir=run_dir, stop_on_first_crash=True)
    folder = model_dir(opts.output_dir, config)
    from ..qc import read_excluded_sessions, read_group_qc

    report = write_group_report(folder, qc=read_group_qc(folder), excluded=read_excluded_sessions(folder))
    from ..reports.citation import citation_text, write_citation

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


def _exclude_sessions(opts, selected):
    """The selection less the sessions of ``--exclude-sessions`` (a malformed file: one
    line naming it and the line), and the excluded sessions with their reasons."""
    import pandas as pd

    from ..qc.exclusions import EXCLUSION_COLUMNS, apply_exclusions, read_exclusions

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
    from ..qc.table import exclusions_from_flags, flag_outliers, gather_qc

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
    from .participant import run_participant

    todo = selected[selected["subject"].isin(missing)]
    LOG.info("group level: %d subject(s) lack participant-level derivatives (sub-%s): running the "
             "participant level for them first", len(missing), ", sub-".join(missing))
    if run_participant(opts, todo) != 0:
        raise DaniNetError("the participant level failed for some sessions (see above); the group level "
                           "needs every selected subject pre-processed")


def evaluate_only(opts, selected) -> int:
    """``group --evaluate``: every trained model (or ``--config``'s) beside identity on the
    shared test split, on the selected sessions; writes ``OUTPUT_DIR/models/group_eval.{tsv,md}``."""
    from ..training.evaluation import evaluate_trained_models

    names = [Path(str(opts.config)).stem] if opts.config else None
    _, md = evaluate_trained_models(opts.bids_dir, opts.output_dir, selected, names=names)
    print(md.read_text())
    print(f"evaluation: {md}")
    return 0
