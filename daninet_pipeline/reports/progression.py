"""The group report (training curves, regional model errors, evaluation, split,
configuration, and the QC table and excluded sessions when given), and the figures of
simulated images that the subject report (:mod:`daninet_pipeline.reports.subject`) shows:
baseline, simulated and real follow-ups side by side, difference maps, the simulated
ages as a strip, and a test subject's regional volumes against age with each method's
predictions (from the group level's evaluation, ``group_eval.tsv``).

Each report is one self-contained HTML file: figures are PNGs embedded as base64.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; color: #222; }
h1 { border-bottom: 2px solid #555; } h2 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #bbb; padding: 3px 8px; }
th { background: #eee; } .note { color: #555; font-size: 0.9em; } img { max-width: 100%; }
.synthetic { background: #fff3cd; padding: 0.5em; border: 1px solid #e0c060; }
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def save_figure(fig, path, *, dpi: int = 110) -> Path:
    """Write ``fig`` (a figure of this module) to ``path`` (PNG) and close it."""
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return Path(path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _page(title: str, body: list[str]) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            + "\n".join(body)
            + f"<p class='note'>daninet_pipeline {__version__}</p></body></html>\n")


def _table(frame: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, r in frame.iterrows():
        cells = "".join(f"<td>{floatfmt.format(v) if isinstance(v, float) else html.escape(str(v))}</td>"
                        for v in r)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def loss_figure(losses: pd.DataFrame):
    """Every logged loss against the training step (log scale where positive)."""
    plt = _pyplot()
    cols = [c for c in losses.columns if c.startswith("loss_")]
    ncols = min(5, len(cols))
    nrows = -(-len(cols) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    for ax in axes.ravel()[len(cols):]:
        ax.set_axis_off()
    for ax, col in zip(axes.ravel(), cols):
        ax.plot(losses["step"], losses[col], lw=1)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if (losses[col] > 0).all():
            ax.set_yscale("log")
    fig.tight_layout()
    return fig


def write_group_report(model_dir, out_file=None, *, qc: pd.DataFrame | None = None,
                       excluded: pd.DataFrame | None = None) -> Path:
    """``model_dir/report.html``: training curves, the regional model's errors, the
    evaluation table, the subject split and the configuration.

    ``qc``: a table of every session's quality figures (one row per session; shown as
    given, rows with a true ``outlier`` column first); ``excluded``: the sessions left
    out of training and evaluation (``subject``, ``session``, ``reason``). Both are
    optional: the report has their sections only when they are given.
    """
    from ..model.modelfile import load_model_file

    model_dir = Path(model_dir)
    state = load_model_file(model_dir / "model.pt")
    training = state.get("training") or {}
    body = [f"<p>Model <code>{html.escape(str(model_dir / 'model.pt'))}</code>, "
            f"{training.get('steps', '?')} steps on {training.get('n_volumes', '?')} volumes of "
            f"{training.get('n_subjects', '?')} subjects.</p>"]
    losses_path = model_dir / "losses.tsv"
    if losses_path.is_file():
        body += ["<h2>Training curves</h2>", _png(loss_figure(pd.read_csv(losses_path, sep="\t")))]
    if training.get("regional_cv_error"):
        errors = pd.DataFrame(sorted(training["regional_cv_error"].items()), columns=["region", "CV MAE of the ratio"])
        body += [f"<h2>Regional model ({html.escape(str(training.get('regional_model')))})</h2><p>Cross-validated "
                 "mean absolute error of the predicted regional intensity ratio between two scans of a held-out "
                 "subject.</p>", _table(errors)]
    eval_path = model_dir / "group_eval.tsv"
    if eval_path.is_file():
        from ..evaluation.report import NOTHING_TO_EVALUATE, summarise

        rows = pd.read_csv(eval_path, sep="\t")
        if rows.empty:  # no test follow-up: the table's one line says why
            md = model_dir / "group_eval.md"
            said = [line for line in (md.read_text().splitlines() if md.is_file() else [])
                    if line.startswith(NOTHING_TO_EVALUATE)]
            body += ["<h2>Evaluation on the test split</h2>",
                     f"<p>{html.escape(said[0] if said else NOTHING_TO_EVALUATE + '.')}</p>"]
        else:
            body += ["<h2>Evaluation on the test split</h2><p>Means per follow-up; "
                     "each follow-up predicted from the last scan before it; <b>identity</b> copies that scan "
                     "forward.</p>", _table(summarise(rows))]
    split_path = model_dir / "split.tsv"
    if split_path.is_file():
        split = pd.read_csv(split_path, sep="\t")
        body += ["<h2>Subject split</h2>", _table(split.groupby("split").agg(
            subjects=("subject", "size"), sessions=("sessions", "sum")).reset_index())]
    if excluded is not None:
        body += ["<h2>Excluded sessions</h2>",
                 _table(excluded) if len(excluded) else "<p>No session was excluded.</p>"]
    if qc is not None:
        shown = qc
        if "outlier" in qc.columns:
            shown = qc.assign(_o=qc["outlier"].astype(bool)).sort_values("_o", ascending=False,
                                                                         kind="stable").drop(columns="_o")
        body += ["<h2>Quality control of every session</h2>", _table(shown)]
    body += ["<h2>Configuration</h2><pre>" + html.escape(json.dumps(state.get("config", {}), indent=1))
             + "</pre>"]
    out = Path(out_file) if out_file else model_dir / "report.html"
    out.write_text(_page(f"DaniNet group report: {model_dir.name}", body))
    return out


def _axial(volume: np.ndarray, k: int | None = None) -> np.ndarray:
    k = volume.shape[2] // 2 if k is None else k
    return np.rot90(volume[:, :, k])


def subject_figure(baseline, simulated: list, ages: list[float], followups: dict | None = None,
                   base_age: float | None = None):
    """Axial slices: baseline, each simulated age (and the real scan at that age, with the
    simulated-minus-real and simulated-minus-baseline difference maps)."""
    plt = _pyplot()
    base = np.asarray(baseline, np.float32)
    k = int(np.argmax((base > 0).sum(axis=(0, 1))))
    vmax = float(np.percentile(base[base > 0], 99.5)) if (base > 0).any() else 1.0
    rows = len(simulated)
    fig, axes = plt.subplots(rows, 4, figsize=(11, 2.9 * rows), squeeze=False)
    for r, (sim, age) in enumerate(zip(simulated, ages)):
        sim = np.asarray(sim, np.float32)
        real = (followups or {}).get(age)
        panels = [(base, f"baseline {base_age:.1f} y" if base_age is not None else "baseline", "gray", 0, vmax),
                  (sim, f"simulated {age:.1f} y", "gray", 0, vmax),
                  (sim - base, "simulated - baseline", "RdBu_r", -0.3, 0.3)]
        if real is not None:
            panels.append((sim - np.asarray(real, np.float32), "simulated - real", "RdBu_r", -0.3, 0.3))
        for c in range(4):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < len(panels):
                data, title, cmap, lo, hi = panels[c]
                ax.imshow(_axial(data, k), cmap=cmap, vmin=lo, vmax=hi)
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def trajectory_figure(baseline, trajectory: list, ages: list[float]):
    """The simulated trajectory as a strip of axial slices over ages."""
    plt = _pyplot()
    base = np.asarray(baseline, np.float32)
    k = int(np.argmax((base > 0).sum(axis=(0, 1))))
    vmax = float(np.percentile(base[base > 0], 99.5)) if (base > 0).any() else 1.0
    fig, axes = plt.subplots(1, len(trajectory), figsize=(2.2 * len(trajectory), 2.6), squeeze=False)
    for ax, vol, age in zip(axes[0], trajectory, ages):
        ax.imshow(_axial(np.asarray(vol, np.float32), k), cmap="gray", vmin=0, vmax=vmax)
        ax.set_title(f"{age:.0f} y", fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def regional_trajectories(rows: pd.DataFrame, subject: str, *, measurement: str = "tbm") -> pd.DataFrame:
    """A test subject's regional volumes against age, relative to its first scan, from
    the evaluation's rows (``group_eval.tsv``): ``real`` (the true changes chained along
    its scans) and, for each method, its prediction of each follow-up from the scan
    before it (the real volume at the start times 1 + the predicted change).
    Columns: ``region``, ``method``, ``age``, ``volume`` (1 = the first scan)."""
    sel = rows[(rows["subject"].astype(str) == str(subject)) & (rows["measurement"] == measurement)]
    if sel.empty:
        return pd.DataFrame(columns=["region", "method", "age", "volume"])
    regions = [c[len("true_"):] for c in sel.columns if c.startswith("true_") and sel[c].notna().any()]
    pairs = sel.drop_duplicates(["start_session", "followup_session"]).sort_values("start_age")
    out = []
    for region in regions:
        real = 1.0
        out.append({"region": region, "method": "real", "age": float(pairs["start_age"].iloc[0]), "volume": 1.0})
        for _, pair in pairs.iterrows():
            age = float(pair["start_age"] + pair["years_ahead"])
            same = sel[(sel["start_session"] == pair["start_session"]) & (sel["followup_session"] == pair["followup_session"])]
            for _, r in same.iterrows():
                if r["method"] != "oracle" and np.isfinite(r.get(f"change_{region}", np.nan)):
                    out.append({"region": region, "method": r["method"], "age": age,
                                "volume": real * (1.0 + r[f"change_{region}"])})
            real *= 1.0 + pair[f"true_{region}"]
            out.append({"region": region, "method": "real", "age": age, "volume": real})
    return pd.DataFrame(out)


def regional_trajectory_figure(trajectories: pd.DataFrame, methods=("identity", "population-mean"),
                               regions=None, title: str = ""):
    """Each region's volume against age: the real scans as points, each method's
    predictions as lines (one panel per region)."""
    plt = _pyplot()
    regions = list(regions or dict.fromkeys(trajectories["region"]))
    ncol = min(4, len(regions))
    nrow = int(np.ceil(len(regions) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    styles = {"identity": dict(color="0.5", ls="--"), "population-mean": dict(color="tab:red"),
              "linear": dict(color="tab:green", ls=":")}
    for ax, region in zip(axes.ravel(), regions):
        t = trajectories[trajectories["region"] == region]
        real = t[t["method"] == "real"].sort_values("age")
        ax.plot(real["age"], real["volume"], "ko", ms=4, label="real scans")
        for method in methods:
            m = t[t["method"] == method].sort_values("age")
            if not m.empty:
                ax.plot(m["age"], m["volume"], marker=".", label=method, **styles.get(method, {}))
        ax.set_title(region, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(regions):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("volume / first scan", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(title or "Regional volume against age: each follow-up predicted from the scan before it",
                 fontsize=9)
    fig.tight_layout()
    return fig

