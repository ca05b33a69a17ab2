"""Reorientation to RAS+ (a lossless permutation and flip of the voxel axes)."""

from __future__ import annotations

import nibabel as nib
import numpy as np


def reorient_to_ras(img: nib.spatialimages.SpatialImage) -> nib.Nifti1Image:
    """Permute/flip the voxel axes so that they run Right, Anterior, Superior.

    World coordinates are unchanged (the affine absorbs the permutation); the voxel data
    are not interpolated.

    >>> import numpy as np, nibabel as nib
    >>> img = nib.Nifti1Image(np.zeros((2, 3, 4), np.float32), np.diag([-1, 1, 1, 1]))
    >>> nib.aff2axcodes(reorient_to_ras(img).affine)
    ('R', 'A', 'S')
    """
    out = nib.as_closest_canonical(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine))
    return nib.Nifti1Image(np.asanyarray(out.dataobj), out.affine)


def reorient_like(img: nib.spatialimages.SpatialImage,
                  reference: nib.spatialimages.SpatialImage) -> nib.Nifti1Image:
    """Undo :func:`reorient_to_ras`: bring ``img`` (on the RAS+ grid of ``reference``)
    back onto ``reference``'s own voxel grid, without interpolation.

    The result carries ``reference``'s header (qform, sform, their codes and pixdim, as
    niworkflows' ``copy_header``) with ``img``'s data type, so ITK tools see both images
    in the same physical space even where the reference's pixdim and sform disagree
    slightly. Raises ValueError when ``img`` is not on that RAS+ grid.
    """
    ornt_ref = nib.io_orientation(reference.affine)
    ornt_img = nib.io_orientation(img.affine)
    transform = nib.orientations.ornt_transform(ornt_img, ornt_ref)
    data = nib.orientations.apply_orientation(np.asanyarray(img.dataobj), transform)
    if data.shape[:3] != reference.shape[:3]:
        raise ValueError(f"image of shape {img.shape} is not on the grid of the reference "
                         f"{reference.shape}")
    affine = img.affine @ nib.orientations.inv_ornt_aff(transform, img.shape[:3])
    if not np.allclose(affine, reference.affine, atol=1e-3):
        raise ValueError("image is not on the RAS+ grid of the reference")
    header = reference.header.copy() if isinstance(reference, nib.Nifti1Image) else None
    if header is None:
        return nib.Nifti1Image(data, reference.affine)
    header.set_data_dtype(img.get_data_dtype())
    header.set_slope_inter(1.0, 0.0)
    # the header's own best affine: nibabel then leaves the xforms and their codes as they are
    return nib.Nifti1Image(data, header.get_best_affine(), header)
