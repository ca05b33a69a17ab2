"""The group level's last step: the model card, a Markdown summary of a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .. import __version__


def write_model_card(model_file, split: pd.DataFrame, config_name: str, out_path,
                     evaluation_md=None) -> Path:
    """A Markdown model card: data, configuration, steps, final losses, validation scores."""
    from ..model.modelfile import load_model_file

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
