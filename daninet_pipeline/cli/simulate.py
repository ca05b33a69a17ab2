"""``daninet BIDS_DIR OUTPUT_DIR participant --model FILE``: simulated derivatives."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DaniNetError
from ..training.sessions import attach_derivatives
from .execution import run_workflow, write_table

LOG = logging.getLogger("daninet")


def check_model_file(path) -> dict:
    """Read and check a model file before any node runs; :class:`ModelFileError` in one line
    naming the file and what is wrong (missing, not a model file, another version's
    format, a configuration this version cannot read). Nothing is unpickled."""
    import zipfile

    from ..errors import ModelFileError
    from ..model.modelfile import load_model_file

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise ModelFileError(f"{path}: not a readable DaniNet model file (not a PyTorch archive)")
    return load_model_file(path)


def run_simulation(opts, selected, run_dir=None) -> int:
    """Simulate every selected subject's baseline (one Nipype sub-workflow per subject,
    :func:`~daninet_pipeline.workflows.base.init_daninet_simulation_wf`); write or update
    each subject's report with its simulated images, and the run's CITATION.md.

    ``selected``: the CLI's selection (the dataset's only read); each subject's baseline is
    its first selected session by age and, in it, the first T1w by name. ``run_dir``: the
    run's ``OUTPUT_DIR/logs/<run id>`` (a new one when None).
    """
    from ..bids.naming import model_name_of
    from ..reports.citation import citation_text, write_citation
    from ..reports.subject import write_subject_report
    from ..workflows.base import init_daninet_simulation_wf
    from .execution import new_run_id

    state = check_model_file(opts.model)
    table, missing = attach_derivatives(selected, opts.output_dir)
    if missing:
        raise DaniNetError(f"no pre-processed T1w for sub-{', sub-'.join(missing)} in {opts.output_dir}: "
                           "run the participant level without --model first")
    run_dir = Path(run_dir) if run_dir else Path(opts.output_dir) / "logs" / new_run_id("simulation")
    work = Path(opts.work_dir)
    tables = {subject: write_table(table[table["subject"] == subject], work / "simulation", f"sub-{subject}")
              for subject in sorted(table["subject"].unique())}
    wf = init_daninet_simulation_wf(tables, model_file=opts.model, output_dir=opts.output_dir,
                                    work_dir=work, bids_dir=opts.bids_dir, target_ages=opts.target_ages,
                                    years_ahead=opts.years_ahead, diagnosis=opts.diagnosis,
                                    transfer=opts.transfer, native=opts.native, mode=opts.simulation_mode)
    run_workflow(wf, opts, what="the simulation of some subjects", run_dir=run_dir)
    reports = [write_subject_report(opts.output_dir, subject, sessions=table) for subject in sorted(tables)]
    write_citation(opts.output_dir, run_dir,
                   citation_text(level="simulation", workflow=wf, model_file=str(opts.model),
                                 model_name=model_name_of(opts.model), model_config=state.get("config")))
    for report in reports:
        print(f"report: {report}", flush=True)
    print(f"simulation: {len(tables)} subjects simulated into {opts.output_dir}", flush=True)
    return 0
