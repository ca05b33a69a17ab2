"""Derivatives sinks: ``init_ds_preproc_wf`` (pre-processing), ``init_ds_model_wf``
(group level), ``init_ds_simulation_wf`` (simulated images).

Every file under OUTPUT_DIR (``logs/`` aside) is written by one of these sinks, which run
on every run; names come from :mod:`daninet_pipeline.bids.naming` only.
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from ..bids.naming import sink_entities
from ..data.resources import DEFAULT_TEMPLATE


def _sources_meta(source_file, bids_dir=None):
    """Sidecar ``Sources``: the raw T1w as a BIDS URI (``bids:raw:<relative path>``)."""
    import os

    if bids_dir:
        rel = os.path.relpath(source_file, bids_dir).replace(os.sep, "/")
        if not rel.startswith(".."):
            return {"Sources": [f"bids:raw:{rel}"]}
    return {"Sources": [os.path.abspath(source_file)]}


def init_ds_preproc_wf(*, output_dir: str, template: str = DEFAULT_TEMPLATE,
                       bids_dir: str | None = None, backend: str = "embedded",
                       name: str = "ds_preproc_wf") -> Workflow:
    """Write the pre-processing derivatives of one T1w under ``output_dir``.

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            from daninet_pipeline.workflows.outputs import init_ds_preproc_wf
            wf = init_ds_preproc_wf(output_dir="/tmp")

    Parameters
    ----------
    output_dir : str
        Root of the BIDS derivatives (the BIDS App's OUTPUT_DIR).
    template : str
        TemplateFlow name of the template (the ``space-``/``to-`` labels).
    bids_dir : str or None
        Root of the raw dataset; ``Sources`` become ``bids:raw:`` URIs relative to it.
    backend : str
        Pre-processing backend (recorded in the sidecars).
    name : str
        Workflow name.

    Inputs
    ------
    source_file
        The raw T1w (its entities name the outputs).
    t1w_preproc, t1w_mask, t1w_mask_std, xfm, out_report, qc_tsv
        The outputs of :func:`~daninet_pipeline.workflows.preproc.init_preproc_wf`.

    Outputs
    -------
    t1w_preproc, t1w_mask, t1w_mask_std, xfm, out_report, qc_tsv
        Paths of the written derivatives.
    """
    from ..data.resources import template_path
    from ..interfaces.bids import DerivativesDataSink, software_versions
    from ..preprocessing.normalization import INTENSITY_NORMALIZATION, PREPROCESSING_VERSION

    fields = ["t1w_preproc", "t1w_mask", "t1w_mask_std", "xfm", "out_report", "qc_tsv"]
    workflow = Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["source_file", *fields]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=fields), name="outputnode")
    sources = pe.Node(niu.Function(function=_sources_meta, input_names=["source_file", "bids_dir"],
                                   output_names=["meta"]),
                      name="sources", run_without_submitting=True)
    sources.inputs.bids_dir = str(bids_dir) if bids_dir else None
    software = {"Software": software_versions(), "PreprocessingBackend": backend}
    reference = f"{template} ({template_path(template).name}, 1 mm, skull-stripped)"

    # The image sinks read, check and gzip a whole volume (1-2 s each): they run in the
    # workers. A node run "without submitting" runs in Nipype's main process, which then
    # starts no other node until it ends (docs/benchmarks.md, participant throughput).
    ds_t1w = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), **sink_entities("preproc", template), compress=True,
        SkullStripped=True, SpatialReference=reference,
        IntensityNormalization=INTENSITY_NORMALIZATION, PreprocessingVersion=PREPROCESSING_VERSION, **software),
        name="ds_t1w", mem_gb=0.5)
    # native space: the mask keeps the raw T1w's header (RestoreOrientation), which the
    # sink must not rewrite (its check_hdr would set qform/sform codes 1/1 and pixdim
    # from the affine: ITK then sees another physical space)
    ds_mask = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), **sink_entities("mask", template), compress=True,
        check_hdr=False, Type="Brain", SpatialReference="orig", **software),
        name="ds_mask", mem_gb=0.5)
    ds_mask_std = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), **sink_entities("mask_std", template),
        compress=True, Type="Brain", SpatialReference=reference, **software),
        name="ds_mask_std", mem_gb=0.5)
    ds_xfm = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), **sink_entities("xfm", template),
        extension=".txt", Type="affine",
        Description="ITK AffineTransform_double_3_3 (LPS), read by antsApplyTransforms and "
                    "SimpleITK: maps template points to T1w points, i.e. resamples the T1w "
                    "onto the template", **software),
        name="ds_xfm", run_without_submitting=True, mem_gb=0.1)
    ds_report = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), **sink_entities("report", template), extension=".svg"),
        name="ds_report", run_without_submitting=True, mem_gb=0.1)

    ds_qc = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), **sink_entities("qc", template), extension=".tsv"),
        name="ds_qc", run_without_submitting=True, mem_gb=0.1)

    sinks = {"t1w_preproc": ds_t1w, "t1w_mask": ds_mask, "t1w_mask_std": ds_mask_std,
             "xfm": ds_xfm, "out_report": ds_report, "qc_tsv": ds_qc}
    workflow.connect([(inputnode, sources, [("source_file", "source_file")])])
    for field, sink in sinks.items():
        workflow.connect([
            (inputnode, sink, [("source_file", "source_file"), (field, "in_file")]),
            (sink, outputnode, [("out_file", field)]),
        ])
        if field not in ("out_report", "qc_tsv"):
            workflow.connect([(sources, sink, [("meta", "meta_dict")])])
    return workflow


def init_ds_model_wf(*, output_dir: str, config: str, evaluate: bool = True, qc: bool = False,
                     name: str = "ds_model_wf") -> Workflow:
    """Write a trained model's files under ``OUTPUT_DIR/models/<config name>/``.

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            from daninet_pipeline.workflows.outputs import init_ds_model_wf
            wf = init_ds_model_wf(output_dir="/tmp", config="demo")

    Parameters
    ----------
    output_dir : str
        The BIDS App's OUTPUT_DIR.
    config : str
        Preset name or configuration file (its name names the folder).
    evaluate : bool
        Whether the evaluation tables are written too.
    qc : bool
        Whether the QC tables are written too.
    name : str
        Workflow name.

    Inputs
    ------
    split_tsv, model_file, losses_tsv, eval_tsv, eval_md, model_card
        Files made in the group level's working folders.
    qc_tsv, qc_outliers_tsv, excluded_tsv
        (with ``qc``) The QC table of the selected sessions, its outliers as an exclusion
        file, and the sessions left out with their reasons (:mod:`daninet_pipeline.qc`).

    Outputs
    -------
    split_tsv, model_file, losses_tsv, eval_tsv, eval_md, model_card, qc_tsv, qc_outliers_tsv, excluded_tsv
        Their copies under ``OUTPUT_DIR/models/<config name>/``.
    """
    from ..bids.naming import model_dir
    from ..interfaces.bids import ExportFile

    files = {"split_tsv": "split.tsv", "model_file": "model.pt", "losses_tsv": "losses.tsv",
             "model_card": "model_card.md"}
    if qc:
        files.update(qc_tsv="qc.tsv", qc_outliers_tsv="qc_outliers.tsv", excluded_tsv="excluded_sessions.tsv")
    if evaluate:
        files.update(eval_tsv="group_eval.tsv", eval_md="group_eval.md")
    workflow = Workflow(name=name)
    fields = ["split_tsv", "model_file", "losses_tsv", "eval_tsv", "eval_md", "model_card",
              "qc_tsv", "qc_outliers_tsv", "excluded_tsv"]
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=fields), name="outputnode")
    folder = model_dir(output_dir, config).relative_to(output_dir)
    for field, filename in files.items():
        node = pe.Node(ExportFile(base_directory=str(output_dir), relative_path=str(folder / filename)),
                       name=f"export_{field}", run_without_submitting=True, mem_gb=0.1)
        workflow.connect([
            (inputnode, node, [(field, "in_file")]),
            (node, outputnode, [("out_file", field)]),
        ])
    return workflow


def init_ds_simulation_wf(*, output_dir: str, template: str = DEFAULT_TEMPLATE,
                          native: bool = False, name: str = "ds_simulation_wf") -> Workflow:
    """Write one subject's simulated T1w images and their sidecars.

    Names: the baseline T1w's entities (``sub``, ``ses``, ``acq``, ``rec``, ``run``) with
    ``space-<template>`` and ``desc-sim<model label>Age<whole>p<tenth>[<DX>]``; with
    ``native`` also the same names without ``space-`` on the raw T1w's grid (its header).

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            from daninet_pipeline.workflows.outputs import init_ds_simulation_wf
            wf = init_ds_simulation_wf(output_dir="/tmp", native=True)

    Parameters
    ----------
    output_dir : str
        The BIDS App's OUTPUT_DIR.
    template : str
        TemplateFlow name of the template (the ``space-`` label).
    native : bool
        Whether native-space images are written too.
    name : str
        Workflow name.

    Inputs
    ------
    source_file
        The raw T1w of the baseline (its entities name the outputs).
    simulated, desc, meta
        Template-space images, their ``desc`` labels and sidecar contents (lists).
    simulated_native, meta_native
        The same on the raw T1w's grid (with ``native``).

    Outputs
    -------
    simulated
        Paths of the written images (template space, then native space).
    """
    from ..interfaces.bids import DerivativesDataSink

    workflow = Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=[
        "source_file", "simulated", "desc", "meta", "simulated_native", "meta_native"]),
        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["simulated"]), name="outputnode")
    ds_sim = pe.MapNode(DerivativesDataSink(
        base_directory=str(output_dir), **sink_entities("simulated", template), compress=True),
        iterfield=["in_file", "desc", "meta_dict"], name="ds_simulated",
        run_without_submitting=True, mem_gb=0.5)
    workflow.connect([
        (inputnode, ds_sim, [("source_file", "source_file"), ("simulated", "in_file"),
                             ("desc", "desc"), ("meta", "meta_dict")]),
    ])
    if not native:
        workflow.connect([(ds_sim, outputnode, [("out_file", "simulated")])])
        return workflow
    ds_native = pe.MapNode(DerivativesDataSink(
        base_directory=str(output_dir), **sink_entities("simulated_native", template),
        compress=True, check_hdr=False),
        iterfield=["in_file", "desc", "meta_dict"], name="ds_simulated_native",
        run_without_submitting=True, mem_gb=0.5)
    merge = pe.Node(niu.Merge(2), name="merge_simulated", run_without_submitting=True)
    workflow.connect([
        (inputnode, ds_native, [("source_file", "source_file"), ("simulated_native", "in_file"),
                                ("desc", "desc"), ("meta_native", "meta_dict")]),
        (ds_sim, merge, [("out_file", "in1")]),
        (ds_native, merge, [("out_file", "in2")]),
        (merge, outputnode, [("out", "simulated")]),
    ])
    return workflow
