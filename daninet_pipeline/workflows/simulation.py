"""Simulation workflow: a subject's baseline at other ages (participant level, ``--model``)."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from .. import __version__
from ..interfaces.simulation import SimulateSubject


def init_simulation_wf(*, subject: str, model_file, bids_dir, output_dir, target_ages=None,
                       years_ahead=None, diagnosis: str | None = None, transfer: bool = False,
                       native: bool = False, mode: str = "change", model_name: str | None = None,
                       name: str | None = None) -> Workflow:
    """Simulate one subject's baseline scan at other ages (and diagnoses).

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            from daninet_pipeline.workflows.simulation import init_simulation_wf
            wf = init_simulation_wf(subject="01", model_file="model.pt", bids_dir=".",
                                    output_dir="out")

    Parameters
    ----------
    subject : subject label (without ``sub-``)
    model_file : trained model
    bids_dir, output_dir : input dataset and derivatives folder
    target_ages / years_ahead : what to simulate (default: the real follow-ups' ages)
    diagnosis : counterfactual diagnosis (default: the subject's own)
    transfer : fine-tune a copy of the model on the subject's baseline first
    native : also write each image on the grid of the subject's raw T1w (inverse transform)
    mode : ``change`` (the baseline plus the generated change from its own age) or
        ``direct`` (the generator's image, the paper's output); see ``Simulator.simulate``
    model_name : the model's name in the ``desc`` label (default: ``models/<name>/model.pt``'s
        folder, or the file's stem); several models' images of a subject sit side by side

    Inputs
    ------
    sessions_tsv : the selected sessions with their pre-processed T1w (columns of
        :data:`daninet_pipeline.training.sessions.SESSION_COLUMNS`)

    Outputs
    -------
    simulated : simulated T1w images written as derivatives (by
        :func:`~daninet_pipeline.workflows.outputs.init_ds_simulation_wf`)
    """
    from .outputs import init_ds_simulation_wf

    workflow = Workflow(name=name or f"sim_sub_{subject}_wf")
    workflow.__desc__ = (
        f"Synthetic follow-up images were simulated from the baseline scan with the trained "
        f"DaniNet model (daninet_pipeline {__version__})"
        + (", after fine-tuning a copy of the model on the subject's own scan" if transfer else "")
        + ".\n")
    inputnode = pe.Node(niu.IdentityInterface(fields=["sessions_tsv"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["simulated"]), name="outputnode")
    simulate = pe.Node(SimulateSubject(subject=subject, model_file=str(model_file), bids_dir=str(bids_dir),
                                       output_dir=str(output_dir), transfer=transfer, native=native,
                                       mode=mode),
                       name="simulate", mem_gb=2.0)
    if target_ages:
        simulate.inputs.target_ages = [float(a) for a in target_ages]
    if years_ahead:
        simulate.inputs.years_ahead = [float(y) for y in years_ahead]
    if diagnosis:
        simulate.inputs.diagnosis = diagnosis
    if model_name:
        simulate.inputs.model_name = model_name
    ds_wf = init_ds_simulation_wf(output_dir=str(output_dir), native=native)
    fields = ["source_file", "simulated", "desc", "meta"] + (
        ["simulated_native", "meta_native"] if native else [])
    workflow.connect([
        (inputnode, simulate, [("sessions_tsv", "sessions_tsv")]),
        (simulate, ds_wf, [(f, f"inputnode.{f}") for f in fields]),
        (ds_wf, outputnode, [("outputnode.simulated", "simulated")]),
    ])
    return workflow
