"""The top-level workflow of each level (fMRIPrep's ``init_fmriprep_wf`` shape).

The CLI parses options and calls one of these with explicit keywords; each builds the
whole graph of its level, reads what it must check before any node runs (the training
configuration, the model file) and returns a workflow whose ``daninet_groups``
attribute maps each session's (or subject's) workflow, by its hierarchy name, to a label
such as ``"sub-01 ses-M000"``: the labels are known when the graph is built, and the
progress line and the reports use them as they are.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from ..data.resources import DEFAULT_TEMPLATE


def session_label(subject: str, session: str | None, t1w) -> str:
    """``sub-X[ ses-Y][ acq-..._run-...]``: how a T1w is named in lines and reports.

    >>> session_label("01", "M000", "/d/sub-01_ses-M000_run-02_T1w.nii.gz")
    'sub-01 ses-M000_run-02'
    """
    import re

    extra = "".join(f"_{e}" for e in re.findall(r"(?:acq|rec|run)-[a-zA-Z0-9]+", Path(t1w).name))
    return f"sub-{subject}" + (f" ses-{session}" if session else "") + extra


def init_daninet_participant_wf(table: pd.DataFrame, *, output_dir, work_dir, bids_dir=None,
                                backend: str = "embedded", omp_nthreads: int = 1,
                                template: str = DEFAULT_TEMPLATE, brain_extraction: str = "deepbet",
                                registration: str = "fast",
                                name: str = "daninet_participant_wf") -> Workflow:
    """The participant level: one :func:`~daninet_pipeline.workflows.participant.init_participant_wf`
    per subject of ``table`` (:func:`daninet_pipeline.bids.load_sessions`' table).

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            import pandas as pd
            from daninet_pipeline.workflows.base import init_daninet_participant_wf
            wf = init_daninet_participant_wf(
                pd.DataFrame({"subject": ["01"], "session": ["M000"],
                              "t1w": ["/data/sub-01/ses-M000/anat/sub-01_ses-M000_T1w.nii.gz"]}),
                output_dir="out", work_dir="work")

    ``daninet_groups``: each T1w's pre-processing and sink workflows -> its label.
    """
    from .participant import init_participant_wf, session_keys

    wf = Workflow(name=name, base_dir=str(work_dir))
    wf.config["execution"]["remove_unnecessary_outputs"] = False
    groups = {}
    for subject, rows in table.groupby("subject", sort=True):
        sessions = [(None if pd.isna(s) else s, t) for s, t in zip(rows["session"], rows["t1w"])]
        sub_wf = init_participant_wf(subject=subject, sessions=sessions, output_dir=str(output_dir),
                                     bids_dir=str(bids_dir) if bids_dir else None, backend=backend,
                                     omp_nthreads=omp_nthreads, template=template,
                                     brain_extraction=brain_extraction, registration=registration)
        for key, (session, t1w) in zip(session_keys(sessions), sessions):
            label = session_label(subject, session, t1w)
            for prefix in ("preproc", "ds"):
                groups[f"{name}.{sub_wf.name}.{prefix}_{key}_wf"] = label
        wf.add_nodes([sub_wf])
    wf.daninet_groups = groups
    return wf


def init_daninet_group_wf(*, sessions_tsv, output_dir, work_dir, config: str, bids_dir=None,
                          seed: int = 0, resume: bool = False, evaluate: bool = True,
                          train_plugin_args: dict | None = None, train_config=None,
                          qc_files: dict | None = None) -> Workflow:
    """The group level: :func:`~daninet_pipeline.workflows.group.init_group_wf` on the
    selected sessions (``sessions_tsv``); with ``qc_files`` (``qc_tsv``, ``qc_outliers_tsv``,
    ``excluded_tsv``: :mod:`daninet_pipeline.qc`'s tables) their sinks too.

    The configuration (``config``: a preset name or a JSON file; ``train_config``: the
    :class:`~daninet_pipeline.model.config.TrainConfig` already read from it, if the
    caller has) is read once, here or by the caller, before any node runs (a bad one is a
    :class:`~daninet_pipeline.model.config.ConfigError`), and written out whole, presets
    resolved, as ``WORK_DIR/group/<name>/config/<name>.json``: the nodes read that file.
    """
    from ..bids.naming import model_name
    from ..model.config import TrainConfig
    from .group import init_group_wf

    cfg = train_config if train_config is not None else TrainConfig.from_file(config)
    name = model_name(config)
    resolved = write_resolved_config(cfg, Path(work_dir) / "group" / name / "config" / f"{name}.json")
    wf = init_group_wf(bids_dir=bids_dir, output_dir=output_dir, config=str(resolved), seed=seed,
                       resume=resume, evaluate=evaluate,
                       train_dir=Path(work_dir) / "group" / name / "training",
                       train_plugin_args=train_plugin_args, qc=bool(qc_files))
    wf.inputs.inputnode.sessions_tsv = str(sessions_tsv)
    for field, path in (qc_files or {}).items():
        setattr(wf.inputs.inputnode, field, str(path))
    wf.base_dir = str(work_dir)
    wf.daninet_groups = {}
    return wf


def write_resolved_config(cfg, path) -> Path:
    """``cfg`` as a complete JSON file at ``path``, written only when its content changes
    (Nipype hashes an input file by path and time stamp: the nodes stay cached)."""
    import json

    from ..atomic import write_text

    return write_text(path, json.dumps(cfg.to_dict(), indent=1) + "\n")


def init_daninet_simulation_wf(tables: dict[str, str], *, model_file, output_dir, work_dir, bids_dir,
                               target_ages=None, years_ahead=None, diagnosis: str | None = None,
                               transfer: bool = False, native: bool = False, mode: str = "change",
                               name: str = "daninet_simulation_wf") -> Workflow:
    """The simulation (participant level with ``--model``): one
    :func:`~daninet_pipeline.workflows.simulation.init_simulation_wf` per subject;
    ``tables``: subject label -> its sessions TSV (with the pre-processed T1w).

    ``daninet_groups``: each subject's workflow -> ``sub-X``.
    """
    from nipype.pipeline import engine as pe

    from .simulation import init_simulation_wf

    wf = pe.Workflow(name=name, base_dir=str(work_dir))
    # the model file usually lives in OUTPUT_DIR, whose files the sinks write again after
    # it was deleted: hash inputs by content, so a rerun finds its simulations cached
    wf.config["execution"]["hash_method"] = "content"
    groups = {}
    for subject in sorted(tables):
        sub_wf = init_simulation_wf(subject=subject, model_file=Path(model_file).resolve(),
                                    bids_dir=bids_dir, output_dir=output_dir, target_ages=target_ages,
                                    years_ahead=years_ahead, diagnosis=diagnosis, transfer=transfer,
                                    native=native, mode=mode)
        sub_wf.inputs.inputnode.sessions_tsv = str(tables[subject])
        groups[f"{name}.{sub_wf.name}"] = f"sub-{subject}"
        wf.add_nodes([sub_wf])
    wf.daninet_groups = groups
    return wf
