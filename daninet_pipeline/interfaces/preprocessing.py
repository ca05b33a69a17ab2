"""Nipype interfaces over the plain functions of :mod:`daninet_pipeline.preprocessing`.

Each interface reads its inputs from files, calls one function, and writes its outputs
in the node's working directory (``runtime.cwd``).
"""

from __future__ import annotations

import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..allocator import keep_freed_memory
from ..data.resources import DEFAULT_TEMPLATE


def _out(runtime, name: str) -> str:
    return os.path.join(runtime.cwd, name)


class _ValidateT1wInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="raw T1w image (NIfTI)")


class _ValidateT1wOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="the T1w, 3D float32, reoriented to RAS+")


class ValidateT1w(SimpleInterface):
    """Check a raw T1w (3D, readable, not empty) and reorient it to RAS+.

    Raises :class:`daninet_pipeline.errors.ImageError` on a corrupt, 4D or empty image,
    which makes the node (and only this session's branch) crash.
    """

    input_spec = _ValidateT1wInputSpec
    output_spec = _ValidateT1wOutputSpec

    def _run_interface(self, runtime):
        from ..preprocessing import load_t1w, reorient_to_ras

        out = _out(runtime, "t1w_ras.nii.gz")
        reorient_to_ras(load_t1w(self.inputs.in_file)).to_filename(out)
        self._results["out_file"] = out
        return runtime


class _N4InputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="T1w image")
    in_mask = File(exists=True, desc="mask where the field is fitted (default: Otsu head mask)")
    shrink_factor = traits.Int(desc="shrink factor of the fitting image (default: to voxels of "
                               "about fit_voxel_mm)")
    fit_voxel_mm = traits.Float(5.0, usedefault=True,
                                desc="voxel size (mm) of the grid the field is fitted on")
    iterations = traits.List(traits.Int, [50, 50], usedefault=True,
                             desc="iterations per fitting level")
    spline_distance = traits.Float(200.0, usedefault=True,
                                   desc="B-spline knot spacing at the first level (mm)")
    num_threads = traits.Int(1, usedefault=True, nohash=True, desc="threads")


class _N4OutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="bias-corrected image")
    bias_field = File(exists=True, desc="multiplicative bias field")


class N4BiasCorrection(SimpleInterface):
    """N4 bias-field correction (SimpleITK), see
    :func:`daninet_pipeline.preprocessing.n4_bias_correction`."""

    input_spec = _N4InputSpec
    output_spec = _N4OutputSpec

    def _run_interface(self, runtime):
        keep_freed_memory()
        import nibabel as nib

        from ..preprocessing import n4_bias_correction

        kwargs = {}
        if isdefined(self.inputs.in_mask):
            kwargs["mask"] = nib.load(self.inputs.in_mask)
        if isdefined(self.inputs.shrink_factor):
            kwargs["shrink_factor"] = self.inputs.shrink_factor
        corrected, field = n4_bias_correction(
            nib.load(self.inputs.in_file), iterations=tuple(self.inputs.iterations),
            spline_distance_mm=self.inputs.spline_distance, fit_voxel_mm=self.inputs.fit_voxel_mm,
            n_threads=self.inputs.num_threads, **kwargs)
        self._results["out_file"] = _out(runtime, "t1w_n4.nii.gz")
        self._results["bias_field"] = _out(runtime, "bias_field.nii.gz")
        corrected.to_filename(self._results["out_file"])
        field.to_filename(self._results["bias_field"])
        return runtime


class _BrainExtractionInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected T1w, RAS+")
    method = traits.Enum("deepbet", "template", usedefault=True, desc="brain-extraction method")
    in_xfm = File(exists=True, desc="native-to-template ITK transform (method 'template')")
    template = traits.Str(DEFAULT_TEMPLATE, usedefault=True,
                          desc="TemplateFlow name of the template (method 'template')")
    num_threads = traits.Int(1, usedefault=True, nohash=True, desc="threads")


class _BrainExtractionOutputSpec(TraitedSpec):
    out_mask = File(exists=True, desc="brain mask (uint8) on the input grid")
    out_file = File(exists=True, desc="skull-stripped image")


class BrainExtraction(SimpleInterface):
    """Brain mask of a T1w image, see :func:`daninet_pipeline.preprocessing.extract_brain`."""

    input_spec = _BrainExtractionInputSpec
    output_spec = _BrainExtractionOutputSpec

    def _run_interface(self, runtime):
        keep_freed_memory()
        import nibabel as nib
        import numpy as np

        from ..data.resources import load_template_mask
        from ..preprocessing import extract_brain, read_itk_affine

        img = nib.load(self.inputs.in_file)
        kwargs = {}
        if self.inputs.method == "template":
            if not isdefined(self.inputs.in_xfm):
                raise ValueError("method 'template' needs in_xfm")
            kwargs = dict(native_to_template=read_itk_affine(self.inputs.in_xfm),
                          template_mask=load_template_mask(self.inputs.template))
        mask = extract_brain(img, method=self.inputs.method, n_threads=self.inputs.num_threads,
                             **kwargs)
        self._results["out_mask"] = _out(runtime, "brain_mask.nii.gz")
        self._results["out_file"] = _out(runtime, "brain.nii.gz")
        mask.to_filename(self._results["out_mask"])
        brain = np.asarray(img.dataobj, np.float32) * np.asarray(mask.dataobj)
        nib.Nifti1Image(brain, img.affine).to_filename(self._results["out_file"])
        return runtime


class _AffineRegistrationInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="moving image (native T1w)")
    in_mask = File(exists=True, desc="brain mask of the moving image (skull-strips it)")
    template = traits.Str(DEFAULT_TEMPLATE, usedefault=True,
                          desc="TemplateFlow name of the (skull-stripped) fixed template")
    preset = traits.Enum("fast", "coarse", usedefault=True, desc="registration schedule")
    seed = traits.Int(0, usedefault=True, desc="seed of the metric's random sample")
    num_threads = traits.Int(1, usedefault=True, nohash=True, desc="threads")


class _AffineRegistrationOutputSpec(TraitedSpec):
    out_xfm = File(exists=True, desc="ITK text transform (template -> native points, LPS), "
                   "i.e. the from-T1w_to-<template> transform of antsApplyTransforms")


class AffineRegistration(SimpleInterface):
    """Affine registration to a packaged template, see
    :func:`daninet_pipeline.preprocessing.affine_registration`."""

    input_spec = _AffineRegistrationInputSpec
    output_spec = _AffineRegistrationOutputSpec

    def _run_interface(self, runtime):
        keep_freed_memory()
        import nibabel as nib

        from ..data.resources import load_template, load_template_mask
        from ..preprocessing import affine_registration, write_itk_affine

        mask = nib.load(self.inputs.in_mask) if isdefined(self.inputs.in_mask) else None
        xfm = affine_registration(
            nib.load(self.inputs.in_file), load_template(self.inputs.template),
            moving_mask=mask, fixed_mask=load_template_mask(self.inputs.template),
            preset=self.inputs.preset, n_threads=self.inputs.num_threads, seed=self.inputs.seed)
        self._results["out_xfm"] = write_itk_affine(xfm, _out(runtime, "native_to_template_xfm.txt"))
        return runtime


class _NormalizeInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    in_mask = File(exists=True, mandatory=True, desc="brain mask on the same grid")
    percentile = traits.Range(50.0, 100.0, 99.0, usedefault=True,
                              desc="brain percentile mapped to intensity 1")


class _NormalizeOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="skull-stripped image, brain p99 = 1, clipped to [0, 1.5]")


class NormalizeIntensity(SimpleInterface):
    """Intensity normalisation, see :func:`daninet_pipeline.preprocessing.normalize_intensity`."""

    input_spec = _NormalizeInputSpec
    output_spec = _NormalizeOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib

        from ..preprocessing import normalize_intensity

        out = normalize_intensity(nib.load(self.inputs.in_file), nib.load(self.inputs.in_mask),
                                  percentile=self.inputs.percentile)
        self._results["out_file"] = _out(runtime, "t1w_norm.nii.gz")
        out.to_filename(self._results["out_file"])
        return runtime


class _ResampleInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="image in native space")
    in_xfm = File(exists=True, mandatory=True, desc="native-to-template ITK transform")
    template = traits.Str(DEFAULT_TEMPLATE, usedefault=True,
                          desc="TemplateFlow name of the template whose grid is the target")
    interpolation = traits.Enum("linear", "nearest", "cubic", usedefault=True,
                                desc="interpolation")


class _ResampleOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="image on the template grid")


class ResampleToTemplate(SimpleInterface):
    """Resample onto the template grid, see
    :func:`daninet_pipeline.preprocessing.resample_to_template`."""

    input_spec = _ResampleInputSpec
    output_spec = _ResampleOutputSpec

    def _run_interface(self, runtime):
        keep_freed_memory()
        import nibabel as nib
        import numpy as np

        from ..data.resources import load_template
        from ..preprocessing import read_itk_affine, resample_to_template

        order = {"nearest": 0, "linear": 1, "cubic": 3}[self.inputs.interpolation]
        img = nib.load(self.inputs.in_file)
        dtype = np.uint8 if order == 0 else np.float32
        out = resample_to_template(img, read_itk_affine(self.inputs.in_xfm),
                                   load_template(self.inputs.template), order=order, dtype=dtype)
        if order == 3:  # B-spline overshoot below 0
            out = nib.Nifti1Image(np.clip(np.asarray(out.dataobj), 0, None), out.affine, out.header)
        self._results["out_file"] = _out(runtime, "resampled.nii.gz")
        out.to_filename(self._results["out_file"])
        return runtime


class _RestoreOrientationInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="image on the RAS+ grid of the reference")
    reference = File(exists=True, mandatory=True, desc="the raw image whose grid is restored")


class _RestoreOrientationOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="image on the reference's own voxel grid")


class RestoreOrientation(SimpleInterface):
    """Undo the RAS+ reorientation (no interpolation), see
    :func:`daninet_pipeline.preprocessing.reorient_like`."""

    input_spec = _RestoreOrientationInputSpec
    output_spec = _RestoreOrientationOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib

        from ..preprocessing import reorient_like

        img = nib.load(self.inputs.in_file)
        out = reorient_like(img, nib.load(self.inputs.reference))
        out.set_data_dtype(img.get_data_dtype())
        self._results["out_file"] = _out(runtime, "restored.nii.gz")
        out.to_filename(self._results["out_file"])
        return runtime


class _QualityMeasuresInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="pre-processed T1w on the template grid")
    in_mask_std = File(exists=True, mandatory=True, desc="brain mask on the template grid")
    in_mask = File(exists=True, mandatory=True, desc="brain mask on the raw T1w's grid")
    template = traits.Str("MNI152NLin2009aSym", usedefault=True,
                          desc="TemplateFlow name of the template of in_file's grid")


class _QualityMeasuresOutputSpec(TraitedSpec):
    out_tsv = File(exists=True, desc="one row of QC measures (daninet_pipeline.qc.measures)")


class QualityMeasures(SimpleInterface):
    """A session's QC measures (brain volume, alignment to the template, residual bias,
    SNR, CNR), see :func:`daninet_pipeline.qc.measures.session_qc`."""

    input_spec = _QualityMeasuresInputSpec
    output_spec = _QualityMeasuresOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib

        from ..data.resources import load_template, load_template_mask
        from ..qc.measures import session_qc, write_session_qc

        measures = session_qc(nib.load(self.inputs.in_file), nib.load(self.inputs.in_mask_std),
                              nib.load(self.inputs.in_mask), load_template(self.inputs.template),
                              load_template_mask(self.inputs.template))
        self._results["out_tsv"] = write_session_qc(measures, _out(runtime, "qc.tsv"))
        return runtime
