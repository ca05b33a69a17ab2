"""Evaluation metrics against hand-made images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from daninet_pipeline.evaluation.metrics import (
    data_range_of,
    mae_in_mask,
    psnr_in_mask,
    regional_tissue_volumes,
    ssim_in_mask,
    volume_change_error,
)


@pytest.fixture
def brain():
    rng = np.random.default_rng(0)
    img = np.zeros((24, 24, 24), np.float32)
    img[4:20, 4:20, 4:20] = 0.6
    img[8:16, 8:16, 8:16] = 1.0
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    mask = np.zeros(img.shape, bool)
    mask[4:20, 4:20, 4:20] = True
    return img, mask


def test_identical_images_score_perfectly(brain):
    img, mask = brain
    assert ssim_in_mask(img, img, mask) == pytest.approx(1.0)
    assert psnr_in_mask(img, img, mask) == float("inf")
    assert mae_in_mask(img, img, mask) == 0.0


def test_psnr_and_mae_match_their_formulas(brain):
    img, mask = brain
    pred = img + 0.1
    rng_ = data_range_of(img, mask)
    assert mae_in_mask(pred, img, mask) == pytest.approx(0.1, rel=1e-5)
    assert psnr_in_mask(pred, img, mask) == pytest.approx(10 * np.log10(rng_ ** 2 / 0.01), rel=1e-4)


def test_ssim_falls_with_distortion(brain):
    img, mask = brain
    rng = np.random.default_rng(1)
    mild = img + rng.normal(0, 0.05, img.shape).astype(np.float32)
    strong = img + rng.normal(0, 0.3, img.shape).astype(np.float32)
    assert 1.0 > ssim_in_mask(mild, img, mask) > ssim_in_mask(strong, img, mask)


def test_metrics_refuse_mismatched_shapes_or_empty_masks(brain):
    img, mask = brain
    with pytest.raises(ValueError, match="shapes differ"):
        ssim_in_mask(img[:-1], img, mask)
    with pytest.raises(ValueError, match="mask is empty"):
        mae_in_mask(img, img, np.zeros_like(mask))


def test_regional_volumes_count_tissue_and_ventricle_voxels():
    img = np.full((10, 10, 10), 0.8, np.float32)
    labels = np.zeros(img.shape, np.int16)
    labels[:5] = 1  # hippocampus-like tissue
    labels[5:] = 2  # ventricle
    img[:2, :, :] = 0.1  # 200 voxels of tissue lost to CSF
    img[5:8, :, :] = 0.1  # 300 voxels of ventricle CSF
    vols = regional_tissue_volumes(img, labels, {"Left_Hippocampus": [1], "Left_Ventricle": [2]}, 2.0)
    assert vols == {"Left_Hippocampus": 600.0, "Left_Ventricle": 600.0}


def test_identity_prediction_scores_the_true_change():
    base = {"Hippocampus": 1000.0, "Ventricle": 500.0}
    truth = {"Hippocampus": -0.05, "Ventricle": 0.10}
    assert volume_change_error(base, base, truth) == pytest.approx({"Hippocampus": 0.05, "Ventricle": 0.10})
    perfect = {"Hippocampus": 950.0, "Ventricle": 550.0}
    assert volume_change_error(base, perfect, truth) == pytest.approx({"Hippocampus": 0.0, "Ventricle": 0.0})
