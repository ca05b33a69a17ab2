"""``daninet BIDS_DIR OUTPUT_DIR group``: train (and evaluate) the DaniNet model."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DaniNetError
from ..group import gather_sessions
from .execution import run_workflow

LOG = logging.getLogger("daninet")


def run_group(opts, selected) -> int:
    """Build and run :func:`~daninet_pipeline.workflows.group.init_group_wf` from CLI options.

    ``selected``: the sessions table of the CLI's selection; subjects of it without
    participant-level derivatives are pre-processed first. With ``--evaluate`` no model is
    trained: the trained models of ``OUTPUT_DIR/models`` are scored side by side.
    """
    from ..workflows.group import init_group_wf, model_dir_of

    if opts.evaluate:
        return evaluate_only(opts)
    config = opts.config or "full"
    if Path(config).is_file():  # nodes run in their own folders: pass an absolute path
        config = str(Path(config).resolve())
    table, missing = gather_sessions(opts.bids_dir, opts.output_dir,
                                     participant_label=opts.participant_label,
                                     database_dir=opts.bids_database_dir)
    if missing:
        _preprocess_missing(opts, selected, missing)
        table, missing = gather_sessions(opts.bids_dir, opts.output_dir,
                                         participant_label=opts.participant_label,
                                         database_dir=opts.bids_database_dir)
        if missing:
            raise DaniNetError(f"sub-{missing[0]} still lacks participant-level derivatives in {opts.output_dir}")
    LOG.info("group level: %d subjects, %d sessions, configuration %s", table["subject"].nunique(),
             len(table), config)
    wf = init_group_wf(bids_dir=opts.bids_dir, output_dir=opts.output_dir, config=config,
                       seed=opts.seed, resume=opts.resume, evaluate=True,
                       participant_label=opts.participant_label,
                       database_dir=opts.bids_database_dir, train_plugin_args=opts.train_plugin_args)
    wf.base_dir = str(opts.work_dir)
    run_workflow(wf, opts, what="the group level", stop_on_first_crash=True)
    model_dir = model_dir_of(opts.output_dir, config)
    print(f"model: {model_dir / 'model.pt'}")
    print(f"model card: {model_dir / 'model_card.md'}")
    if (model_dir / "group_eval.md").is_file():
        print((model_dir / "group_eval.md").read_text())
    return 0


def _preprocess_missing(opts, selected, missing: list[str]) -> None:
    """Run the participant level for the subjects in ``missing``; raise if any session fails."""
    from .participant import run_participant

    todo = selected[selected["subject"].isin(missing)]
    LOG.info("group level: %d subject(s) lack participant-level derivatives (sub-%s): running the "
             "participant level for them first", len(missing), ", sub-".join(missing))
    if run_participant(opts, todo) != 0:
        raise DaniNetError("the participant level failed for some sessions (see above); the group level "
                           "needs every selected subject pre-processed")


def evaluate_only(opts) -> int:
    """``group --evaluate``: every trained model (or ``--config``'s) beside identity on the
    shared test split; writes ``OUTPUT_DIR/models/group_eval.{tsv,md}``."""
    from ..group import evaluate_trained_models

    names = [Path(str(opts.config)).stem] if opts.config else None
    _, md = evaluate_trained_models(opts.bids_dir, opts.output_dir, names=names,
                                    database_dir=opts.bids_database_dir)
    print(md.read_text())
    print(f"evaluation: {md}")
    return 0
