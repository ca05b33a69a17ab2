"""N4 bias-field correction (SimpleITK), fitted on a shrunk image and applied at full
resolution, the way ANTs' ``N4BiasFieldCorrection --shrink-factor`` does."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

#: voxel size (mm) of the grid N4 fits on, when no ``shrink_factor`` is given: the
#: brain-mask pass, whose image is the one normalised and kept
FIT_VOXEL_MM = 5.0
#: the head-mask pass, whose image only feeds brain extraction and registration
HEAD_FIT_VOXEL_MM = 8.0


def _to_sitk(data: np.ndarray, zooms) -> "SimpleITK.Image":  # noqa: F821
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(data.T))
    img.SetSpacing([float(z) for z in zooms])
    return img


def head_mask(data: np.ndarray) -> np.ndarray:
    """Foreground (head) mask: Otsu threshold on the log-intensities, the largest
    component, holes filled slice-wise and in 3D. Used where N4 needs a mask."""
    from skimage.filters import threshold_otsu

    from .masks import largest_component

    positive = data[data > 0]
    if positive.size == 0:
        return np.ones(data.shape, bool)
    low = np.percentile(positive, 1)
    logd = np.log1p(np.clip(data, 0, None) / max(low, 1e-6))
    mask = logd > threshold_otsu(logd[::2, ::2, ::2])
    mask = largest_component(mask)
    mask = ndimage.binary_closing(mask, iterations=2)
    return ndimage.binary_fill_holes(mask)


def n4_bias_correction(img: nib.spatialimages.SpatialImage, *,
                       mask: nib.spatialimages.SpatialImage | None = None,
                       shrink_factor: int | None = None,
                       fit_voxel_mm: float = FIT_VOXEL_MM,
                       iterations: tuple[int, ...] = (50, 50),
                       spline_distance_mm: float = 200.0,
                       convergence: float = 1e-3,
                       field_resolution: str = "fit",
                       n_threads: int = 1) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """Correct the intensity non-uniformity of ``img`` with N4 (Tustison et al., 2010).

    The field is fitted on the image shrunk ``shrink_factor`` times (by default to voxels
    of about ``fit_voxel_mm``), inside ``mask`` (by
    default the Otsu head mask of :func:`head_mask`), evaluated at full resolution as a
    B-spline and divided out. One fitting level per entry of ``iterations``; the
    coarsest cubic B-spline mesh has knots about ``spline_distance_mm`` apart, and each
    level halves the spacing (ANTs' ``--bspline-fitting`` convention).

    ``field_resolution`` ``"fit"`` (default) evaluates the B-spline field on the fitting
    grid and interpolates it (trilinear) to full resolution; ``"full"`` evaluates the
    B-spline at every voxel, as ANTs does. The field's knots lie at least
    ``spline_distance_mm / 2**(levels-1)`` apart, so between samples 4 mm apart it is
    nearly linear: the two differ by at most 0.2 % of the field inside the head of the
    real scans (0.01 % on average; ``tests/preprocessing/test_steps.py`` checks 0.5 %), and "fit" saves most of N4's time on a 1 mm
    whole-head scan (docs/benchmarks.md).

    Returns the corrected image (float32, same grid) and the multiplicative bias field.
    """
    import SimpleITK as sitk

    zooms = img.header.get_zooms()[:3]
    if shrink_factor is None:  # fit on voxels of about fit_voxel_mm
        shrink_factor = max(1, int(round(float(fit_voxel_mm) / float(min(zooms)))))
    if shrink_factor < 1:
        raise ValueError("shrink_factor must be >= 1")
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"expected a 3D image, got shape {data.shape}")
    if mask is not None and mask.shape[:3] != data.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {data.shape}")
    # N4 works on log intensities: keep them positive.
    offset = max(0.0, -float(data.min())) + 1e-3 * float(np.percentile(data[::4, ::4, ::4], 99.5))
    work = data + offset

    full = _to_sitk(work, zooms)
    small = sitk.Shrink(full, [shrink_factor] * 3)
    if mask is None:  # the head mask is only needed at the fitting resolution
        small_data = sitk.GetArrayFromImage(small).T
        small_mask = _to_sitk(head_mask(small_data - offset).astype(np.uint8),
                              np.asarray(small.GetSpacing()))
        small_mask.CopyInformation(small)
    else:
        full_mask = _to_sitk((np.asarray(mask.dataobj) > 0).astype(np.uint8), zooms)
        small_mask = sitk.Shrink(full_mask, [shrink_factor] * 3)
    if not sitk.GetArrayViewFromImage(small_mask).any():
        raise ValueError("empty mask for N4")

    extent = np.array(data.shape) * np.array(zooms)
    control_points = [max(1, int(np.ceil(e / spline_distance_mm))) + 3 for e in extent]
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.SetNumberOfControlPoints(control_points)
    n4.SetConvergenceThreshold(convergence)
    n4.SetNumberOfThreads(int(n_threads))
    n4.Execute(small, small_mask)
    # Keep the mean intensity inside the mask: divide by the field normalised to mean 1.
    small_log = n4.GetLogBiasFieldAsImage(small)
    small_field = np.exp(np.clip(sitk.GetArrayViewFromImage(small_log), -5, 5))
    norm = float(np.mean(small_field[sitk.GetArrayViewFromImage(small_mask) > 0]))
    if field_resolution == "full":
        log_field = n4.GetLogBiasFieldAsImage(full)
    elif field_resolution == "fit":
        # sitk.Shrink keeps the physical extent: the shrunk grid's voxel centres sit
        # between the full grid's, and voxels past the last centre take the edge value
        # (the field is smooth, its extrapolation over half a coarse voxel harmless)
        resampler = sitk.ResampleImageFilter()
        resampler.SetReferenceImage(full)
        resampler.SetInterpolator(sitk.sitkLinear)
        resampler.SetOutputPixelType(sitk.sitkFloat32)
        resampler.SetUseNearestNeighborExtrapolator(True)
        resampler.SetNumberOfThreads(int(n_threads))
        log_field = resampler.Execute(sitk.Cast(small_log, sitk.sitkFloat32))
    else:
        raise ValueError(f"field_resolution must be 'fit' or 'full', not {field_resolution!r}")
    field = sitk.GetArrayFromImage(log_field).T.astype(np.float32, copy=False)
    np.clip(field, -5, 5, out=field)
    np.exp(field, out=field)
    field /= np.float32(norm)
    corrected = np.divide(work, field, dtype=np.float32)
    corrected -= np.float32(offset)
    return nib.Nifti1Image(corrected, img.affine), nib.Nifti1Image(field, img.affine)
