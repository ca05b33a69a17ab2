"""Group level, as plain functions: gather derivatives, split, build the slice store,
train, evaluate on the test split, write the model card.

The Nipype interfaces in :mod:`daninet_pipeline.interfaces.group` wrap these; the
workflow :func:`daninet_pipeline.workflows.group.init_group_wf` chains them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from . import __version__
from .bids import impute_missing_diagnoses, load_sessions
from .data.resources import DEFAULT_TEMPLATE
from .errors import BIDSInputError

LOG = logging.getLogger("daninet.group")

SESSION_COLUMNS = ["subject", "session", "age", "diagnosis", "t1w", "preproc", "mask"]


def attach_derivatives(table: pd.DataFrame, output_dir,
                       template: str = DEFAULT_TEMPLATE) -> tuple[pd.DataFrame, list[str]]:
    """The selected T1w images (:func:`~daninet_pipeline.bids.load_sessions`' table) with
    their participant-level derivatives, named by :mod:`daninet_pipeline.bids.naming`.

    Returns the table (columns :data:`SESSION_COLUMNS`, one row per T1w; ``preproc`` and
    ``mask`` are empty where a derivative is missing) and the subjects that lack at least
    one derivative. Reads no dataset: the selection is the caller's.
    """
    from .bids.naming import derivative_path

    rows, missing = [], set()
    for rec in table.itertuples(index=False):
        session = rec.session if isinstance(rec.session, str) else None
        preproc = derivative_path(output_dir, rec.t1w, "preproc", template=template)
        mask = derivative_path(output_dir, rec.t1w, "mask_std", template=template)
        ok = preproc.is_file() and mask.is_file()
        if not ok:
            missing.add(rec.subject)
        rows.append({"subject": rec.subject, "session": session, "age": rec.age,
                     "diagnosis": rec.diagnosis if isinstance(rec.diagnosis, str) else None,
                     "t1w": rec.t1w, "preproc": str(preproc) if ok else "",
                     "mask": str(mask) if ok else ""})
    return pd.DataFrame(rows, columns=SESSION_COLUMNS), sorted(missing)


def gather_sessions(bids_dir, output_dir, *, participant_label=None, session_label=None,
                    bids_filter=None, database_dir=None,
                    template: str = DEFAULT_TEMPLATE) -> tuple[pd.DataFrame, list[str]]:
    """:func:`~daninet_pipeline.bids.load_sessions` then :func:`attach_derivatives`: for
    scripts and embedding workflows (the CLI reads the dataset once and calls
    :func:`attach_derivatives` on its selection)."""
    table = load_sessions(bids_dir, participant_label=participant_label, session_label=session_label,
                          bids_filter=bids_filter, database_dir=database_dir)
    return attach_derivatives(table, output_dir, template)


def has_longitudinal_pairs(table: pd.DataFrame) -> bool:
    """Whether some subject has two sessions or more (pairs for the regional constraint
    and follow-ups for the evaluation)."""
    sessions = table.assign(session=table["session"].fillna("")).groupby("subject")["session"].nunique()
    return bool((sessions >= 2).any())


def training_records(sessions: pd.DataFrame, split: pd.DataFrame, splits=("train",)) -> list[dict]:
    """Slice-store records (image, subject, session, age, diagnosis) of the chosen splits.

    Sessions without a diagnosis take their neighbours' when they agree, or are left
    out (:func:`~daninet_pipeline.bids.impute_missing_diagnoses`).
    """
    chosen = set(split.loc[split["split"].isin(splits), "subject"])
    table = sessions[sessions["subject"].isin(chosen)]
    if (table["preproc"] == "").any():
        lacking = sorted(table.loc[table["preproc"] == "", "subject"].unique())
        raise BIDSInputError(f"no pre-processed T1w for sub-{', sub-'.join(lacking)}: run the "
                             "participant level first")
    table = impute_missing_diagnoses(table)
    return [{"image": r.preproc, "subject": r.subject, "session": r.session or "",
             "age": float(r.age), "diagnosis": r.diagnosis} for r in table.itertuples(index=False)]


def evaluate_test_split(model_file, sessions: pd.DataFrame, split: pd.DataFrame, out_dir,
                        bids_dir=None, *, method: str = "daninet", measurements=("tbm",),
                        syn_iterations=None, transfer: bool = True) -> tuple[Path, Path]:
    """Predict each test follow-up from the last scan before it with the model and the
    baselines, and score them (:mod:`daninet_pipeline.evaluation`); write
    ``group_eval.tsv`` and ``group_eval.md`` in ``out_dir``."""
    return evaluate_models({method: model_file}, sessions, split, out_dir, bids_dir, measurements=measurements,
                           syn_iterations=syn_iterations, transfer=transfer)


def evaluate_models(model_files: dict, sessions: pd.DataFrame, split: pd.DataFrame, out_dir,
                    bids_dir=None, *, modes=("direct", "change"), measurements=("tbm",),
                    syn_iterations=None, transfer: bool = True) -> tuple[Path, Path]:
    """:func:`evaluate_test_split` for several models at once, on the same test follow-ups:
    rows ``oracle``, ``identity``, ``population-mean`` (learned on the training split),
    ``linear`` (where two scans or more precede the start) and, for each name -> model
    file of ``model_files`` and each of ``modes``, ``name`` (direct) or ``name-change``.
    ``measurements``: ``tbm`` and/or ``atropos`` (the group level uses TBM only, to keep
    ``make demo`` short; the benchmark uses both). ``syn_iterations``: TBM's SyN
    iterations per level (default :data:`~daninet_pipeline.evaluation.measure.SYN_ITERATIONS`;
    the group level's node passes :data:`~daninet_pipeline.evaluation.measure.QUICK_SYN_ITERATIONS`),
    said in the table. ``transfer=False``: the models are scored without their configured
    transfer step (the group level's node, to keep ``make demo`` short), said in the table."""
    from .evaluation.baselines import PopulationMean
    from .evaluation.evaluate import ModelPredictor, evaluate_pairs, followup_pairs, ground_truth_volumes
    from .evaluation.report import measurement_note, write_evaluation

    truth = ground_truth_volumes(bids_dir) if bids_dir is not None else None
    pairs = followup_pairs(sessions, split, truth=truth)
    if not pairs:
        raise BIDSInputError("the test split has no subject with a follow-up session")
    population_mean = PopulationMean.fit(sessions, split)
    models = [ModelPredictor(name, path, modes, transfer=transfer) for name, path in model_files.items()]
    rows = evaluate_pairs(pairs, population_mean=population_mean, models=models, measurements=measurements,
                          syn_iterations=syn_iterations)
    note = measurement_note(rows, syn_iterations)
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


def write_model_card(model_file, split: pd.DataFrame, config_name: str, out_path,
                     evaluation_md=None) -> Path:
    """A Markdown model card: data, configuration, steps, final losses, validation scores."""
    from .model.modelfile import load_model_file

    state = load_model_file(model_file)
    cfg = state.get("config", {})
    training = state.get("training") or {}
    counts = split.groupby("split")["subject"].nunique().to_dict()
    sessions = split.groupby("split")["sessions"].sum().to_dict()
    lines = [
        f"# DaniNet model card: {Path(str(config_name)).stem}",
        "",
        f"- model file: `{Path(model_file).name}` (daninet_pipeline {state.get('package_version', '?')}, "
        f"written by {__version__})",
        f"- configuration: `{config_name}` (saved inside the model file; every field below)",
        f"- training steps: {training.get('steps', cfg.get('steps'))}, processes: {training.get('processes', 1)}, "
        f"seconds: {training.get('seconds_this_run', float('nan')):.0f}",
        f"- data: {training.get('n_volumes', '?')} volumes of {training.get('n_subjects', '?')} subjects, "
        f"{training.get('n_slices', '?')} slices; ages {training.get('age_min', float('nan')):.1f}-"
        f"{training.get('age_max', float('nan')):.1f}; diagnoses {training.get('diagnoses', {})}",
        "- split (subjects / sessions): " + ", ".join(
            f"{k} {counts.get(k, 0)} / {sessions.get(k, 0)}" for k in ("train", "validation", "test")),
        "",
        "## Final losses (mean of the last 20 steps)",
        "",
        "| term | value |",
        "|---|---|",
    ]
    for k, v in (training.get("final_losses") or {}).items():
        lines.append(f"| {k} | {v:.5g} |")
    if training.get("regional_cv_error"):
        lines += ["", f"## Regional model ({training.get('regional_model')}): cross-validated error", "",
                  "Mean absolute error of each region's predicted intensity ratio on held-out training "
                  "subjects (grouped K-fold), per slice as L_reg measures it.", "",
                  "| region | CV MAE of the ratio |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in training["regional_cv_error"].items()]
    if evaluation_md is not None and Path(evaluation_md).is_file():
        lines += ["", Path(evaluation_md).read_text().replace("# Evaluation", "## Evaluation")]
    lines += ["", "## Configuration", "", "```json", json.dumps(cfg, indent=1), "```", ""]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(lines))
    return out_path
