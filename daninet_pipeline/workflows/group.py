"""Group level: gather derivatives -> split -> slice store -> regional model + training -> evaluation."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from .. import __version__
from ..interfaces.group import (
    BuildSliceStore,
    EvaluateTestSplit,
    GatherDerivatives,
    SplitSubjects,
    TrainModel,
    WriteModelCard,
)


def model_dir_of(output_dir, config: str) -> Path:
    """``OUTPUT_DIR/models/<config name>``: where a configuration's model and card go."""
    return Path(output_dir) / "models" / Path(str(config)).stem


def init_group_wf(*, bids_dir, output_dir, config: str, seed: int = 0, resume: bool = False,
                  evaluate: bool = True, participant_label=None, database_dir=None,
                  train_plugin_args: dict | None = None, name: str = "group_wf") -> Workflow:
    """Train DaniNet on all subjects' participant-level derivatives.

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            from daninet_pipeline.workflows.group import init_group_wf
            wf = init_group_wf(bids_dir=".", output_dir="out", config="demo")

    Parameters
    ----------
    bids_dir, output_dir : input dataset and the derivatives folder (participant level)
    config : training preset (``base``, ``P``, ``C``, ``T``, ``full``, ``full-residual``,
        ``demo``) or a JSON configuration file
    seed : seed of the subject split
    resume : continue an interrupted training from its checkpoint
    evaluate : simulate the test subjects and score them beside the identity answer
    train_plugin_args : plugin arguments of the training node alone (Nipype's per-node
        ``plugin_args``), e.g. ``{"sbatch_args": "--partition=gpu --gpus=1 --time=24:00:00"}``
        so that, with ``--plugin SLURM``, only the training goes to a GPU partition

    Inputs
    ------
    (none: the workflow reads ``bids_dir`` and ``output_dir`` itself)

    Outputs
    -------
    sessions_tsv : every session with its derivatives
    split_tsv : ``models/<config>/split.tsv``
    model_file : ``models/<config>/model.pt``
    losses_tsv : ``models/<config>/losses.tsv``
    eval_tsv, eval_md : ``models/<config>/group_eval.{tsv,md}`` (with ``evaluate``)
    model_card : ``models/<config>/model_card.md``
    """
    workflow = Workflow(name=name)
    workflow.__desc__ = (
        f"The DaniNet progression model was trained with daninet_pipeline {__version__} "
        f"(configuration `{Path(str(config)).stem}`): subjects were split into training, "
        "validation and test sets stratified by diagnosis, regional support-vector "
        "regressors (scikit-learn) were fitted on longitudinal pairs of the training set, "
        "and the conditional adversarial autoencoder was trained in PyTorch.\n")
    model_dir = model_dir_of(output_dir, config)
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "sessions_tsv", "split_tsv", "model_file", "losses_tsv", "eval_tsv", "eval_md", "model_card"]),
        name="outputnode")

    gather = pe.Node(GatherDerivatives(bids_dir=str(bids_dir), output_dir=str(output_dir)),
                     name="gather", run_without_submitting=True)
    if participant_label:
        gather.inputs.participant_label = list(participant_label)
    if database_dir:
        gather.inputs.database_dir = str(database_dir)
    split = pe.Node(SplitSubjects(seed=seed, out_file=str(model_dir / "split.tsv")), name="split",
                    run_without_submitting=True)
    store = pe.Node(BuildSliceStore(config=str(config)), name="slice_store", mem_gb=2.0)
    train = pe.Node(TrainModel(config=str(config), model_dir=str(model_dir), resume=resume),
                    name="train", mem_gb=4.0)
    if train_plugin_args:
        train.plugin_args = {**train_plugin_args, "overwrite": True}
    if resume:
        train.overwrite = True
    card = pe.Node(WriteModelCard(config=str(config), out_file=str(model_dir / "model_card.md")),
                   name="model_card", run_without_submitting=True)

    workflow.connect([
        (gather, split, [("sessions_tsv", "sessions_tsv")]),
        (gather, store, [("sessions_tsv", "sessions_tsv")]),
        (split, store, [("split_tsv", "split_tsv")]),
        (store, train, [("store_dir", "store_dir")]),
        (train, card, [("model_file", "model_file")]),
        (split, card, [("split_tsv", "split_tsv")]),
        (gather, outputnode, [("sessions_tsv", "sessions_tsv")]),
        (split, outputnode, [("split_tsv", "split_tsv")]),
        (train, outputnode, [("model_file", "model_file"), ("losses_tsv", "losses_tsv")]),
        (card, outputnode, [("model_card", "model_card")]),
    ])
    if evaluate:
        evaluation = pe.Node(EvaluateTestSplit(bids_dir=str(bids_dir), out_dir=str(model_dir)),
                             name="evaluate", mem_gb=2.0)
        workflow.connect([
            (train, evaluation, [("model_file", "model_file")]),
            (gather, evaluation, [("sessions_tsv", "sessions_tsv")]),
            (split, evaluation, [("split_tsv", "split_tsv")]),
            (evaluation, card, [("eval_md", "eval_md")]),
            (evaluation, outputnode, [("eval_tsv", "eval_tsv"), ("eval_md", "eval_md")]),
        ])
    return workflow
