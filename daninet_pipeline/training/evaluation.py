"""The group level's evaluation, as plain functions: every test follow-up predicted from
the last scan before it by the trained models and the baselines (oracle, identity,
population-mean, linear), scored against the demo data's true volumes or the real
follow-ups (:mod:`daninet_pipeline.evaluation`), and several trained models side by side
(``group --evaluate``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..errors import BIDSInputError
from .sessions import attach_derivatives

LOG = logging.getLogger("daninet")


def evaluate_test_split(model_file, sessions: pd.DataFrame, split: pd.DataFrame, out_dir,
                        bids_dir=None, *, method: str = "daninet", measurements=("tbm",),
                        syn_iterations=None, syn_voxel_mm=None, transfer: bool = True) -> tuple[Path, Path]:
    """Predict each test follow-up from the last scan before it with the model and the
    baselines, and score them (:mod:`daninet_pipeline.evaluation`); write
    ``group_eval.tsv`` and ``group_eval.md`` in ``out_dir``."""
    return evaluate_models({method: model_file}, sessions, split, out_dir, bids_dir, measurements=measurements,
                           syn_iterations=syn_iterations, syn_voxel_mm=syn_voxel_mm, transfer=transfer)


def evaluate_models(model_files: dict, sessions: pd.DataFrame, split: pd.DataFrame, out_dir,
                    bids_dir=None, *, modes=("direct", "change"), measurements=("tbm",),
                    syn_iterations=None, syn_voxel_mm=None, transfer: bool = True) -> tuple[Path, Path]:
    """:func:`evaluate_test_split` for several models at once, on the same test follow-ups:
    rows ``oracle``, ``identity``, ``population-mean`` (learned on the training split),
    ``linear`` (where two scans or more precede the start) and, for each name -> model
    file of ``model_files`` and each of ``modes``, ``name`` (direct) or ``name-change``.
    ``measurements``: ``tbm`` and/or ``atropos`` (the group level uses TBM only, to keep
    ``make demo`` short; the benchmark uses both). ``syn_iterations``: TBM's SyN
    iterations per level (default :data:`~daninet_pipeline.evaluation.measure.SYN_ITERATIONS`;
    the group level's node passes :data:`~daninet_pipeline.evaluation.measure.QUICK_SYN_ITERATIONS`),
    said in the table; ``syn_voxel_mm``: the coarsest grid TBM registers on (default: the
    images' own; the group level's node passes
    :data:`~daninet_pipeline.evaluation.measure.QUICK_SYN_VOXEL_MM`). ``transfer=False``: the models are scored without their configured
    transfer step (the group level's node, to keep ``make demo`` short), said in the table."""
    from ..evaluation.baselines import PopulationMean
    from ..evaluation.evaluate import ModelPredictor, evaluate_pairs, followup_pairs, ground_truth_volumes
    from ..evaluation.report import measurement_note, nothing_to_evaluate_line, write_evaluation

    truth = ground_truth_volumes(bids_dir) if bids_dir is not None else None
    pairs = followup_pairs(sessions, split, truth=truth)
    if not pairs:  # the model stays trained and written; the table says why it has no row
        line = nothing_to_evaluate_line(split.loc[split["split"] == "test", "subject"])
        LOG.info("%s", line)
        return write_evaluation(evaluate_pairs([]), out_dir, note=line)
    population_mean = PopulationMean.fit(sessions, split)
    models = [ModelPredictor(name, path, modes, transfer=transfer) for name, path in model_files.items()]
    rows = evaluate_pairs(pairs, population_mean=population_mean, models=models, measurements=measurements,
                          syn_iterations=syn_iterations, syn_voxel_mm=syn_voxel_mm)
    note = measurement_note(rows, syn_iterations, syn_voxel_mm)
    skipped = [m for m in models if m.configured_transfer_steps and not m.transfer_steps]
    if skipped:
        note += (" The model rows are scored **without** the model's transfer step ("
                 + ", ".join(f"`{m.name}`: {m.configured_transfer_steps} steps configured" for m in skipped)
                 + "): the group level's quick evaluation; the benchmark applies it.")
    return write_evaluation(rows, out_dir, note=note)


def trained_models(output_dir) -> dict[str, tuple[Path, Path]]:
    """Every trained model under ``OUTPUT_DIR/models``: name -> (model file, split TSV)."""
    out = {}
    for model in sorted(Path(output_dir).glob("models/*/model.pt")):
        split = model.parent / "split.tsv"
        if split.is_file():
            out[model.parent.name] = (model, split)
    return out


def evaluate_trained_models(bids_dir, output_dir, table: pd.DataFrame, *, names=None) -> tuple[Path, Path]:
    """Score every trained model of ``OUTPUT_DIR/models`` (or those in ``names``) on their
    common test split beside ``identity``, on the sessions of ``table`` (the CLI's
    selection); write ``OUTPUT_DIR/models/group_eval.{tsv,md}``.

    The models must share their test subjects (the same data and split seed), otherwise
    the rows would not be comparable: :class:`BIDSInputError`.
    """
    models = trained_models(output_dir)
    if names:
        unknown = sorted(set(names) - set(models))
        if unknown:
            raise BIDSInputError(f"no trained model {', '.join(unknown)} in {Path(output_dir) / 'models'} "
                                 f"(found: {', '.join(models) or 'none'})")
        models = {k: v for k, v in models.items() if k in names}
    if not models:
        raise BIDSInputError(f"no trained model (models/*/model.pt with split.tsv) in {output_dir}: "
                             "run the group level first")
    splits = {name: pd.read_csv(split, sep="\t", dtype={"subject": str}) for name, (_, split) in models.items()}
    tests = {name: frozenset(t.loc[t["split"] == "test", "subject"]) for name, t in splits.items()}
    if len(set(tests.values())) > 1:
        raise BIDSInputError("the models were tested on different subjects (" + "; ".join(
            f"{k}: {len(v)}" for k, v in tests.items()) + "): train them on the same data with the same --seed")
    sessions, missing = attach_derivatives(table, output_dir)
    test = next(iter(tests.values()))
    lacking = sorted(test & set(missing))
    if lacking:
        raise BIDSInputError(f"test subject sub-{lacking[0]} has no participant-level derivatives")
    split = next(iter(splits.values()))
    return evaluate_models({k: v[0] for k, v in models.items()}, sessions, split,
                           Path(output_dir) / "models", bids_dir)
