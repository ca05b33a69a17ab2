"""Resampling through an affine in world RAS millimetres (scipy)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage


def resample_affine(img: nib.spatialimages.SpatialImage, target_to_source: np.ndarray,
                    target: nib.spatialimages.SpatialImage | tuple, *, order: int = 1,
                    dtype=np.float32, data: np.ndarray | None = None,
                    cval: float = 0.0) -> nib.Nifti1Image:
    """Resample ``img`` onto the grid of ``target`` (an image or ``(shape, affine)``).

    ``target_to_source`` maps a world point of the target space to a world point of
    ``img``'s space (4x4, RAS mm). Voxels outside ``img`` take ``cval``.
    """
    if isinstance(target, tuple):
        shape, affine = target
    else:
        shape, affine = target.shape[:3], target.affine
    target_to_source = np.asarray(target_to_source, dtype=float)
    if target_to_source.shape != (4, 4):
        raise ValueError("target_to_source must be a 4x4 matrix")
    if data is None:
        data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"expected a 3D image, got shape {data.shape}")
    vox = np.linalg.inv(img.affine) @ target_to_source @ affine
    out = ndimage.affine_transform(data, vox[:3, :3], vox[:3, 3], output_shape=tuple(shape),
                                   order=order, mode="constant", cval=cval, prefilter=order > 1)
    return nib.Nifti1Image(out.astype(dtype), affine)


def resample_to_template(img: nib.spatialimages.SpatialImage, native_to_template: np.ndarray,
                         template: nib.spatialimages.SpatialImage, *, order: int = 1,
                         dtype=np.float32) -> nib.Nifti1Image:
    """``img`` (native space) on the template's grid, through the affine
    ``native_to_template`` (RAS mm, native point -> template point).

    Use ``order=0`` for masks and labels, 1 (trilinear) or 3 (cubic B-spline) for images.
    The header says what the grid is: qform and sform codes 4 (MNI152), units mm, as the
    BIDS derivatives sink writes a standard space (so it copies the file instead of
    writing and compressing it again).
    """
    out = resample_affine(img, np.linalg.inv(native_to_template), template, order=order,
                          dtype=dtype)
    out.set_qform(out.affine, code=4)
    out.set_sform(out.affine, code=4)
    out.header.set_xyzt_units("mm")
    return out
