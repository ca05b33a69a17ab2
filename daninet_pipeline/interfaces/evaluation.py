"""Nipype interfaces of the evaluation: thin wrappers of :mod:`daninet_pipeline.evaluation`."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    SimpleInterface,
    Str,
    TraitedSpec,
    isdefined,
    traits,
)

from .group import _EvalOutputSpec, _read_tsv, read_sessions_tsv


class _FitPMInputSpec(BaseInterfaceInputSpec):
    sessions_tsv = File(exists=True, mandatory=True, desc="output of GatherDerivatives")
    split_tsv = File(exists=True, mandatory=True, desc="output of SplitSubjects")


class _FitPMOutputSpec(TraitedSpec):
    population_mean = File(exists=True, desc="voxel-wise mean annual change per diagnosis (.npz)")


class FitPopulationMean(SimpleInterface):
    """The ``population-mean`` baseline, learned from the training split only."""

    input_spec = _FitPMInputSpec
    output_spec = _FitPMOutputSpec

    def _run_interface(self, runtime):
        from ..evaluation.baselines import PopulationMean

        model = PopulationMean.fit(read_sessions_tsv(self.inputs.sessions_tsv), _read_tsv(self.inputs.split_tsv))
        self._results["population_mean"] = str(model.save(Path(runtime.cwd) / "population_mean.npz"))
        return runtime


class _SubjectInputSpec(BaseInterfaceInputSpec):
    subject = Str(mandatory=True, desc="test subject label (without sub-)")
    sessions_tsv = File(exists=True, mandatory=True, desc="output of GatherDerivatives")
    population_mean = File(exists=True, mandatory=True, desc="output of FitPopulationMean")
    model_files = InputMultiObject(File(), desc="trained models")
    model_names = InputMultiObject(Str, desc="row name of each model")
    bids_dir = Directory(exists=True, desc="input dataset (its ground truth is used when present)")
    measurements = traits.List(traits.Enum("tbm", "atropos"), value=["tbm", "atropos"], usedefault=True,
                               desc="how regional volume change is measured")
    syn_voxel_mm = traits.Float(desc="TBM registers on a grid this coarse at least (default: the images' own)")
    # no defaults: an input left undefined is not hashed, so adding these kept every
    # finished subject of an earlier run cached
    min_years = traits.Float(desc="score only follow-ups at least this many years after their starting scan")
    baselines = traits.Bool(desc="False: leave out population-mean and linear (identity and the oracle, "
                                 "the references of every measurement, stay); default True")


class _SubjectOutputSpec(TraitedSpec):
    rows_tsv = File(exists=True, desc="one row per follow-up, method and measurement")


class EvaluateSubject(SimpleInterface):
    """Every follow-up of one test subject, predicted from the last scan before it by
    every method and scored (:func:`~daninet_pipeline.evaluation.evaluate.evaluate_pairs`)."""

    input_spec = _SubjectInputSpec
    output_spec = _SubjectOutputSpec

    def _run_interface(self, runtime):
        from ..evaluation.baselines import PopulationMean
        from ..evaluation.evaluate import ModelPredictor, evaluate_pairs, followup_pairs, ground_truth_volumes

        t0, c0 = time.perf_counter(), time.process_time()
        sessions = read_sessions_tsv(self.inputs.sessions_tsv)
        sessions = sessions[sessions["subject"] == self.inputs.subject]
        bids = self.inputs.bids_dir if isdefined(self.inputs.bids_dir) else None
        pairs = followup_pairs(sessions, None, truth=ground_truth_volumes(bids) if bids else None,
                               min_years=self.inputs.min_years if isdefined(self.inputs.min_years) else 0.0)
        baselines = self.inputs.baselines if isdefined(self.inputs.baselines) else True
        names = list(self.inputs.model_names) if isdefined(self.inputs.model_names) else []
        files = list(self.inputs.model_files) if isdefined(self.inputs.model_files) else []
        models = [ModelPredictor(n, f) for n, f in zip(names, files)]
        rows = evaluate_pairs(pairs, population_mean=PopulationMean.load(self.inputs.population_mean) if baselines
                              else None, linear=baselines, models=models, measurements=list(self.inputs.measurements),
                              syn_voxel_mm=self.inputs.syn_voxel_mm if isdefined(self.inputs.syn_voxel_mm) else None)
        rows["seconds_subject"] = round(time.perf_counter() - t0, 1)
        rows["cpu_seconds_subject"] = round(time.process_time() - c0, 1)  # all threads of this process
        out = Path(runtime.cwd) / f"sub-{self.inputs.subject}_evaluation.tsv"
        rows.to_csv(out, sep="\t", index=False, float_format="%.6g")
        self._results["rows_tsv"] = str(out)
        return runtime


class _WriteInputSpec(BaseInterfaceInputSpec):
    rows_tsv = InputMultiObject(File(exists=True), mandatory=True, desc="EvaluateSubject's tables")
    out_dir = Directory(mandatory=True, desc="where group_eval.tsv/.md go")
    syn_voxel_mm = traits.Float(desc="EvaluateSubject's TBM grid (said in the table's note)")


class WriteEvaluation(SimpleInterface):
    """Gather the subjects' rows; write the tables (:func:`~daninet_pipeline.evaluation.report.write_evaluation`)."""

    input_spec = _WriteInputSpec
    output_spec = _EvalOutputSpec

    def _run_interface(self, runtime):
        from ..evaluation.report import measurement_note, read_rows, write_evaluation

        rows = pd.concat([read_rows(p) for p in self.inputs.rows_tsv], ignore_index=True)
        grid = self.inputs.syn_voxel_mm if isdefined(self.inputs.syn_voxel_mm) else None
        per_subject = rows.groupby("subject")["seconds_subject"].first()
        n_followups = rows.groupby(["subject", "start_session", "followup_session"]).ngroups
        note = (f"Evaluation time: {per_subject.sum():.0f} s of node time for {n_followups} follow-ups, "
                f"{per_subject.sum() / max(n_followups, 1):.1f} s per follow-up (all methods and measurements).")
        tsv, md = write_evaluation(rows, self.inputs.out_dir, note=f"{measurement_note(rows, syn_voxel_mm=grid)} {note}")
        self._results["eval_tsv"] = str(tsv)
        self._results["eval_md"] = str(md)
        return runtime
