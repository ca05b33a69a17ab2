"""Nipype interfaces of the group level: thin wrappers of :mod:`daninet_pipeline.training`."""

from __future__ import annotations

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

from ..evaluation.split import FRACTIONS


def _read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"subject": str, "session": str}, keep_default_na=False)


def read_sessions_tsv(path) -> pd.DataFrame:
    """GatherDerivatives' table, with 'n/a' diagnoses back to None."""
    return _read_tsv(path).replace({"diagnosis": {"n/a": None, "": None}})


class _GatherInputSpec(BaseInterfaceInputSpec):
    bids_dir = Directory(exists=True, mandatory=True, desc="input BIDS dataset")
    output_dir = Directory(mandatory=True, desc="derivatives folder of the participant level")
    participant_label = InputMultiObject(Str, desc="subjects to use (default: all)")
    database_dir = Directory(desc="saved pybids index")


class _GatherOutputSpec(TraitedSpec):
    sessions_tsv = File(exists=True, desc="subject, session, age, diagnosis, t1w, preproc, mask")


class GatherDerivatives(SimpleInterface):
    """Table of every session with its pre-processed T1w and mask; fails when one lacks them."""

    input_spec = _GatherInputSpec
    output_spec = _GatherOutputSpec

    def _run_interface(self, runtime):
        from ..errors import BIDSInputError
        from ..training.sessions import gather_sessions

        table, missing = gather_sessions(
            self.inputs.bids_dir, self.inputs.output_dir,
            participant_label=self.inputs.participant_label or None,
            database_dir=self.inputs.database_dir if isdefined(self.inputs.database_dir) else None)
        if missing:
            raise BIDSInputError(f"no participant-level derivatives for sub-{', sub-'.join(missing)} "
                                 f"in {self.inputs.output_dir}")
        out = Path(runtime.cwd) / "sessions.tsv"
        table.to_csv(out, sep="\t", index=False, na_rep="n/a")
        self._results["sessions_tsv"] = str(out)
        return runtime


class _SplitInputSpec(BaseInterfaceInputSpec):
    sessions_tsv = File(exists=True, mandatory=True, desc="selected sessions with derivatives")
    seed = traits.Int(0, usedefault=True, desc="random seed of the split")
    fractions = traits.Tuple(FRACTIONS, traits.Float, traits.Float, traits.Float, usedefault=True,
                             desc="train, validation and test shares of the subjects")


class _SplitOutputSpec(TraitedSpec):
    split_tsv = File(exists=True, desc="subject, split, stratum, sessions")


class SplitSubjects(SimpleInterface):
    """Subjects (never sessions) into train/validation/test, stratified by diagnosis."""

    input_spec = _SplitInputSpec
    output_spec = _SplitOutputSpec

    def _run_interface(self, runtime):
        from ..evaluation.split import split_subjects

        table = read_sessions_tsv(self.inputs.sessions_tsv)
        split = split_subjects(table, seed=self.inputs.seed, fractions=tuple(self.inputs.fractions))
        out = Path(runtime.cwd) / "split.tsv"
        split.to_csv(out, sep="\t", index=False)
        self._results["split_tsv"] = str(out)
        return runtime


class _StoreInputSpec(BaseInterfaceInputSpec):
    sessions_tsv = File(exists=True, mandatory=True, desc="selected sessions with derivatives")
    split_tsv = File(exists=True, mandatory=True, desc="output of SplitSubjects")
    config = Str(mandatory=True, desc="preset name or JSON configuration file")


class _StoreOutputSpec(TraitedSpec):
    store_dir = Directory(exists=True, desc="memory-mapped slice store of the training split")


class BuildSliceStore(SimpleInterface):
    """The training split's pre-processed volumes as a memory-mapped slice store."""

    input_spec = _StoreInputSpec
    output_spec = _StoreOutputSpec

    def _run_interface(self, runtime):
        from ..bids.derivatives import common_provenance
        from ..training.sessions import training_records
        from ..model.config import TrainConfig
        from ..model.data import SliceStore

        cfg = TrainConfig.from_file(self.inputs.config)
        sessions = read_sessions_tsv(self.inputs.sessions_tsv)
        records = training_records(sessions, _read_tsv(self.inputs.split_tsv))
        root = Path(runtime.cwd) / "slice_store"
        SliceStore.build(root, records, image_size=cfg.image_size, axis=cfg.slice_axis,
                         brain_fraction=cfg.brain_fraction, intensity_max=cfg.intensity_max,
                         provenance=common_provenance(r["image"] for r in records), progress=True)
        self._results["store_dir"] = str(root)
        return runtime


class _TrainInputSpec(BaseInterfaceInputSpec):
    store_dir = Directory(exists=True, mandatory=True, desc="slice store")
    config = Str(mandatory=True, desc="preset name or JSON configuration file")
    model_dir = Directory(desc="where the checkpoint, loss log and model file go: a folder of the "
                          "work directory that outlives the node's own (--resume); default: the "
                          "node's folder")
    resume = traits.Bool(False, usedefault=True, desc="continue from the checkpoint in model_dir")


class _TrainOutputSpec(TraitedSpec):
    model_file = File(exists=True, desc="the self-describing model file")
    losses_tsv = File(exists=True, desc="every loss at every logged step")


class TrainModel(SimpleInterface):
    """Fit the regional progression model and train DaniNet (:func:`daninet_pipeline.model.train.train`)."""

    input_spec = _TrainInputSpec
    output_spec = _TrainOutputSpec

    def _run_interface(self, runtime):
        from ..model.train import LOG_NAME, train

        model_dir = Path(self.inputs.model_dir if isdefined(self.inputs.model_dir) else runtime.cwd)
        path = train(self.inputs.config, self.inputs.store_dir, model_dir, resume=self.inputs.resume)
        self._results["model_file"] = str(path)
        self._results["losses_tsv"] = str(model_dir / LOG_NAME)
        return runtime


class _EvalInputSpec(BaseInterfaceInputSpec):
    model_file = File(exists=True, mandatory=True, desc="trained model")
    sessions_tsv = File(exists=True, mandatory=True, desc="selected sessions with derivatives")
    split_tsv = File(exists=True, mandatory=True, desc="output of SplitSubjects")
    bids_dir = Directory(exists=True, desc="input dataset (its ground truth is used when present)")
    syn_iterations = traits.List(traits.Int, desc="TBM's SyN iterations per level (default: "
                                 "evaluation.measure.QUICK_SYN_ITERATIONS, the group level's quick setting)")
    syn_voxel_mm = traits.Float(desc="TBM registers on a grid this coarse at least (default: "
                                "evaluation.measure.QUICK_SYN_VOXEL_MM, the group level's quick setting; "
                                "0: the images' own grid)")
    transfer = traits.Bool(False, usedefault=True,
                           desc="fine-tune the model on each subject's scans up to the start first, as "
                                "configured (off: the group level's quick evaluation; the benchmark applies it)")


class _EvalOutputSpec(TraitedSpec):
    eval_tsv = File(exists=True, desc="one row per test follow-up and method")
    eval_md = File(exists=True, desc="tables by horizon and diagnosis, with bootstrap intervals and verdicts")


class EvaluateTestSplit(SimpleInterface):
    """Predict the test subjects' follow-ups with the model and the baselines and score
    them by TBM: the group level's quick evaluation (quick SyN setting on a grid of 2 mm
    at least, no transfer step unless ``transfer``; :func:`~daninet_pipeline.training.evaluation.evaluate_test_split`)."""

    input_spec = _EvalInputSpec
    output_spec = _EvalOutputSpec

    def _run_interface(self, runtime):
        from ..evaluation import measure
        from ..training.evaluation import evaluate_test_split

        sessions = read_sessions_tsv(self.inputs.sessions_tsv)
        iterations = (tuple(self.inputs.syn_iterations) if isdefined(self.inputs.syn_iterations)
                      and self.inputs.syn_iterations else measure.QUICK_SYN_ITERATIONS)
        tsv, md = evaluate_test_split(
            self.inputs.model_file, sessions, _read_tsv(self.inputs.split_tsv), runtime.cwd,
            bids_dir=self.inputs.bids_dir if isdefined(self.inputs.bids_dir) else None,
            syn_iterations=iterations, transfer=self.inputs.transfer,
            syn_voxel_mm=self.inputs.syn_voxel_mm if isdefined(self.inputs.syn_voxel_mm)
            else measure.QUICK_SYN_VOXEL_MM)
        self._results["eval_tsv"] = str(tsv)
        self._results["eval_md"] = str(md)
        return runtime


class _CardInputSpec(BaseInterfaceInputSpec):
    model_file = File(exists=True, mandatory=True, desc="trained model")
    split_tsv = File(exists=True, mandatory=True, desc="output of SplitSubjects")
    config = Str(mandatory=True, desc="preset name or configuration file used")
    eval_md = File(desc="evaluation summary to include")


class _CardOutputSpec(TraitedSpec):
    model_card = File(exists=True, desc="Markdown model card")


class WriteModelCard(SimpleInterface):
    """Markdown card: data, configuration, steps, losses and validation scores."""

    input_spec = _CardInputSpec
    output_spec = _CardOutputSpec

    def _run_interface(self, runtime):
        from ..training.model_card import write_model_card

        card = write_model_card(self.inputs.model_file, _read_tsv(self.inputs.split_tsv), self.inputs.config,
                                Path(runtime.cwd) / "model_card.md",
                                self.inputs.eval_md if isdefined(self.inputs.eval_md) else None)
        self._results["model_card"] = str(card)
        return runtime
