"""``daninet BIDS_DIR OUTPUT_DIR group``: train (and evaluate) the DaniNet model."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DaniNetError
from ..group import gather_sessions
from .execution import run_workflow

LOG = logging.getLogger("daninet")


def run_group(opts) -> int:
    """Build and run :func:`~daninet_pipeline.workflows.group.init_group_wf` from CLI options."""
    from ..workflows.group import init_group_wf, model_dir_of

    config = opts.config or "full"
    if Path(config).is_file():  # nodes run in their own folders: pass an absolute path
        config = str(Path(config).resolve())
    table, missing = gather_sessions(opts.bids_dir, opts.output_dir,
                                     participant_label=opts.participant_label,
                                     database_dir=opts.bids_database_dir)
    if missing:
        raise DaniNetError(f"{len(missing)} subject(s) have no participant-level derivatives in "
                           f"{opts.output_dir} (first: sub-{missing[0]}); run "
                           f"'daninet {opts.bids_dir} {opts.output_dir} participant' first")
    LOG.info("group level: %d subjects, %d sessions, configuration %s", table["subject"].nunique(),
             len(table), config)
    wf = init_group_wf(bids_dir=opts.bids_dir, output_dir=opts.output_dir, config=config,
                       seed=opts.seed, resume=opts.resume, evaluate=True,
                       participant_label=opts.participant_label,
                       database_dir=opts.bids_database_dir)
    wf.base_dir = str(opts.work_dir)
    run_workflow(wf, opts, what="the group level", stop_on_first_crash=True)
    model_dir = model_dir_of(opts.output_dir, config)
    print(f"model: {model_dir / 'model.pt'}")
    print(f"model card: {model_dir / 'model_card.md'}")
    if (model_dir / "group_eval.md").is_file():
        print((model_dir / "group_eval.md").read_text())
    return 0
