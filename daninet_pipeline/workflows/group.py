"""Group level: gather derivatives -> split -> slice store -> regional model + training -> evaluation."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from .. import __version__
from ..bids.naming import model_dir
from ..evaluation.split import FRACTIONS
from ..interfaces.group import (
    BuildSliceStore,
    EvaluateTestSplit,
    SplitSubjects,
    TrainModel,
    WriteModelCard,
)


def model_dir_of(output_dir, config: str) -> Path:
    """``OUTPUT_DIR/models/<config name>`` (:func:`daninet_pipeline.bids.naming.model_dir`)."""
    return model_dir(output_dir, config)


def init_group_wf(*, output_dir, config: str, bids_dir=None, seed: int = 0, resume: bool = False,
                  evaluate: bool = True, train_dir=None, train_plugin_args: dict | None = None,
                  qc: bool = False, split_fractions=FRACTIONS, name: str = "group_wf") -> Workflow:
    """Train DaniNet on the selected sessions' participant-level derivatives.

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            from daninet_pipeline.workflows.group import init_group_wf
            wf = init_group_wf(output_dir="out", config="demo")

    Parameters
    ----------
    output_dir : the derivatives folder (the model files go to ``models/<config name>/``)
    config : training preset (``base``, ``P``, ``C``, ``T``, ``full``, ``full-residual``,
        ``demo``) or a JSON configuration file
    bids_dir : input dataset (the evaluation reads its ground truth, where there is one)
    seed : seed of the subject split
    split_fractions : train, validation and test shares of the subjects (stratified by
        diagnosis; :func:`~daninet_pipeline.evaluation.split.split_subjects`)
    resume : continue an interrupted training from its checkpoint
    evaluate : simulate the test subjects and score them beside the identity answer
    train_dir : folder of the training's checkpoint and loss log, in the work directory
        (it must outlive the node's folder for ``resume``); default: the node's folder
    train_plugin_args : plugin arguments of the training node alone (Nipype's per-node
        ``plugin_args``), e.g. ``{"sbatch_args": "--partition=gpu --gpus=1 --time=24:00:00"}``
        so that, with ``--plugin SLURM``, only the training goes to a GPU partition
    qc : copy the QC tables given in ``qc_tsv``, ``qc_outliers_tsv`` and ``excluded_tsv``
        to the model's folder (the group level makes them: ``daninet_pipeline.levels``)

    Inputs
    ------
    sessions_tsv : the selected T1w images with their derivatives (columns of
        :data:`daninet_pipeline.training.sessions.SESSION_COLUMNS`; the CLI's single read of the dataset)
    qc_tsv, qc_outliers_tsv, excluded_tsv : (with ``qc``) the QC table of the selected
        sessions with outliers flagged, the outliers as an exclusion file, and the
        sessions left out with their reasons (:mod:`daninet_pipeline.qc`)

    Outputs
    -------
    split_tsv : ``models/<config>/split.tsv``
    model_file : ``models/<config>/model.pt``
    losses_tsv : ``models/<config>/losses.tsv``
    eval_tsv, eval_md : ``models/<config>/group_eval.{tsv,md}`` (with ``evaluate``)
    model_card : ``models/<config>/model_card.md``
    qc_tsv, qc_outliers_tsv, excluded_tsv : ``models/<config>/qc.tsv``, ``qc_outliers.tsv``,
        ``excluded_sessions.tsv`` (with ``qc``)
    """
    from .outputs import init_ds_model_wf

    workflow = Workflow(name=name)
    workflow.__desc__ = (
        f"The DaniNet progression model was trained with daninet_pipeline {__version__} "
        f"(configuration `{Path(str(config)).stem}`): subjects were split into training, "
        "validation and test sets stratified by diagnosis, a regional progression model "
        "(per-region, per-diagnosis yearly rates of intensity change; scikit-learn) was "
        "fitted on longitudinal pairs of the training set, "
        "and the conditional adversarial autoencoder was trained in PyTorch.\n")
    if evaluate:
        from ..evaluation.measure import QUICK_SYN_ITERATIONS, QUICK_SYN_VOXEL_MM

        workflow.__desc__ += (
            "Each follow-up of a test subject was predicted from the last scan before it by the model (its "
            "image, and the baseline plus the model's predicted change) and by three baselines: the starting "
            "scan copied forward (identity), the starting scan plus the training subjects' mean change for "
            "its diagnosis over the same interval (population mean) and, where two scans or more preceded "
            "the start, each voxel's linear trend; the real follow-up scored as a prediction (oracle) gave "
            "the measurement's own error. Regional volume change was measured by tensor-based morphometry: the "
            "Jacobian determinant of an ANTsPy SyN registration of the starting scan to each image "
            f"({'x'.join(map(str, QUICK_SYN_ITERATIONS))} iterations on a grid of {QUICK_SYN_VOXEL_MM:g} mm "
            "at least, a quick setting), integrated over each atlas region. Each method's error was "
            "compared with identity's and the population mean's on the same follow-ups, with bootstrap "
            "95% intervals resampling test subjects, by horizon.\n")
    qc_fields = ["qc_tsv", "qc_outliers_tsv", "excluded_tsv"] if qc else []
    ds_fields = ["split_tsv", "model_file", "losses_tsv", "eval_tsv", "eval_md", "model_card", *qc_fields]
    fields = ["split_tsv", "model_file", "losses_tsv", "eval_tsv", "eval_md", "model_card",
              "qc_tsv", "qc_outliers_tsv", "excluded_tsv"]
    inputnode = pe.Node(niu.IdentityInterface(fields=["sessions_tsv", *qc_fields]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=fields), name="outputnode")

    split = pe.Node(SplitSubjects(seed=seed, fractions=tuple(split_fractions)), name="split", run_without_submitting=True)
    store = pe.Node(BuildSliceStore(config=str(config)), name="slice_store", mem_gb=2.0)
    train = pe.Node(TrainModel(config=str(config), resume=resume), name="train", mem_gb=4.0)
    if train_dir is not None:
        train.inputs.model_dir = str(train_dir)
    if train_plugin_args:
        train.plugin_args = {**train_plugin_args, "overwrite": True}
    if resume:
        train.overwrite = True
    card = pe.Node(WriteModelCard(config=str(config)), name="model_card", run_without_submitting=True)
    ds_model_wf = init_ds_model_wf(output_dir=str(output_dir), config=str(config), evaluate=evaluate,
                                   qc=qc)

    workflow.connect([
        (inputnode, split, [("sessions_tsv", "sessions_tsv")]),
        (inputnode, store, [("sessions_tsv", "sessions_tsv")]),
        (split, store, [("split_tsv", "split_tsv")]),
        (store, train, [("store_dir", "store_dir")]),
        (train, card, [("model_file", "model_file")]),
        (split, card, [("split_tsv", "split_tsv")]),
        (split, ds_model_wf, [("split_tsv", "inputnode.split_tsv")]),
        (train, ds_model_wf, [("model_file", "inputnode.model_file"),
                              ("losses_tsv", "inputnode.losses_tsv")]),
        (card, ds_model_wf, [("model_card", "inputnode.model_card")]),
        (inputnode, ds_model_wf, [(f, f"inputnode.{f}") for f in qc_fields]),
        (ds_model_wf, outputnode, [(f"outputnode.{f}", f) for f in fields
                                   if (evaluate or not f.startswith("eval")) and f in ds_fields]),
    ])
    if evaluate:
        evaluation = pe.Node(EvaluateTestSplit(), name="evaluate", mem_gb=2.0)
        if bids_dir is not None:
            evaluation.inputs.bids_dir = str(bids_dir)
        workflow.connect([
            (train, evaluation, [("model_file", "model_file")]),
            (inputnode, evaluation, [("sessions_tsv", "sessions_tsv")]),
            (split, evaluation, [("split_tsv", "split_tsv")]),
            (evaluation, card, [("eval_md", "eval_md")]),
            (evaluation, ds_model_wf, [("eval_tsv", "inputnode.eval_tsv"),
                                       ("eval_md", "inputnode.eval_md")]),
        ])
    return workflow
