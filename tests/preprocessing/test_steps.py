"""Each pre-processing step as a plain function, on tiny images and small demo data."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from daninet_pipeline.data.resources import load_template, load_template_mask
from daninet_pipeline.errors import ImageError
from daninet_pipeline.preprocessing import (
    affine_registration,
    extract_brain,
    load_t1w,
    n4_bias_correction,
    normalize_intensity,
    read_itk_affine,
    reorient_like,
    reorient_to_ras,
    resample_to_template,
    write_itk_affine,
)
from daninet_pipeline.preprocessing.image import check_t1w
from daninet_pipeline.preprocessing.resampling import resample_affine
from daninet_pipeline.preprocessing.transforms import fsl_to_ras, mean_displacement

from .conftest import dice, oblique_image


def _downsampled_template(factor=2):
    tpl = load_template()
    data = np.asarray(tpl.dataobj)[::factor, ::factor, ::factor]
    affine = tpl.affine.copy()
    affine[:3, :3] *= factor
    return nib.Nifti1Image(np.ascontiguousarray(data), affine)


# --- image checks ---------------------------------------------------------------------

def test_load_t1w_rejects_bad_files(tmp_path):
    good = np.random.default_rng(0).random((6, 6, 6)).astype(np.float32)
    nib.Nifti1Image(good, np.eye(4)).to_filename(tmp_path / "good.nii.gz")
    assert load_t1w(tmp_path / "good.nii.gz").shape == (6, 6, 6)

    nib.Nifti1Image(np.stack([good, good], -1), np.eye(4)).to_filename(tmp_path / "4d.nii.gz")
    with pytest.raises(ImageError, match="4D image with 2 volumes"):
        load_t1w(tmp_path / "4d.nii.gz")
    nib.Nifti1Image(np.zeros((6, 6, 6), np.float32), np.eye(4)).to_filename(tmp_path / "empty.nii.gz")
    with pytest.raises(ImageError, match="empty image"):
        load_t1w(tmp_path / "empty.nii.gz")
    raw = (tmp_path / "good.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageError, match="cut.nii.gz"):
        load_t1w(tmp_path / "cut.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not a nifti"))
    with pytest.raises(ImageError, match="junk.nii.gz"):
        load_t1w(tmp_path / "junk.nii.gz")
    with pytest.raises(ImageError, match="not found"):
        load_t1w(tmp_path / "missing.nii.gz")
    # a single-volume 4D image is accepted as 3D
    one = check_t1w(nib.Nifti1Image(good[..., None], np.eye(4)))
    assert one.shape == (6, 6, 6)


# --- reorientation --------------------------------------------------------------------

def test_reorient_round_trip_keeps_world_coordinates():
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    img = oblique_image(data, angle_deg=20)  # stored L-P-S-like
    ras = reorient_to_ras(img)
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    # the same voxel value sits at the same world point
    ijk = np.array([1, 2, 3, 1.0])
    world = img.affine @ ijk
    ras_ijk = np.rint(np.linalg.inv(ras.affine) @ world).astype(int)
    assert ras.get_fdata()[tuple(ras_ijk[:3])] == data[1, 2, 3]
    back = reorient_like(ras, img)
    np.testing.assert_array_equal(back.get_fdata(), data)
    np.testing.assert_allclose(back.affine, img.affine)
    with pytest.raises(ValueError):
        reorient_like(nib.Nifti1Image(np.zeros((3, 3, 3)), np.eye(4)), img)


# --- N4 ---------------------------------------------------------------------------------

def _biased_template(cx: float, cz: float, cyz: float):
    """The 2 mm template brain under the smooth field exp(cx x + cz z + cyz y z) (x, y, z
    in [-1, 1] over the grid): (template, brain array, brain mask, field, biased image)."""
    tpl = _downsampled_template(2)
    brain = np.asarray(tpl.dataobj)
    mask = brain > 0.3
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in brain.shape], indexing="ij")
    bias = np.exp(cx * x + cz * z + cyz * y * z)
    img = nib.Nifti1Image((brain * bias * 1000 + 5).astype(np.float32), tpl.affine)
    return tpl, brain, mask, bias, img


def test_n4_removes_a_smooth_bias():
    tpl, brain, mask, bias, img = _biased_template(0.2, -0.15, 0.1)
    corrected, field = n4_bias_correction(img, shrink_factor=2)
    ratio_before = (np.asarray(img.dataobj) / np.maximum(brain, 1e-3))[mask]
    ratio_after = (np.asarray(corrected.dataobj) / np.maximum(brain, 1e-3))[mask]
    cov = lambda v: v.std() / v.mean()  # noqa: E731
    assert cov(ratio_after) < 0.6 * cov(ratio_before)
    assert field.shape == img.shape
    assert abs(np.asarray(field.dataobj)[mask].mean() - 1) < 0.2
    with pytest.raises(ValueError):
        n4_bias_correction(img, mask=nib.Nifti1Image(np.ones((3, 3, 3)), np.eye(4)))


def test_n4_default_settings_correct_a_known_field_with_the_field_fitted_coarsely():
    """Issue 13, item 4: the defaults (fitted on ~5 mm voxels, the field interpolated from
    the fitting grid) still remove a known smooth field, and their field matches the
    B-spline evaluated at every voxel."""
    from daninet_pipeline.preprocessing.bias import HEAD_FIT_VOXEL_MM

    tpl, brain, mask, bias, img = _biased_template(0.25, -0.2, 0.1)
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), tpl.affine)
    cov = lambda v: v.std() / v.mean()  # noqa: E731
    before = cov((np.asarray(img.dataobj) / np.maximum(brain, 1e-3))[mask])
    for kwargs in ({}, {"fit_voxel_mm": HEAD_FIT_VOXEL_MM}, {"mask": mask_img}):
        corrected, field = n4_bias_correction(img, **kwargs)
        after = cov((np.asarray(corrected.dataobj) / np.maximum(brain, 1e-3))[mask])
        assert after < 0.5 * before, (kwargs, after, before)
        # the recovered field follows the true one (up to N4's free scale)
        recovered = np.asarray(field.dataobj)[mask]
        assert np.corrcoef(np.log(recovered), np.log(bias[mask]))[0, 1] > 0.85
    _, full = n4_bias_correction(img, mask=mask_img, field_resolution="full")
    assert np.abs(np.asarray(field.dataobj)[mask] / np.asarray(full.dataobj)[mask] - 1).max() < 0.005
    with pytest.raises(ValueError, match="field_resolution"):
        n4_bias_correction(img, field_resolution="half")


# --- transforms -----------------------------------------------------------------------

def test_itk_transform_round_trip_and_simpleitk_agrees(tmp_path):
    import SimpleITK as sitk

    from daninet_pipeline.preprocessing.registration import nib_to_sitk

    m = np.eye(4)
    m[:3, :3] = np.array([[0.98, -0.17, 0.02], [0.17, 0.97, 0.05], [0.0, -0.05, 1.03]])
    m[:3, 3] = [4.0, -7.0, 12.0]
    path = write_itk_affine(m, tmp_path / "xfm.txt")
    assert open(path).readline().startswith("#Insight Transform File")
    np.testing.assert_allclose(read_itk_affine(path), m, atol=1e-10)
    # SimpleITK resampling with the file == our resampling onto the template grid
    moving = _downsampled_template(3)
    ours = np.asarray(resample_to_template(moving, m, moving).dataobj)
    ref = nib_to_sitk(moving)
    theirs = sitk.GetArrayFromImage(sitk.Resample(ref, ref, sitk.ReadTransform(path),
                                                  sitk.sitkLinear, 0.0)).T
    inside = ours > 0.1
    assert np.corrcoef(ours[inside], theirs[inside])[0, 1] > 0.999


def test_fsl_matrix_conversion():
    img = nib.Nifti1Image(np.zeros((10, 12, 14), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    # FLIRT matrix of a 3 mm shift along FSL x: FSL x runs opposite to world x here
    shift = np.eye(4)
    shift[0, 3] = 3.0
    ras = fsl_to_ras(shift, img, img)
    np.testing.assert_allclose(ras[:3, 3], [-3.0, 0, 0], atol=1e-9)
    las = nib.Nifti1Image(np.zeros((10, 12, 14), np.uint8), np.diag([-2.0, 2.0, 2.0, 1.0]))
    np.testing.assert_allclose(fsl_to_ras(shift, las, las)[:3, 3], [-3.0, 0, 0], atol=1e-9)


# --- registration -----------------------------------------------------------------------

def test_affine_registration_recovers_a_known_pose():
    from scipy.spatial.transform import Rotation

    tpl, tpl_mask = load_template(), load_template_mask()
    true = np.eye(4)  # native -> template
    true[:3, :3] = Rotation.from_euler("xyz", [12, -8, 5], degrees=True).as_matrix() @ np.diag([1.05, 0.95, 1.02])
    true[:3, 3] = [15.0, -10.0, 8.0]
    grid = oblique_image(np.zeros((150, 180, 140)), zooms=(1.3, 1.2, 1.4), angle_deg=7)
    moving = resample_affine(tpl, true, grid, order=1)
    mask = resample_affine(tpl_mask, true, grid, order=0, dtype=np.uint8)
    moving = reorient_to_ras(moving)
    estimate = affine_registration(moving, tpl, moving_mask=reorient_to_ras(mask),
                                   fixed_mask=tpl_mask, n_threads=2)
    assert mean_displacement(estimate, true, mask) < 0.6
    with pytest.raises(ValueError, match="preset"):
        affine_registration(moving, tpl, preset="nope")


# --- brain extraction -------------------------------------------------------------------

def test_deepbet_mask_matches_the_truth(demo_session):
    raw = nib.load(demo_session.t1w)
    ras = reorient_to_ras(raw)
    corrected, _ = n4_bias_correction(ras)
    mask = extract_brain(corrected, method="deepbet", n_threads=2)
    assert mask.get_data_dtype() == np.uint8
    assert dice(reorient_like(mask, raw), nib.load(demo_session.true_mask)) > 0.95


def test_template_mask_through_the_true_pose(demo_session):
    raw = nib.load(demo_session.t1w)
    mask = extract_brain(reorient_to_ras(raw), method="template",
                         native_to_template=demo_session.true_xfm,
                         template_mask=load_template_mask())
    assert dice(reorient_like(mask, raw), nib.load(demo_session.true_mask)) > 0.9
    with pytest.raises(ValueError, match="needs"):
        extract_brain(raw, method="template")
    with pytest.raises(ValueError, match="unknown"):
        extract_brain(raw, method="bet")


# --- normalisation and resampling --------------------------------------------------------

def test_normalize_intensity():
    rng = np.random.default_rng(1)
    data = rng.uniform(100, 500, (10, 10, 10)).astype(np.float32)
    mask = np.zeros((10, 10, 10), np.uint8)
    mask[2:8, 2:8, 2:8] = 1
    out = normalize_intensity(nib.Nifti1Image(data, np.eye(4)), nib.Nifti1Image(mask, np.eye(4)))
    values = np.asarray(out.dataobj)
    assert np.percentile(values[mask > 0], 99) == pytest.approx(1.0, abs=0.02)
    assert (values[mask == 0] == 0).all() and values.max() <= 1.5
    with pytest.raises(ValueError, match="empty mask"):
        normalize_intensity(nib.Nifti1Image(data, np.eye(4)),
                            nib.Nifti1Image(np.zeros_like(mask), np.eye(4)))


def test_resample_to_template_with_a_shift():
    tpl = _downsampled_template(4)
    shift = np.eye(4)
    shift[:3, 3] = [8.0, 0.0, 0.0]  # native point p is template point p + 8 mm in x
    # the native image is the template moved by -8 mm: resampling through `shift` undoes it
    native = nib.Nifti1Image(np.asarray(tpl.dataobj), np.linalg.inv(shift) @ tpl.affine)
    out = resample_to_template(native, shift, tpl, order=0)
    np.testing.assert_allclose(np.asarray(out.dataobj), np.asarray(tpl.dataobj), atol=1e-5)
    with pytest.raises(ValueError, match="4x4"):
        resample_affine(native, np.eye(3), tpl)


def test_registration_skips_levels_finer_than_the_input():
    from daninet_pipeline.preprocessing.registration import PRESETS, finest_levels

    coarse = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.diag([2.4, 2.0, 2.0, 1.0]))
    fine = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.diag([1.2, 1.0, 1.0, 1.0]))
    huge = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.diag([9.0, 9.0, 9.0, 1.0]))
    assert [lv[0] for lv in finest_levels(PRESETS["fast"], coarse)] == [6.0, 3.0, 2.0]
    assert finest_levels(PRESETS["fast"], fine) == PRESETS["fast"]
    assert finest_levels(PRESETS["fast"], huge) == PRESETS["fast"][:1]
