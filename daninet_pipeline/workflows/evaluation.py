"""Evaluation at scale: one Nipype node per test subject (MultiProc on a node, or SLURM
across a cluster), then one node that writes the tables."""

from __future__ import annotations

import logging
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from .. import __version__
from ..interfaces.evaluation import EvaluateSubject, FitPopulationMean, WriteEvaluation

LOG = logging.getLogger("daninet.evaluation")


def init_evaluation_wf(*, subjects: list[str], models: dict, out_dir, bids_dir=None,
                       measurements=("tbm", "atropos"), syn_voxel_mm=None, min_years: float = 0.0,
                       baselines: bool = True, name: str = "evaluation_wf") -> Workflow:
    """Score the test subjects' follow-ups, one node per subject.

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            from daninet_pipeline.workflows.evaluation import init_evaluation_wf
            wf = init_evaluation_wf(subjects=["01", "02"], models={"full": "model.pt"}, out_dir="eval")

    Parameters
    ----------
    subjects : test subjects (labels without ``sub-``)
    models : row name -> model file
    out_dir : where ``group_eval.tsv``/``group_eval.md`` go
    bids_dir : the input dataset (its ground truth is used when present)
    measurements : ``tbm`` and/or ``atropos``
    syn_voxel_mm : TBM registers on a grid of this many mm at least (finer images on
        their block means); default: the images' own grid
    min_years : score only the follow-ups at least this many years after their starting scan
    baselines : False leaves out ``population-mean`` and ``linear`` (``identity`` and
        ``oracle`` stay): a run that adds models to an earlier run's table
        (:func:`~daninet_pipeline.evaluation.report.join_runs`)

    Inputs
    ------
    sessions_tsv : every session with its derivatives (:func:`~daninet_pipeline.training.sessions.gather_sessions`)
    split_tsv : the subject split (``SplitSubjects``)

    Outputs
    -------
    eval_tsv, eval_md : the rows and the tables
    """
    workflow = Workflow(name=name)
    workflow.__desc__ = (
        f"Predictions were evaluated with daninet_pipeline {__version__}: each test follow-up was predicted "
        "from the last scan before it, and regional volume change was measured by tensor-based morphometry "
        "(ANTsPy SyN) and Atropos tissue segmentation.\n")
    inputnode = pe.Node(niu.IdentityInterface(fields=["sessions_tsv", "split_tsv"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["eval_tsv", "eval_md"]), name="outputnode")
    fit = pe.Node(FitPopulationMean(), name="population_mean", mem_gb=2.0)
    per_subject = pe.MapNode(EvaluateSubject(model_names=list(models), model_files=[str(p) for p in models.values()],
                                             measurements=list(measurements)),
                             iterfield=["subject"], name="evaluate_subject",
                             mem_gb=3.0)  # 2.3 GB resident measured (small shape, 2 mm TBM, one model)
    per_subject.inputs.subject = list(subjects)
    if syn_voxel_mm:
        per_subject.inputs.syn_voxel_mm = float(syn_voxel_mm)
    if min_years:
        per_subject.inputs.min_years = float(min_years)
    if not baselines:
        per_subject.inputs.baselines = False
    if bids_dir is not None:
        per_subject.inputs.bids_dir = str(bids_dir)
    write = pe.Node(WriteEvaluation(out_dir=str(out_dir)), name="write", run_without_submitting=True)
    if syn_voxel_mm:
        write.inputs.syn_voxel_mm = float(syn_voxel_mm)
    workflow.connect([
        (inputnode, fit, [("sessions_tsv", "sessions_tsv"), ("split_tsv", "split_tsv")]),
        (inputnode, per_subject, [("sessions_tsv", "sessions_tsv")]),
        (fit, per_subject, [("population_mean", "population_mean")]),
        (per_subject, write, [("rows_tsv", "rows_tsv")]),
        (write, outputnode, [("eval_tsv", "eval_tsv"), ("eval_md", "eval_md")]),
    ])
    return workflow


def run_evaluation(*, bids_dir, output_dir, models: dict, out_dir, work_dir, nprocs: int = 1,
                   measurements=("tbm", "atropos"), syn_voxel_mm=None, min_years: float = 0.0,
                   baselines: bool = True, name: str = "evaluation_wf",
                   plugin: str = "MultiProc") -> tuple[Path, Path]:
    """Gather the sessions, read the models' common split and run :func:`init_evaluation_wf`
    (``name``: its folder in ``work_dir``; give each differently set run its own).

    Run again with the same ``work_dir`` (a restart), every node that finished is cached:
    the sessions table is rewritten only when its content changes."""
    import pandas as pd

    from ..atomic import write_text
    from ..training.sessions import gather_sessions

    splits = {name: Path(path).parent / "split.tsv" for name, path in models.items()}
    tables = {n: pd.read_csv(p, sep="\t", dtype={"subject": str}) for n, p in splits.items()}
    tests = {n: frozenset(t.loc[t["split"] == "test", "subject"]) for n, t in tables.items()}
    if len(set(tests.values())) != 1:
        raise ValueError("the models were tested on different subjects: train them on the same split")
    split_tsv = next(iter(splits.values()))
    sessions, _ = gather_sessions(bids_dir, output_dir)
    work = Path(work_dir)
    # written only when its content changes: Nipype hashes an input file by path and time
    # stamp, so a rewritten copy re-ran the population mean and every finished subject
    sessions_tsv = write_text(work / "evaluation_sessions.tsv",
                              sessions.to_csv(sep="\t", index=False, na_rep="n/a"))
    n_sessions = sessions.assign(session=sessions["session"].fillna("")).groupby("subject")["session"].nunique()
    subjects = sorted(s for s in next(iter(tests.values())) if n_sessions.get(s, 0) >= 2)
    wf = init_evaluation_wf(subjects=subjects, models=models, out_dir=out_dir, bids_dir=bids_dir,
                            measurements=measurements, syn_voxel_mm=syn_voxel_mm, min_years=min_years,
                            baselines=baselines, name=name)
    wf.inputs.inputnode.sessions_tsv = str(sessions_tsv)
    wf.inputs.inputnode.split_tsv = str(split_tsv)
    wf.base_dir = str(work)
    wf.run(plugin=plugin, plugin_args={"n_procs": nprocs} if plugin == "MultiProc" else {})
    return Path(out_dir) / "group_eval.tsv", Path(out_dir) / "group_eval.md"
