"""Derivatives sinks of the pre-processing: ``init_ds_preproc_wf``."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

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
    t1w_preproc, t1w_mask, t1w_mask_std, xfm, out_report
        The outputs of :func:`~daninet_pipeline.workflows.preproc.init_preproc_wf`.

    Outputs
    -------
    t1w_preproc, t1w_mask, t1w_mask_std, xfm, out_report
        Paths of the written derivatives.
    """
    from ..data.resources import template_path
    from ..interfaces.bids import DerivativesDataSink, software_versions

    fields = ["t1w_preproc", "t1w_mask", "t1w_mask_std", "xfm", "out_report"]
    workflow = Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["source_file", *fields]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=fields), name="outputnode")
    sources = pe.Node(niu.Function(function=_sources_meta, input_names=["source_file", "bids_dir"],
                                   output_names=["meta"]),
                      name="sources", run_without_submitting=True)
    sources.inputs.bids_dir = str(bids_dir) if bids_dir else None
    software = {"Software": software_versions(), "PreprocessingBackend": backend}
    reference = f"{template} ({template_path(template).name}, 1 mm, skull-stripped)"

    ds_t1w = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), space=template, desc="preproc", suffix="T1w",
        compress=True, dismiss_entities=("acquisition", "reconstruction"),
        SkullStripped=True, SpatialReference=reference,
        IntensityNormalization="brain 99th percentile = 1, clipped to [0, 1.5]", **software),
        name="ds_t1w", run_without_submitting=True, mem_gb=0.5)
    # native space: the mask keeps the raw T1w's header (RestoreOrientation), which the
    # sink must not rewrite (its check_hdr would set qform/sform codes 1/1 and pixdim
    # from the affine: ITK then sees another physical space)
    ds_mask = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), desc="brain", suffix="mask", compress=True,
        check_hdr=False, Type="Brain", SpatialReference="orig", **software),
        name="ds_mask", run_without_submitting=True, mem_gb=0.5)
    ds_mask_std = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), space=template, desc="brain", suffix="mask",
        compress=True, Type="Brain", SpatialReference=reference, **software),
        name="ds_mask_std", run_without_submitting=True, mem_gb=0.5)
    ds_xfm = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), to=template, mode="image", suffix="xfm",
        extension=".txt", Type="affine",
        Description="ITK AffineTransform_double_3_3 (LPS), read by antsApplyTransforms and "
                    "SimpleITK: maps template points to T1w points, i.e. resamples the T1w "
                    "onto the template", **software, **{"from": "T1w"}),
        name="ds_xfm", run_without_submitting=True, mem_gb=0.1)
    ds_report = pe.Node(DerivativesDataSink(
        base_directory=str(output_dir), datatype="figures", space=template, desc="preproc",
        suffix="T1w", extension=".svg", dismiss_entities=("acquisition", "reconstruction")),
        name="ds_report", run_without_submitting=True, mem_gb=0.1)

    sinks = {"t1w_preproc": ds_t1w, "t1w_mask": ds_mask, "t1w_mask_std": ds_mask_std,
             "xfm": ds_xfm, "out_report": ds_report}
    workflow.connect([(inputnode, sources, [("source_file", "source_file")])])
    for field, sink in sinks.items():
        workflow.connect([
            (inputnode, sink, [("source_file", "source_file"), (field, "in_file")]),
            (sink, outputnode, [("out_file", field)]),
        ])
        if field != "out_report":
            workflow.connect([(sources, sink, [("meta", "meta_dict")])])
    return workflow
