"""``OUTPUT_DIR/sub-<label>.html``: one subject's report, written by the participant level
and written again (updated) by the simulation.

The report is made from what the derivatives folder holds, so whichever level writes it
shows everything done so far:

- every session's pre-processing QC figure (``sub-X/[ses-Y/]figures/*.svg``: the brain
  mask's outline and the template's edges over the pre-processed image);
- the per-step times and the errors of the subject's last participant-level run
  (``logs/sub-X_steps.tsv``, which that run writes with :func:`write_steps`);
- the simulated images (``*_space-*_desc-sim*_T1w.nii.gz`` and their sidecars): for each
  model and baseline, the baseline, each simulated age and, where the subject has a real
  scan at that age (``sessions``), the real one, with difference maps, and the simulated
  ages as a strip;
- for a test subject of a trained model whose evaluation has run
  (``OUTPUT_DIR/models/<config>/group_eval.tsv``), its regional volumes against age: the
  real scans and each follow-up as identity, population-mean and the model (``change``
  mode) predicted it from the scan before it.

The file is self-contained: figures are embedded (``data:`` URIs).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

#: columns of ``logs/sub-X_steps.tsv``
STEP_COLUMNS = ["session", "step", "status", "seconds", "detail"]


def steps_file(output_dir, subject: str) -> Path:
    """``OUTPUT_DIR/logs/sub-<subject>_steps.tsv``."""
    return Path(output_dir) / "logs" / f"sub-{subject}_steps.tsv"


def write_steps(output_dir, subject: str, rows: list[dict]) -> Path:
    """Write the subject's step records (dicts with :data:`STEP_COLUMNS`) of this run."""
    path = steps_file(output_dir, subject)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=STEP_COLUMNS).to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


def _svg_img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/svg+xml;base64,{data}">'


def _qc_section(output_dir: Path, subject: str) -> list[str]:
    figures = sorted((output_dir / f"sub-{subject}").glob("**/figures/*.svg"))
    body = ["<h2>Pre-processing</h2>"]
    if not figures:
        return body + ["<p>No pre-processing figure yet.</p>"]
    body.append("<p>Brain mask outline (red) and the template's edges (cyan) over each "
                "pre-processed T1w on the template grid.</p>")
    for fig in figures:
        body += [f"<h3>{html.escape(fig.name.split('_space-')[0])}</h3>", _svg_img(fig)]
    return body


def _steps_section(output_dir: Path, subject: str) -> list[str]:
    from .progression import _table

    path = steps_file(output_dir, subject)
    if not path.is_file():
        return []
    steps = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    body = []
    failed = steps[steps["status"] == "failed"]
    if not failed.empty:
        body += ["<h2>Errors</h2>", "<ul class='errors'>"]
        body += [f"<li><b>{html.escape(r.session)}</b> {html.escape(r.step)}: {html.escape(r.detail)}</li>"
                 for r in failed.itertuples(index=False)]
        body.append("</ul>")
    seconds = pd.to_numeric(steps["seconds"], errors="coerce")
    table = steps.assign(seconds=seconds.round(2)).drop(columns=["detail"])
    body += ["<h2>Steps of the last participant-level run</h2>",
             f"<p>{int((steps['status'] == 'done').sum())} steps run "
             f"({seconds.sum():.1f} s in all), {int((steps['status'] == 'cached').sum())} taken from the "
             f"work folder's cache, {len(failed)} failed.</p>", _table(table.fillna("n/a"))]
    return body


def simulated_images(output_dir, subject: str) -> pd.DataFrame:
    """The subject's simulated images on the template grid, from their sidecars: columns
    ``file``, ``model``, ``baseline`` (the pre-processed T1w simulated from), ``source_age``,
    ``age``, ``diagnosis``."""
    rows = []
    root = Path(output_dir)
    for path in sorted((root / f"sub-{subject}").glob("**/anat/*_space-*_desc-sim*_T1w.nii.gz")):
        side = path.with_name(path.name.replace(".nii.gz", ".json"))
        if not side.is_file():
            continue
        meta = json.loads(side.read_text())
        source = next((s[len("bids::"):] for s in meta.get("Sources", []) if s.startswith("bids::")), None)
        rows.append({"file": str(path), "model": meta.get("Model", {}).get("Name", "?"),
                     "baseline": str(root / source) if source else "",
                     "source_age": float(meta.get("SourceAge", float("nan"))),
                     "age": float(meta.get("SimulatedAge", float("nan"))),
                     "diagnosis": meta.get("SimulatedDiagnosis", "")})
    return pd.DataFrame(rows, columns=["file", "model", "baseline", "source_age", "age", "diagnosis"])


def _simulation_section(output_dir: Path, subject: str, sessions: pd.DataFrame | None) -> list[str]:
    import nibabel as nib
    import numpy as np

    from .progression import _png, subject_figure, trajectory_figure

    sims = simulated_images(output_dir, subject)
    if sims.empty:
        return []
    body = ["<h2>Simulated images</h2>",
            "<p class='synthetic'>Images marked <i>simulated</i> are synthetic, made by the DaniNet "
            "model from the baseline scan; they are not acquisitions.</p>"]
    for (model, baseline, diagnosis), group in sims.groupby(["model", "baseline", "diagnosis"], sort=True):
        if not Path(baseline).is_file():
            continue
        group = group.sort_values("age")
        base = np.asarray(nib.load(baseline).dataobj, np.float32)
        images = [np.asarray(nib.load(f).dataobj, np.float32) for f in group["file"]]
        ages = [float(a) for a in group["age"]]
        reals = {}
        if sessions is not None and not sessions.empty:
            mine = sessions[(sessions["subject"] == subject) & (sessions["preproc"].astype(str) != "")]
            for age in ages:
                near = mine[(mine["age"].astype(float) - age).abs() < 0.05]
                if not near.empty and Path(near["preproc"].iloc[0]).is_file():
                    reals[age] = np.asarray(nib.load(near["preproc"].iloc[0]).dataobj, np.float32)
        body += [f"<h3>Model {html.escape(str(model))}, diagnosis {html.escape(str(diagnosis))}, from "
                 f"{html.escape(Path(baseline).name)} (age {group['source_age'].iloc[0]:.1f})</h3>",
                 _png(subject_figure(base, images, ages, reals, float(group["source_age"].iloc[0])))]
        if len(ages) > 1:
            body += ["<p>The simulated ages as a strip.</p>", _png(trajectory_figure(base, images, ages))]
    return body


#: baselines drawn beside the models' ``change`` rows in the regional trajectories
TRAJECTORY_BASELINES = ("identity", "population-mean")


def _evaluation_section(output_dir: Path, subject: str) -> list[str]:
    evaluations = sorted(output_dir.glob("models/*/group_eval.tsv"))
    if not evaluations:
        return []
    from ..evaluation.baselines import IDENTITY, LINEAR, ORACLE, POPULATION_MEAN
    from ..evaluation.evaluate import EVAL_MODES
    from ..evaluation.report import read_rows
    from .progression import _png, regional_trajectories, regional_trajectory_figure

    baselines = {IDENTITY, LINEAR, ORACLE, POPULATION_MEAN}
    body = []
    for eval_tsv in evaluations:
        rows = read_rows(eval_tsv)
        traj = regional_trajectories(rows, subject)
        if traj.empty:
            continue
        models = [m for m in dict.fromkeys(traj["method"])
                  if m not in baselines and m != "real" and m.endswith(EVAL_MODES["change"])]
        body += [f"<h2>Regional volumes against age (model {html.escape(eval_tsv.parent.name)})</h2>"
                 "<p>Real scans (points, the true change chained from the first scan) and each method's "
                 "prediction of each follow-up from the scan before it, measured by TBM; 1 = the first "
                 "scan's volume.</p>",
                 _png(regional_trajectory_figure(traj, methods=(*TRAJECTORY_BASELINES, *models)))]
    return body


def write_subject_report(output_dir, subject: str, *, sessions: pd.DataFrame | None = None,
                         out_file=None) -> Path:
    """Write ``OUTPUT_DIR/sub-<subject>.html`` (see the module); ``sessions``: the subject's
    sessions with ``age`` and ``preproc`` (real follow-ups beside the simulated ones)."""
    from .progression import _page

    output_dir = Path(output_dir)
    body = (_qc_section(output_dir, subject) + _steps_section(output_dir, subject)
            + _simulation_section(output_dir, subject, sessions) + _evaluation_section(output_dir, subject))
    out = Path(out_file) if out_file else output_dir / f"sub-{subject}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    import uuid

    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}")
    tmp.write_text(_page(f"DaniNet report: sub-{subject}", body))
    tmp.replace(out)
    return out
