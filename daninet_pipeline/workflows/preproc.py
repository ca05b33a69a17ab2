"""Pre-processing of one T1w image: ``init_preproc_wf``."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from ..data.resources import DEFAULT_TEMPLATE, template_path

BACKENDS = ("embedded", "fsl")


def _first(inlist):
    """First element of a list (FAST returns lists)."""
    if isinstance(inlist, (list, tuple)):
        return inlist[0]
    return inlist


def init_preproc_wf(*, backend: str = "embedded", omp_nthreads: int = 1,
                    template: str = DEFAULT_TEMPLATE, brain_extraction: str = "deepbet",
                    registration: str = "fast", name: str = "preproc_wf") -> Workflow:
    """Pre-process one T1w: reorient, bias-correct, brain-extract, register to the
    template, normalise intensities and resample onto the template grid.

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            from daninet_pipeline.workflows.preproc import init_preproc_wf
            wf = init_preproc_wf(backend="embedded", omp_nthreads=1)

    Parameters
    ----------
    backend : str
        ``embedded`` (SimpleITK N4, deepbet, SimpleITK affine; all pip-installable) or
        ``fsl`` (``fslreorient2std``, ``bet``, ``fast``, ``flirt`` through Nipype).
    omp_nthreads : int
        Threads one node may use.
    template : str
        TemplateFlow name of a packaged skull-stripped template
        (see :func:`daninet_pipeline.data.resources.template_path`).
    brain_extraction : str
        Embedded backend: ``deepbet`` or ``template``.
    registration : str
        Embedded backend: a preset of :data:`daninet_pipeline.preprocessing.registration.PRESETS`.
    name : str
        Workflow name.

    Inputs
    ------
    t1w
        Raw T1w NIfTI file (any orientation, 3D).

    Outputs
    -------
    t1w_preproc
        Bias-corrected, skull-stripped, intensity-normalised (brain p99 = 1) T1w on the
        template grid.
    t1w_mask
        Brain mask on the raw T1w's own voxel grid.
    t1w_mask_std
        Brain mask on the template grid.
    xfm
        Native-to-template affine, ITK text file (``antsApplyTransforms -t``).
    out_report
        QC figure (SVG).
    qc_tsv
        One row of QC measures (:data:`daninet_pipeline.qc.measures.QC_MEASURES`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown pre-processing backend {backend!r}; choose one of {BACKENDS}")
    from ..interfaces.preprocessing import (
        AffineRegistration,
        BrainExtraction,
        N4BiasCorrection,
        NormalizeIntensity,
        QualityMeasures,
        ResampleToTemplate,
        RestoreOrientation,
        ValidateT1w,
    )
    from ..interfaces.reports import PreprocReport

    template_file = str(template_path(template))  # fails at build time if not installed
    workflow = Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["t1w_preproc", "t1w_mask", "t1w_mask_std", "xfm", "out_report", "qc_tsv"]),
        name="outputnode")

    validate = pe.Node(ValidateT1w(), name="validate", mem_gb=1)
    normalize = pe.Node(NormalizeIntensity(), name="normalize", mem_gb=1)
    resample_t1w = pe.Node(ResampleToTemplate(template=template, interpolation="linear"),
                           name="resample_t1w", mem_gb=1)
    resample_mask = pe.Node(ResampleToTemplate(template=template, interpolation="nearest"),
                            name="resample_mask", mem_gb=1)
    restore_mask = pe.Node(RestoreOrientation(), name="restore_mask", mem_gb=0.5)
    report = pe.Node(PreprocReport(template=template), name="report", mem_gb=1)
    qc = pe.Node(QualityMeasures(template=template), name="quality_measures", mem_gb=1)

    workflow.connect([
        (inputnode, validate, [("t1w", "in_file")]),
        (inputnode, restore_mask, [("t1w", "reference")]),
        (normalize, resample_t1w, [("out_file", "in_file")]),
        (resample_t1w, report, [("out_file", "in_file")]),
        (resample_mask, report, [("out_file", "in_mask")]),
        (resample_t1w, outputnode, [("out_file", "t1w_preproc")]),
        (resample_mask, outputnode, [("out_file", "t1w_mask_std")]),
        (restore_mask, outputnode, [("out_file", "t1w_mask")]),
        (report, outputnode, [("out_report", "out_report")]),
        (resample_t1w, qc, [("out_file", "in_file")]),
        (resample_mask, qc, [("out_file", "in_mask_std")]),
        (restore_mask, qc, [("out_file", "in_mask")]),
        (qc, outputnode, [("out_tsv", "qc_tsv")]),
    ])

    if backend == "embedded":
        import SimpleITK as sitk

        workflow.__desc__ = (
            "The T1w image was reoriented to RAS+ (nibabel), corrected for intensity "
            "non-uniformity with N4 (SimpleITK {sitk}, fitted on an 8 mm copy inside a "
            "head mask), skull-stripped with deepbet, corrected again with N4 inside the "
            "brain mask (fitted on a 5 mm copy; the image that is normalised), and registered to the {tpl} template with a "
            "multi-resolution 12-parameter affine (SimpleITK, Mattes mutual information). "
            "Intensities were scaled so that the brain's 99th percentile is 1, and the "
            "image was resampled onto the template grid (trilinear).".format(
                sitk=sitk.Version_VersionString(), tpl=template))
        from ..preprocessing.bias import FIT_VOXEL_MM, HEAD_FIT_VOXEL_MM

        # the head-mask pass only feeds brain extraction and registration: a coarser fit
        n4 = pe.Node(N4BiasCorrection(num_threads=omp_nthreads, fit_voxel_mm=HEAD_FIT_VOXEL_MM), name="n4",
                     n_procs=omp_nthreads, mem_gb=2)
        bet = pe.Node(BrainExtraction(method="deepbet", num_threads=omp_nthreads,
                                      template=template),
                      name="brain_extraction", n_procs=omp_nthreads, mem_gb=3)
        n4_brain = pe.Node(N4BiasCorrection(num_threads=omp_nthreads, fit_voxel_mm=FIT_VOXEL_MM),
                           name="n4_brain",
                           n_procs=omp_nthreads, mem_gb=2)
        register = pe.Node(AffineRegistration(template=template, preset=registration,
                                              num_threads=omp_nthreads),
                           name="register", n_procs=omp_nthreads, mem_gb=2)
        workflow.connect([
            (validate, n4, [("out_file", "in_file")]),
            (n4, register, [("out_file", "in_file")]),
            (validate, n4_brain, [("out_file", "in_file")]),
            (bet, n4_brain, [("out_mask", "in_mask")]),
            (n4_brain, normalize, [("out_file", "in_file")]),
            (bet, register, [("out_mask", "in_mask")]),
            (bet, normalize, [("out_mask", "in_mask")]),
            (bet, resample_mask, [("out_mask", "in_file")]),
            (bet, restore_mask, [("out_mask", "in_file")]),
            (register, resample_t1w, [("out_xfm", "in_xfm")]),
            (register, resample_mask, [("out_xfm", "in_xfm")]),
            (register, outputnode, [("out_xfm", "xfm")]),
        ])
        if brain_extraction == "template":
            coarse = pe.Node(AffineRegistration(template=template, preset="coarse",
                                                num_threads=omp_nthreads),
                             name="register_coarse", n_procs=omp_nthreads, mem_gb=2)
            bet.inputs.method = "template"
            workflow.connect([
                (n4, coarse, [("out_file", "in_file")]),
                (coarse, bet, [("out_xfm", "in_xfm")]),
                (n4, bet, [("out_file", "in_file")]),
            ])
        elif brain_extraction == "deepbet":
            workflow.connect([(n4, bet, [("out_file", "in_file")])])
        else:
            raise ValueError(f"unknown brain extraction {brain_extraction!r}")
        return workflow

    # FSL backend
    from nipype.interfaces import fsl

    from ..interfaces.fsl import FLIRTToITK

    workflow.__desc__ = (
        "The T1w image was reoriented with `fslreorient2std`, skull-stripped with `bet` "
        "(robust centre estimation), bias-corrected with `fast`, and registered to the "
        f"{template} template with `flirt` (12 degrees of freedom, correlation ratio). "
        "Intensities were scaled so that the brain's 99th percentile is 1, and the image was "
        "resampled onto the template grid (trilinear, scipy).")
    reorient = pe.Node(fsl.Reorient2Std(output_type="NIFTI_GZ"), name="fsl_reorient", mem_gb=1)
    bet = pe.Node(fsl.BET(mask=True, robust=True, frac=0.5, output_type="NIFTI_GZ"),
                  name="fsl_bet", mem_gb=1)
    fast = pe.Node(fsl.FAST(img_type=1, number_classes=3, output_biascorrected=True,
                            no_pve=True, output_type="NIFTI_GZ"), name="fsl_fast", mem_gb=2)
    flirt = pe.Node(fsl.FLIRT(reference=template_file, dof=12, cost="corratio",
                              searchr_x=[-30, 30], searchr_y=[-30, 30], searchr_z=[-30, 30],
                              output_type="NIFTI_GZ"), name="fsl_flirt", mem_gb=2)
    to_itk = pe.Node(FLIRTToITK(reference=template_file), name="flirt_to_itk", mem_gb=0.5)
    workflow.connect([
        (validate, reorient, [("out_file", "in_file")]),
        (reorient, bet, [("out_file", "in_file")]),
        (bet, fast, [("out_file", "in_files")]),
        (fast, flirt, [(("restored_image", _first), "in_file")]),
        (fast, to_itk, [(("restored_image", _first), "moving")]),
        (flirt, to_itk, [("out_matrix_file", "in_matrix")]),
        (fast, normalize, [(("restored_image", _first), "in_file")]),
        (bet, normalize, [("mask_file", "in_mask")]),
        (bet, resample_mask, [("mask_file", "in_file")]),
        (bet, restore_mask, [("mask_file", "in_file")]),
        (to_itk, resample_t1w, [("out_xfm", "in_xfm")]),
        (to_itk, resample_mask, [("out_xfm", "in_xfm")]),
        (to_itk, outputnode, [("out_xfm", "xfm")]),
    ])
    return workflow
