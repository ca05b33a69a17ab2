"""Glue for the FSL backend: FLIRT matrices to ITK transform files."""

from __future__ import annotations

import os

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec


class _FLIRTToITKInputSpec(BaseInterfaceInputSpec):
    in_matrix = File(exists=True, mandatory=True, desc="FLIRT -omat matrix (moving -> reference)")
    moving = File(exists=True, mandatory=True, desc="the image FLIRT registered (in_file)")
    reference = File(exists=True, mandatory=True, desc="FLIRT's reference (the template)")


class _FLIRTToITKOutputSpec(TraitedSpec):
    out_xfm = File(exists=True, desc="the same affine as an ITK text transform "
                   "(daninet's from-T1w_to-<template> convention)")


class FLIRTToITK(SimpleInterface):
    """Convert a FLIRT matrix to the ITK text transform that the embedded backend writes,
    see :func:`daninet_pipeline.preprocessing.transforms.fsl_to_ras`."""

    input_spec = _FLIRTToITKInputSpec
    output_spec = _FLIRTToITKOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib
        import numpy as np

        from ..preprocessing.transforms import fsl_to_ras, write_itk_affine

        xfm = fsl_to_ras(np.loadtxt(self.inputs.in_matrix), nib.load(self.inputs.moving),
                         nib.load(self.inputs.reference))
        self._results["out_xfm"] = write_itk_affine(
            xfm, os.path.join(runtime.cwd, "native_to_template_xfm.txt"))
        return runtime
