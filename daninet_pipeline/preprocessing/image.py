"""Reading and checking a T1w image before any processing."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np

from ..errors import ImageError


def check_t1w(img: nib.spatialimages.SpatialImage, *, name: str = "image") -> nib.Nifti1Image:
    """Return ``img`` as a 3D float32 NIfTI image, or raise :class:`ImageError`.

    A 4D image with a single volume is squeezed to 3D; one with several volumes, an image
    with non-finite voxels only, or an image with no contrast (all voxels equal) is refused.

    >>> import numpy as np, nibabel as nib
    >>> check_t1w(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)))
    Traceback (most recent call last):
    ...
    daninet_pipeline.errors.ImageError: image: 4D image with 2 volumes, expected one 3D T1w
    """
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        extra = f" with {img.shape[3]} volumes" if len(img.shape) == 4 else ""
        raise ImageError(f"{name}: {len(img.shape)}D image{extra}, expected one 3D T1w")
    if min(shape) < 2:
        raise ImageError(f"{name}: image of shape {shape} is too small")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except (OSError, EOFError, ValueError, Exception) as err:  # corrupt or truncated data
        raise ImageError(f"{name}: cannot read the voxel data ({err})") from err
    if not np.isfinite(img.affine).all() or abs(np.linalg.det(img.affine[:3, :3])) < 1e-6:
        raise ImageError(f"{name}: the affine is not invertible")
    finite = np.isfinite(data)
    if not finite.any():
        raise ImageError(f"{name}: no finite voxel")
    data = np.where(finite, data, 0).astype(np.float32)
    if float(data.max()) <= float(data.min()):
        raise ImageError(f"{name}: empty image (all voxels equal {float(data.min()):g})")
    out = nib.Nifti1Image(data, img.affine)
    out.header.set_xyzt_units("mm")
    return out


def load_t1w(path: str | os.PathLike) -> nib.Nifti1Image:
    """Load a T1w NIfTI file and check it with :func:`check_t1w`.

    Raises :class:`ImageError` for a missing, unreadable (corrupt, truncated), 4D or empty
    file; the message names the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageError(f"{path}: file not found")
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises many types on corrupt files
        raise ImageError(f"{path}: not a readable NIfTI image ({err})") from err
    return check_t1w(img, name=path)
