"""Predictions against real follow-ups, always beside the identity answer.

For every test subject and follow-up, each method's prediction of the follow-up (made
from the baseline) is scored against the real follow-up scan: SSIM, PSNR and MAE inside
the follow-up's brain mask, and the error in regional volume change. ``identity`` (the
baseline copied forward, which predicts no change) is always scored too. Results are
summarised by years ahead: < 1, 1-3, >= 3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..regions import REGION_GROUPS
from ..data.resources import atlas_labels_on_grid
from .metrics import (
    data_range_of,
    mae_in_mask,
    psnr_in_mask,
    regional_tissue_volumes,
    ssim_in_mask,
    volume_change_error,
)

HORIZONS = (("<1", 0.0, 1.0), ("1-3", 1.0, 3.0), (">=3", 3.0, np.inf))
IDENTITY = "identity"
METRICS = ("ssim", "psnr", "mae", "volume_change_error")


def horizon_of(years: float) -> str:
    """'<1', '1-3' or '>=3' for a time ahead in years."""
    for name, lo, hi in HORIZONS:
        if lo <= years < hi:
            return name
    raise ValueError(f"years ahead must be >= 0, got {years}")


@dataclass
class FollowUp:
    """One baseline/follow-up pair of a test subject, on the template grid."""

    subject: str
    baseline_session: str
    followup_session: str
    years_ahead: float
    baseline: str | Path  # preprocessed baseline T1w
    followup: str | Path  # preprocessed real follow-up T1w
    mask: str | Path  # brain mask of the follow-up
    predictions: dict[str, str | Path | np.ndarray] = field(default_factory=dict)
    true_change: dict[str, float] | None = None  # per region; None: measured on the scans


def _array(image) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return image.astype(np.float32, copy=False)
    return np.asarray(nib.load(image).dataobj, dtype=np.float32)


def atlas_regions(shape, affine) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Neuromorphometrics labels on a grid and the evaluation regions (name -> label ids)."""
    labels, table = atlas_labels_on_grid(shape, affine)
    ids = dict(zip(table["name"], table["index"]))
    regions = {name: [int(ids[n]) for n in members if n in ids]
               for name, members in REGION_GROUPS.items()}
    return labels, regions


def evaluate_followups(pairs: list[FollowUp]) -> pd.DataFrame:
    """One row per (pair, method): ssim, psnr, mae, volume_change_error (mean over regions).

    The SSIM/PSNR data range is the real follow-up's intensity range inside its mask,
    reported in the ``data_range`` column.
    """
    rows = []
    regions_cache: dict[tuple, tuple] = {}
    for pair in pairs:
        ref_img = nib.load(pair.followup)
        real = _array(pair.followup)
        base = _array(pair.baseline)
        mask = _array(pair.mask) > 0.5
        key = (real.shape, tuple(np.round(ref_img.affine, 4).ravel()))
        if key not in regions_cache:
            regions_cache[key] = atlas_regions(real.shape, ref_img.affine)
        labels, regions = regions_cache[key]
        voxel = float(np.prod(ref_img.header.get_zooms()[:3]))
        vol_base = regional_tissue_volumes(base, labels, regions, voxel)
        if pair.true_change is not None:
            truth = {k: v for k, v in pair.true_change.items() if k in regions}
        else:
            vol_real = regional_tissue_volumes(real, labels, regions, voxel)
            truth = {k: vol_real[k] / vol_base[k] - 1.0 for k in regions if vol_base[k] > 0}
        data_range = data_range_of(real, mask)
        for method, pred in {IDENTITY: base, **pair.predictions}.items():
            pred = _array(pred)
            errors = volume_change_error(vol_base, regional_tissue_volumes(pred, labels, regions, voxel), truth)
            rows.append({
                "subject": pair.subject, "baseline_session": pair.baseline_session,
                "followup_session": pair.followup_session,
                "years_ahead": round(pair.years_ahead, 3), "horizon": horizon_of(pair.years_ahead),
                "method": method, "ssim": ssim_in_mask(pred, real, mask, data_range),
                "psnr": psnr_in_mask(pred, real, mask, data_range),
                "mae": mae_in_mask(pred, real, mask),
                "volume_change_error": float(np.mean(list(errors.values()))) if errors else np.nan,
                "data_range": data_range,
            })
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric by method and horizon, with the number of follow-ups."""
    order = {name: k for k, (name, _, _) in enumerate(HORIZONS)}
    summary = (results.groupby(["method", "horizon"])[list(METRICS)].mean()
               .join(results.groupby(["method", "horizon"]).size().rename("n")).reset_index())
    summary["_h"] = summary["horizon"].map(order)
    summary["_m"] = (summary["method"] != IDENTITY).astype(int)
    return summary.sort_values(["_h", "_m", "method"]).drop(columns=["_h", "_m"]).reset_index(drop=True)


def to_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table, identity first within each horizon."""
    lines = ["| years ahead | method | n | SSIM | PSNR (dB) | MAE | volume change error |",
             "|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        lines.append(f"| {r['horizon']} | {r['method']} | {int(r['n'])} | {r['ssim']:.4f} | "
                     f"{r['psnr']:.2f} | {r['mae']:.4f} | {r['volume_change_error']:.4f} |")
    return "\n".join(lines) + "\n"


def against_identity(summary: pd.DataFrame) -> str:
    """Per method and horizon: does it beat ``identity`` on volume change error (lower)
    and on SSIM (higher)? A Markdown list."""
    lines = []
    ident = summary[summary["method"] == IDENTITY].set_index("horizon")
    for _, r in summary[summary["method"] != IDENTITY].iterrows():
        if r["horizon"] not in ident.index:
            continue
        i = ident.loc[r["horizon"]]
        vol = "beats" if r["volume_change_error"] < i["volume_change_error"] else "does not beat"
        ssim = "beats" if r["ssim"] > i["ssim"] else "does not beat"
        lines.append(f"- {r['method']}, {r['horizon']} years: {vol} identity on volume change error "
                     f"({r['volume_change_error']:.4f} vs {i['volume_change_error']:.4f}); {ssim} it on "
                     f"SSIM ({r['ssim']:.4f} vs {i['ssim']:.4f})")
    return "\n".join(lines) + ("\n" if lines else "")


def write_evaluation(results: pd.DataFrame, out_dir) -> tuple[Path, Path]:
    """``group_eval.tsv`` (every row) and ``group_eval.md`` (the summary) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tsv, md = out_dir / "group_eval.tsv", out_dir / "group_eval.md"
    results.to_csv(tsv, sep="\t", index=False, float_format="%.6g")
    md.write_text("# Evaluation on the test split\n\nMeans per follow-up; SSIM and PSNR inside "
                  "the follow-up's brain mask with the data range of the real follow-up; "
                  "volume change error = |predicted - true fractional change|, mean over "
                  "regions. `identity` copies the baseline forward; a model's own row is its generated "
                  "image (the paper's answer), its `-change` row the real baseline plus the change "
                  "the model generates from the baseline's age to the follow-up's.\n\n"
                  + to_markdown(summarise(results)) + "\n" + against_identity(summarise(results)))
    return tsv, md
