"""``daninet BIDS_DIR OUTPUT_DIR group``: train (and evaluate) the DaniNet model."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DaniNetError
from ..group import attach_derivatives, has_longitudinal_pairs
from .execution import run_workflow, write_table

LOG = logging.getLogger("daninet")


def run_group(opts, selected) -> int:
    """Build and run :func:`~daninet_pipeline.workflows.group.init_group_wf` from CLI options.

    ``selected``: the sessions table of the CLI's selection (the dataset's only read): its
    sessions, and no others, are used for training and evaluation; subjects of it without
    participant-level derivatives are pre-processed first. With ``--evaluate`` no model is
    trained: the trained models of ``OUTPUT_DIR/models`` are scored side by side.
    """
    from ..bids.naming import model_dir, model_name
    from ..workflows.group import init_group_wf

    if opts.evaluate:
        return evaluate_only(opts, selected)
    config = opts.config or "full"
    if Path(config).is_file():  # nodes run in their own folders: pass an absolute path
        config = str(Path(config).resolve())
    pairs = has_longitudinal_pairs(selected)
    _check_longitudinal(config, pairs)
    from .plan import check_training_plan

    plan = check_training_plan(config, allow_cpu=opts.allow_cpu)
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
    wf = init_group_wf(bids_dir=opts.bids_dir, output_dir=opts.output_dir, config=config,
                       seed=opts.seed, resume=opts.resume, evaluate=pairs,
                       train_dir=Path(opts.work_dir) / "group" / name / "training",
                       train_plugin_args=opts.train_plugin_args)
    wf.inputs.inputnode.sessions_tsv = str(sessions_tsv)
    wf.base_dir = str(opts.work_dir)
    run_workflow(wf, opts, what="the group level", stop_on_first_crash=True)
    folder = model_dir(opts.output_dir, config)
    print(f"model: {folder / 'model.pt'}")
    print(f"model card: {folder / 'model_card.md'}")
    if (folder / "group_eval.md").is_file():
        print((folder / "group_eval.md").read_text())
    return 0


def _check_longitudinal(config: str, pairs: bool) -> None:
    """A configuration with the regional constraint needs longitudinal pairs: one line
    naming a preset that does not, when the selection has no subject with two sessions."""
    if pairs:
        return
    from ..model.config import TrainConfig

    cfg = TrainConfig.from_file(config)
    w = cfg.weight_reg
    if w.value > 0 or (w.kind != "constant" and w.initial > 0):
        raise DaniNetError(f"configuration {Path(str(config)).stem} fits its regional constraint on "
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
    from ..group import evaluate_trained_models

    names = [Path(str(opts.config)).stem] if opts.config else None
    _, md = evaluate_trained_models(opts.bids_dir, opts.output_dir, selected, names=names)
    print(md.read_text())
    print(f"evaluation: {md}")
    return 0
