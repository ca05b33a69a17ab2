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
    model_name = Str(desc="the model's name (default: from the file, see bids.naming.model_name_of)")
    sessions_tsv = File(exists=True, mandatory=True,
                        desc="sessions with age, diagnosis, t1w and preproc (the CLI's selection)")
    subject = Str(mandatory=True, desc="subject label, without 'sub-'")
    target_ages = InputMultiObject(traits.Float, desc="ages to simulate (years)")
    years_ahead = InputMultiObject(traits.Float, desc="years after the baseline to simulate")
    diagnosis = Str(desc="simulate under this diagnosis (counterfactual)")
    transfer = traits.Bool(False, usedefault=True, desc="fine-tune on the subject's scans first")
    native = traits.Bool(False, usedefault=True, desc="also make the images in native space")
    mode = traits.Enum(*SIMULATION_MODES, usedefault=True,
                       desc="change: baseline + generated change; direct: the generator's image")
    bids_dir = Directory(exists=True, mandatory=True, desc="input BIDS dataset")
    output_dir = Directory(mandatory=True, desc="derivatives folder (its pre-processed baseline "
                           "and transform are read; nothing is written there)")


class _SimulateOutputSpec(TraitedSpec):
    source_file = File(exists=True, desc="raw T1w of the baseline (names the outputs)")
    simulated = OutputMultiObject(File(exists=True), desc="simulated T1w images (template space)")
    desc = OutputMultiObject(Str, desc="their desc labels (bids.naming.simulation_desc)")
    meta = OutputMultiObject(traits.Dict, desc="their sidecars")
    simulated_native = OutputMultiObject(File(exists=True), desc="the same on the raw T1w's grid")
    meta_native = OutputMultiObject(traits.Dict, desc="their sidecars")


class SimulateSubject(SimpleInterface):
    """Simulate one subject's baseline at other ages; the images, their ``desc`` labels and
    sidecars go to ``init_ds_simulation_wf``'s sinks. The baseline is the first session
    by age and, in it, the first T1w by name (``run-01`` before ``run-02``): a filter
    (``--bids-filter-file``, ``--session-label``) chooses another."""

    input_spec = _SimulateInputSpec
    output_spec = _SimulateOutputSpec

    def _run_interface(self, runtime):
        import os
        from pathlib import Path

        import nibabel as nib
        import numpy as np

        from ..bids.derivatives import simulated_sidecar
        from ..bids.naming import derivative_path, model_name_of, simulation_desc
        from ..errors import DaniNetError
        from ..simulation.subject import simulate_subject, target_ages_for, to_native
        from .group import read_sessions_tsv

        table = read_sessions_tsv(self.inputs.sessions_tsv)
        rows = table[table["subject"] == self.inputs.subject]
        if rows.empty:
            raise DaniNetError(f"sub-{self.inputs.subject}: no selected session")
        # one T1w per session: the first by name (run-01 before run-02)
        rows = (rows.assign(_ses=rows["session"].fillna(""))
                .sort_values(["age", "_ses", "t1w"], kind="stable")
                .drop_duplicates("_ses", keep="first").drop(columns="_ses").reset_index(drop=True))
        ages = target_ages_for(rows, target_ages=self.inputs.target_ages or None,
                               years_ahead=self.inputs.years_ahead or None)
        diagnosis = self.inputs.diagnosis if isdefined(self.inputs.diagnosis) else None
        results = simulate_subject(self.inputs.model_file, rows, ages, diagnosis=diagnosis,
                                   transfer=self.inputs.transfer, mode=self.inputs.mode)
        model = (self.inputs.model_name if isdefined(self.inputs.model_name) and self.inputs.model_name
                 else model_name_of(self.inputs.model_file))
        base = rows.iloc[0]
        source_t1w, output_dir = base["t1w"], Path(self.inputs.output_dir)
        xfm = derivative_path(output_dir, source_t1w, "xfm")
        if self.inputs.native and not xfm.is_file():
            raise DaniNetError(f"{xfm}: no native-to-template transform; --native needs the "
                               "participant level's derivatives")
        out = {k: [] for k in ("simulated", "desc", "meta", "simulated_native", "meta_native")}
        for i, res in enumerate(results):
            desc = simulation_desc(model, res["age"], res["diagnosis"] if res["counterfactual"] else None)
            meta = simulated_sidecar(res, self.inputs.model_file, source_t1w, self.inputs.bids_dir,
                                     os.path.relpath(res["source"], output_dir).replace(os.sep, "/"),
                                     model=model, transfer=self.inputs.transfer)
            img = nib.Nifti1Image(np.asarray(res["image"].dataobj, np.float32), res["image"].affine)
            img.header.set_xyzt_units("mm")
            path = Path(runtime.cwd) / f"simulated_{i:03d}.nii.gz"
            img.to_filename(path)
            out["simulated"].append(str(path))
            out["desc"].append(desc)
            out["meta"].append(meta)
            if self.inputs.native:
                native = Path(runtime.cwd) / f"simulated_native_{i:03d}.nii.gz"
                to_native(res["image"], xfm, source_t1w).to_filename(native)
                out["simulated_native"].append(str(native))
                out["meta_native"].append({
                    **meta, "SpatialReference": "orig",
                    "Sources": [*meta["Sources"],
                                f"bids::{os.path.relpath(xfm, output_dir).replace(os.sep, '/')}"]})
        self._results.update(out)
        self._results["source_file"] = source_t1w
        return runtime
