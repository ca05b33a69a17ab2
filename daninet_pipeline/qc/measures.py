"""Quality measures of one pre-processed T1w: plain functions on nibabel images.

:func:`session_qc` returns one row of numbers that the participant level writes into
each session's ``..._desc-qc_T1w.tsv`` (:data:`QC_MEASURES` says what each is), so that
a study of 10,000 sessions is checked by sorting one table
(:func:`daninet_pipeline.qc.table.flag_outliers`), not by reading 10,000 figures.

Tissue measures are taken on the template grid, inside the template's white matter
(WM) and grey matter (GM) where the packaged probability maps exceed
:data:`TISSUE_THRESHOLD`, and inside the session's own brain mask: the same voxels for
every session, so the numbers compare across sessions without a segmentation.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

#: name -> what it measures (the columns of a session's QC TSV, in order; ``_dice`` and
#: ``_corr`` near 1 are good, ``wm_cov`` and ``residual_bias`` small, ``snr``/``cnr`` large).
QC_MEASURES = {
    "brain_volume_ml": "brain mask volume in native space (mL)",
    "mask_dice": "Dice of the brain mask (template grid) with the template's brain mask",
    "template_corr": "Pearson correlation of the pre-processed T1w with the template, "
                     "inside the template's brain mask",
    "wm_cov": "coefficient of variation (std / mean) of the T1w in white matter",
    "residual_bias": "coefficient of variation of the mean white-matter intensity over "
                     "20 mm blocks (the slow, bias-like part of wm_cov)",
    "snr_wm": "white-matter signal-to-noise ratio: mean / std in white matter",
    "cnr": "grey/white contrast-to-noise ratio: (mean WM - mean GM) / "
           "sqrt(var WM + var GM)",
}

#: probability above which a template voxel counts as WM or GM
TISSUE_THRESHOLD = 0.9
#: edge of the blocks of :func:`block_cov` (mm)
BLOCK_MM = 20.0


def _bool(img) -> np.ndarray:
    return np.asarray(img.dataobj) > 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean arrays (1.0 when both are empty).

    >>> dice(np.array([1, 1, 0], bool), np.array([1, 0, 0], bool))
    0.6666666666666666
    """
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def block_cov(data: np.ndarray, mask: np.ndarray, zooms, *, block_mm: float = BLOCK_MM,
              min_voxels: int = 50) -> float:
    """Coefficient of variation of the mean of ``data`` over cubes of ``block_mm`` that
    hold at least ``min_voxels`` voxels of ``mask``: a smooth bias field moves these
    means, noise and thin anatomy mostly average out. NaN with fewer than 3 such cubes."""
    step = [max(1, int(round(block_mm / float(z)))) for z in zooms[:3]]
    idx = [np.arange(n) // s for n, s in zip(data.shape, step)]
    nblocks = [int(i[-1]) + 1 for i in idx]
    block = (idx[0][:, None, None] * nblocks[1] + idx[1][None, :, None]) * nblocks[2] \
        + idx[2][None, None, :]
    labels = block[mask]
    count = np.bincount(labels, minlength=int(np.prod(nblocks)))
    total = np.bincount(labels, weights=data[mask].astype(np.float64), minlength=count.size)
    keep = count >= min_voxels
    if keep.sum() < 3:
        return float("nan")
    means = total[keep] / count[keep]
    return float(means.std() / means.mean()) if means.mean() else float("nan")


def tissue_masks(template: nib.spatialimages.SpatialImage) -> tuple[np.ndarray, np.ndarray]:
    """WM and GM masks (probability > :data:`TISSUE_THRESHOLD`) on ``template``'s grid."""
    from ..data.resources import load_tissue_map
    from ..preprocessing.resampling import resample_affine

    out = []
    for kind in ("WM", "GM"):
        prob = load_tissue_map(kind)
        if prob.shape[:3] != template.shape[:3] or not np.allclose(prob.affine, template.affine):
            prob = resample_affine(prob, np.eye(4), template, order=1)  # both MNI space
        out.append(np.asarray(prob.dataobj) > TISSUE_THRESHOLD)
    return out[0], out[1]


def session_qc(preproc: nib.spatialimages.SpatialImage, mask_std: nib.spatialimages.SpatialImage,
               mask_native: nib.spatialimages.SpatialImage,
               template: nib.spatialimages.SpatialImage,
               template_mask: nib.spatialimages.SpatialImage) -> dict[str, float]:
    """The :data:`QC_MEASURES` of one session.

    ``preproc`` and ``mask_std`` lie on ``template``'s grid (the participant level's
    ``desc-preproc_T1w`` and ``space-<template>_desc-brain_mask``); ``mask_native`` is
    the brain mask on the raw T1w's grid (its volume is the brain volume).
    """
    for name, img in (("preproc", preproc), ("mask_std", mask_std), ("template_mask", template_mask)):
        if img.shape[:3] != template.shape[:3]:
            raise ValueError(f"{name} has shape {img.shape[:3]}, the template {template.shape[:3]}")
    data = np.asarray(preproc.dataobj, dtype=np.float32)
    brain, tbrain = _bool(mask_std), _bool(template_mask)
    native = _bool(mask_native)
    voxel_ml = abs(float(np.linalg.det(mask_native.affine[:3, :3]))) / 1000.0
    wm, gm = tissue_masks(template)
    wm, gm = wm & brain, gm & brain
    both = tbrain & np.isfinite(data)
    corr = float(np.corrcoef(data[both], np.asarray(template.dataobj, np.float32)[both])[0, 1]) \
        if both.sum() > 2 and data[both].std() > 0 else float("nan")

    def _stats(m):
        v = data[m].astype(np.float64)
        return (float(v.mean()), float(v.std())) if v.size > 1 else (float("nan"), float("nan"))

    (mw, sw), (mg, sg) = _stats(wm), _stats(gm)
    return {
        "brain_volume_ml": float(native.sum()) * voxel_ml,
        "mask_dice": dice(brain, tbrain),
        "template_corr": corr,
        "wm_cov": sw / mw if mw else float("nan"),
        "residual_bias": block_cov(data, wm, template.header.get_zooms()),
        "snr_wm": mw / sw if sw else float("nan"),
        "cnr": (mw - mg) / np.sqrt(sw**2 + sg**2) if (sw or sg) else float("nan"),
    }


def write_session_qc(measures: dict[str, float], out_file) -> str:
    """One session's measures as a TSV: a header of :data:`QC_MEASURES`' names and one
    row (6 significant digits, ``n/a`` for a measure that could not be taken)."""
    values = ["n/a" if not np.isfinite(measures[k]) else f"{measures[k]:.6g}" for k in QC_MEASURES]
    with open(out_file, "w") as fh:
        fh.write("\t".join(QC_MEASURES) + "\n" + "\t".join(values) + "\n")
    return str(out_file)
