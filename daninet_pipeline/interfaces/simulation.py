"""Nipype interface of the simulation step: a thin wrapper of :mod:`daninet_pipeline.simulation`."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    Str,
    TraitedSpec,
    isdefined,
    traits,
)

from ..model.config import SIMULATION_MODES


class _SimulateInputSpec(BaseInterfaceInputSpec):
    model_file = File(exists=True, mandatory=True, desc="trained DaniNet model file")
    sessions_tsv = File(exists=True, mandatory=True,
                        desc="sessions with age, diagnosis, t1w and preproc (GatherDerivatives)")
    subject = Str(mandatory=True, desc="subject label, without 'sub-'")
    target_ages = InputMultiObject(traits.Float, desc="ages to simulate (years)")
    years_ahead = InputMultiObject(traits.Float, desc="years after the baseline to simulate")
    diagnosis = Str(desc="simulate under this diagnosis (counterfactual)")
    transfer = traits.Bool(False, usedefault=True, desc="fine-tune on the subject's scans first")
    native = traits.Bool(False, usedefault=True, desc="also write the images in native space")
    mode = traits.Enum(*SIMULATION_MODES, usedefault=True,
                       desc="change: baseline + generated change; direct: the generator's image")
    bids_dir = Directory(exists=True, mandatory=True, desc="input BIDS dataset")
    output_dir = Directory(mandatory=True, desc="derivatives folder to write into")


class _SimulateOutputSpec(TraitedSpec):
    simulated = OutputMultiObject(File(exists=True), desc="simulated T1w images (template space)")


class SimulateSubject(SimpleInterface):
    """Simulate one subject's baseline at other ages and write BIDS derivatives."""

    input_spec = _SimulateInputSpec
    output_spec = _SimulateOutputSpec

    def _run_interface(self, runtime):
        from ..simulation import simulate_subject, target_ages_for, write_simulations

        from .group import read_sessions_tsv

        table = read_sessions_tsv(self.inputs.sessions_tsv)
        rows = table[table["subject"] == self.inputs.subject].sort_values("age")
        ages = target_ages_for(rows, target_ages=self.inputs.target_ages or None,
                               years_ahead=self.inputs.years_ahead or None)
        diagnosis = self.inputs.diagnosis if isdefined(self.inputs.diagnosis) else None
        results = simulate_subject(self.inputs.model_file, rows, ages, diagnosis=diagnosis,
                                   transfer=self.inputs.transfer, mode=self.inputs.mode)
        session = rows["session"].iloc[0] or None
        written = write_simulations(results, output_dir=self.inputs.output_dir, subject=self.inputs.subject,
                                    session=session, model_file=self.inputs.model_file,
                                    source_t1w=rows["t1w"].iloc[0], bids_dir=self.inputs.bids_dir,
                                    transfer=self.inputs.transfer, native=self.inputs.native)
        self._results["simulated"] = [str(p) for p in written]
        return runtime
