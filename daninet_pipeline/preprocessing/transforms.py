"""Affine transforms: world RAS mm matrices and ITK/ANTs transform files.

Conventions
-----------
``native_to_template`` (what the functions of this package pass around) is a 4x4 matrix
``M`` in world RAS millimetres: a native point ``p`` lies at template point ``M @ p``.

The file ``..._from-T1w_to-<template>_mode-image_xfm.txt`` is an ITK text transform
(``AffineTransform_double_3_3``) in the ANTs/ITK convention used by fMRIPrep and
antsApplyTransforms: it maps *template* points to *native* points in LPS coordinates, so
``antsApplyTransforms -i T1w.nii.gz -r template.nii.gz -t xfm.txt`` resamples the T1w onto
the template. :func:`write_itk_affine` and :func:`read_itk_affine` do the conversion.
"""

from __future__ import annotations

import os

import numpy as np

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ras_to_itk(native_to_template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ITK (matrix, translation) with centre 0 of the template->native LPS mapping."""
    lps = _LPS @ np.linalg.inv(native_to_template) @ _LPS
    return lps[:3, :3], lps[:3, 3]


def itk_to_ras(matrix, translation, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """``native_to_template`` (RAS) from an ITK template->native LPS affine
    ``y = A (x - c) + t + c``.

    >>> import numpy as np
    >>> m = np.eye(4); m[:3, 3] = [1, 2, 3]
    >>> np.allclose(itk_to_ras(*ras_to_itk(m)), m)
    True
    """
    a = np.asarray(matrix, float).reshape(3, 3)
    c = np.asarray(center, float)
    lps = np.eye(4)
    lps[:3, :3] = a
    lps[:3, 3] = np.asarray(translation, float) + c - a @ c
    return np.linalg.inv(_LPS @ lps @ _LPS)


def write_itk_affine(native_to_template: np.ndarray, path: str | os.PathLike) -> str:
    """Write ``native_to_template`` as an ITK text transform file (``.txt``/``.tfm``)."""
    import SimpleITK as sitk

    native_to_template = np.asarray(native_to_template, float)
    if native_to_template.shape != (4, 4) or not np.allclose(native_to_template[3], [0, 0, 0, 1]):
        raise ValueError("native_to_template must be a 4x4 affine matrix")
    matrix, translation = ras_to_itk(native_to_template)
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(matrix.ravel().tolist())
    tx.SetTranslation(translation.tolist())
    path = os.fspath(path)
    sitk.WriteTransform(tx, path)
    return path


def read_itk_affine(path: str | os.PathLike) -> np.ndarray:
    """``native_to_template`` (RAS) from an ITK/ANTs affine transform file (text or
    ANTs ``.mat``) holding a template->native transform."""
    import SimpleITK as sitk

    tx = sitk.ReadTransform(os.fspath(path))
    if tx.GetName() == "CompositeTransform":
        tx = sitk.CompositeTransform(tx)
        if tx.GetNumberOfTransforms() != 1:
            raise ValueError(f"{path}: expected one affine transform")
        tx = tx.GetNthTransform(0)
    params = np.asarray(tx.GetParameters(), float)
    if params.size != 12:
        raise ValueError(f"{path}: not a 3D affine transform ({tx.GetName()})")
    center = np.asarray(tx.GetFixedParameters(), float)[:3]
    return itk_to_ras(params[:9], params[9:], center)


def mean_displacement(estimated: np.ndarray, true: np.ndarray, mask) -> float:
    """Mean distance (mm) between ``estimated @ p`` and ``true @ p`` over the voxels ``p``
    of a mask image (both matrices native->template, RAS)."""
    data = np.asarray(mask.dataobj) > 0
    ijk = np.argwhere(data)
    pts = np.c_[ijk, np.ones(len(ijk))] @ mask.affine.T
    diff = pts @ (np.asarray(estimated) - np.asarray(true)).T
    return float(np.linalg.norm(diff[:, :3], axis=1).mean())


def _fsl_scaled_voxels(img) -> np.ndarray:
    """Voxel -> FSL "scaled voxel" coordinates (mm, x flipped for neurological storage)."""
    zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    out = np.diag([*zooms, 1.0])
    if np.linalg.det(img.affine[:3, :3]) > 0:
        flip = np.eye(4)
        flip[0, 0] = -1
        flip[0, 3] = img.shape[0] - 1
        out = out @ flip
    return out


def fsl_to_ras(flirt_matrix: np.ndarray, moving, reference) -> np.ndarray:
    """``native_to_template`` (RAS mm) from a FLIRT matrix (``-omat``) that maps
    ``moving`` onto ``reference`` (nibabel images, headers only are used).

    >>> import numpy as np, nibabel as nib
    >>> img = nib.Nifti1Image(np.zeros((10, 12, 14), np.uint8), np.diag([2, 2, 2, 1]))
    >>> np.allclose(fsl_to_ras(np.eye(4), img, img), np.eye(4))
    True
    """
    flirt_matrix = np.asarray(flirt_matrix, float)
    return (reference.affine @ np.linalg.inv(_fsl_scaled_voxels(reference)) @ flirt_matrix
            @ _fsl_scaled_voxels(moving) @ np.linalg.inv(moving.affine))
