"""``daninet BIDS_DIR OUTPUT_DIR participant --model FILE``: simulated derivatives."""

from __future__ import annotations

import logging
from pathlib import Path

from nipype.pipeline import engine as pe

from ..errors import DaniNetError
from ..group import attach_derivatives
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


def run_simulation(opts, selected) -> int:
    """Simulate every selected subject's baseline; one Nipype sub-workflow per subject.

    ``selected``: the CLI's selection (the dataset's only read); each subject's baseline is
    its first selected session by age and, in it, the first T1w by name.
    """
    from ..workflows.simulation import init_simulation_wf

    check_model_file(opts.model)
    table, missing = attach_derivatives(selected, opts.output_dir)
    if missing:
        raise DaniNetError(f"no pre-processed T1w for sub-{', sub-'.join(missing)} in {opts.output_dir}: "
                           "run the participant level without --model first")
    work = Path(opts.work_dir)
    wf = pe.Workflow(name="daninet_simulation_wf", base_dir=str(work))
    # the model file usually lives in OUTPUT_DIR, whose files the sinks write again after
    # it was deleted: hash inputs by content, so a rerun finds its simulations cached
    wf.config["execution"]["hash_method"] = "content"
    for subject in sorted(table["subject"].unique()):
        sub_wf = init_simulation_wf(subject=subject, model_file=Path(opts.model).resolve(),
                                    bids_dir=opts.bids_dir, output_dir=opts.output_dir,
                                    target_ages=opts.target_ages, years_ahead=opts.years_ahead,
                                    diagnosis=opts.diagnosis, transfer=opts.transfer,
                                    native=opts.native, mode=opts.simulation_mode)
        rows = table[table["subject"] == subject]
        sub_wf.inputs.inputnode.sessions_tsv = str(write_table(rows, work / "simulation", f"sub-{subject}"))
        wf.add_nodes([sub_wf])
    run_workflow(wf, opts, what="the simulation of some subjects")
    LOG.info("simulated %d subjects into %s", table["subject"].nunique(), opts.output_dir)
    return 0
