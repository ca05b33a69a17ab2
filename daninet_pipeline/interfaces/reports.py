"""The pre-processing QC figure as a Nipype interface."""

from __future__ import annotations

import os

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from ..data.resources import DEFAULT_TEMPLATE


class _PreprocReportInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="pre-processed T1w on the template grid")
    in_mask = File(exists=True, mandatory=True, desc="brain mask on the template grid")
    template = traits.Str(DEFAULT_TEMPLATE, usedefault=True,
                          desc="TemplateFlow name of the template (its edges are drawn)")
    title = traits.Str("", usedefault=True, desc="figure title")


class _PreprocReportOutputSpec(TraitedSpec):
    out_report = File(exists=True, desc="SVG figure")


class PreprocReport(SimpleInterface):
    """Brain-mask outline and template edges over the pre-processed image (SVG), see
    :func:`daninet_pipeline.reports.preproc.plot_preproc_qc`."""

    input_spec = _PreprocReportInputSpec
    output_spec = _PreprocReportOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib

        from ..data.resources import load_template
        from ..reports.preproc import plot_preproc_qc

        out = os.path.join(runtime.cwd, "preproc_qc.svg")
        plot_preproc_qc(nib.load(self.inputs.in_file), nib.load(self.inputs.in_mask),
                        load_template(self.inputs.template), out, title=self.inputs.title)
        self._results["out_report"] = out
        return runtime
