"""Image similarity and regional change metrics between a prediction and a real scan.

All functions take 3D arrays on one grid (the template grid) and a boolean brain mask;
intensities are the pipeline's normalised scale (white matter ~ 1).
"""

from __future__ import annotations

import numpy as np


def _check(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> None:
    if pred.shape != ref.shape or ref.shape != mask.shape:
        raise ValueError(f"shapes differ: prediction {pred.shape}, reference {ref.shape}, "
                         f"mask {mask.shape}")
    if not mask.any():
        raise ValueError("the mask is empty")


def data_range_of(ref: np.ndarray, mask: np.ndarray) -> float:
    """Intensity range of the reference inside the mask (max - min), the SSIM/PSNR ``L``."""
    values = ref[mask]
    return float(values.max() - values.min())


def ssim_in_mask(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray,
                 data_range: float | None = None) -> float:
    """Mean of scikit-image's 3D SSIM map over the mask.

    ``data_range`` defaults to :func:`data_range_of` the reference; a 7-voxel Gaussian
    window (sigma 1.5, as Wang et al. 2004) is used.
    """
    from skimage.metrics import structural_similarity

    _check(pred, ref, mask)
    data_range = data_range_of(ref, mask) if data_range is None else data_range
    _, ssim_map = structural_similarity(ref.astype(np.float64), pred.astype(np.float64),
                                        data_range=data_range, gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False, full=True)
    return float(ssim_map[mask].mean())


def psnr_in_mask(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray,
                 data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio (dB) over the mask; ``inf`` for identical images."""
    _check(pred, ref, mask)
    data_range = data_range_of(ref, mask) if data_range is None else data_range
    mse = float(np.mean((pred[mask].astype(np.float64) - ref[mask]) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


def mae_in_mask(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute intensity error over the mask."""
    _check(pred, ref, mask)
    return float(np.mean(np.abs(pred[mask].astype(np.float64) - ref[mask])))


def regional_tissue_volumes(image: np.ndarray, labels: np.ndarray, regions: dict[str, list[int]],
                            voxel_mm3: float, csf_threshold: float = 0.35) -> dict[str, float]:
    """Volume (mm^3) of each region measured on an intensity image.

    A tissue region's volume is its count of voxels brighter than ``csf_threshold`` (on the
    normalised scale: CSF ~ 0.1-0.2, grey matter ~ 0.6, white matter ~ 1); a region whose
    name contains "Ventricle" counts its voxels darker than the threshold instead. The
    atlas region is the same for baseline and follow-up, so a shrinking structure loses
    bright voxels to CSF and a growing ventricle gains dark ones.
    """
    if image.shape != labels.shape:
        raise ValueError(f"shapes differ: image {image.shape}, labels {labels.shape}")
    out = {}
    for name, ids in regions.items():
        inside = np.isin(labels, ids)
        if "Ventricle" in name:
            out[name] = float((image[inside] < csf_threshold).sum() * voxel_mm3)
        else:
            out[name] = float((image[inside] >= csf_threshold).sum() * voxel_mm3)
    return out


def volume_change_error(baseline: dict[str, float], predicted: dict[str, float],
                        true_change: dict[str, float]) -> dict[str, float]:
    """Absolute error of the predicted fractional volume change, per region.

    ``predicted / baseline - 1`` against ``true_change`` (a fraction, e.g. -0.04); the
    identity baseline (prediction = baseline) scores ``|true_change|``.
    """
    errors = {}
    for name, truth in true_change.items():
        base = baseline.get(name, 0.0)
        if base <= 0:
            continue
        errors[name] = abs(predicted[name] / base - 1.0 - truth)
    return errors
