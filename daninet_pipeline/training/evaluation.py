"""The group level's evaluation, as plain functions: trained models' simulations of the
test subjects beside identity, scored against the real follow-ups (and the demo data's
true volumes), and several trained models side by side (``group --evaluate``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BIDSInputError
from .sessions import attach_derivatives, test_followups

LOG = logging.getLogger("daninet.group")


def ground_truth_volumes(bids_dir) -> pd.DataFrame | None:
    """True regional volumes of the demo dataset: rows (subject, session), one column per
    region (template space, mm^3). Read from ``derivatives/ground_truth/regional_volumes.tsv``;
    None for a dataset without it."""
    path = Path(bids_dir) / "derivatives" / "ground_truth" / "regional_volumes.tsv"
    if not path.is_file():
        return None
    vols = pd.read_csv(path, sep="\t")
    vols["subject"] = vols["participant_id"].str[4:]
    vols["session"] = vols["session_id"].str[4:]
    return vols.pivot_table(index=["subject", "session"], columns="region", values="volume_template_mm3")


def evaluate_test_split(model_file, sessions: pd.DataFrame, split: pd.DataFrame, out_dir,
                        bids_dir=None, *, method: str = "daninet") -> tuple[Path, Path]:
    """Simulate each test subject's baseline at its follow-up ages and score it beside
    the identity answer; write ``group_eval.tsv`` and ``group_eval.md`` in ``out_dir``."""
    return evaluate_models({method: model_file}, sessions, split, out_dir, bids_dir)


#: simulation modes scored by the evaluation, with the suffix of their method name:
#: ``direct`` is the generator's image (the paper's answer), ``change`` the real baseline
#: plus the generated change from the baseline's own age (see ``Simulator.simulate``).
EVAL_MODES = {"direct": "", "change": "-change"}


def evaluate_models(model_files: dict, sessions: pd.DataFrame, split: pd.DataFrame, out_dir,
                    bids_dir=None, *, modes=tuple(EVAL_MODES)) -> tuple[Path, Path]:
    """:func:`evaluate_test_split` for several models at once, on the same test follow-ups:
    one row per method, ``identity`` and, for each name -> model file of ``model_files``
    and each of ``modes``, ``name`` (direct) or ``name-change``."""
    from ..evaluation.evaluate import FollowUp, evaluate_followups, write_evaluation
    from ..model.simulate import Simulator

    pairs = test_followups(sessions, split)
    if not pairs:
        raise BIDSInputError("the test split has no subject with a follow-up session")
    sims = {name: Simulator.load(path) for name, path in model_files.items()}
    truth = ground_truth_volumes(bids_dir) if bids_dir is not None else None
    followups = []
    for p in pairs:
        preds = {name + EVAL_MODES[mode]: np.asarray(sim.simulate(
                     p["baseline"], p["baseline_age"], p["diagnosis"], [p["followup_age"]], mode=mode)[0].dataobj,
                     np.float32)
                 for name, sim in sims.items() for mode in modes}
        change = None
        if truth is not None:
            a = truth.loc[(p["subject"], p["baseline_session"])]
            b = truth.loc[(p["subject"], p["followup_session"])]
            change = (b / a - 1.0).to_dict()
        followups.append(FollowUp(p["subject"], p["baseline_session"], p["followup_session"],
                                  p["followup_age"] - p["baseline_age"], p["baseline"], p["followup"],
                                  p["mask"], predictions=preds, true_change=change))
        LOG.info("evaluated sub-%s ses-%s -> ses-%s", p["subject"], p["baseline_session"],
                 p["followup_session"])
    return write_evaluation(evaluate_followups(followups), out_dir)


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
