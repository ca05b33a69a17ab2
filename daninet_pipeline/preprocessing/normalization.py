"""Intensity normalisation of a skull-stripped, bias-corrected T1w image."""

from __future__ import annotations

import nibabel as nib
import numpy as np

#: The participant level's intensity normalisation, as its sidecars state it (a model
#: records its training data's and refuses data normalised otherwise).
INTENSITY_NORMALIZATION = "brain 99th percentile = 1, clipped to [0, 1.5]"
#: Version of what the participant level writes; bumped when a change to pre-processing
#: changes the derivatives a model is trained on.
PREPROCESSING_VERSION = "2"  # 2: N4 fitted on a coarse grid (issue 13)


def normalize_intensity(img: nib.spatialimages.SpatialImage,
                        mask: nib.spatialimages.SpatialImage, *,
                        percentile: float = 99.0, clip: float = 1.5,
                        skull_strip: bool = True) -> nib.Nifti1Image:
    """Scale intensities so that the ``percentile``-th percentile inside ``mask`` is 1.

    The packaged templates follow the same convention (their 99th percentile is 1), so
    images and template are comparable. Values are clipped to ``[0, clip]``; with
    ``skull_strip`` voxels outside the mask are set to 0.
    """
    data = np.asarray(img.dataobj, dtype=np.float32)
    mask_data = np.asarray(mask.dataobj) > 0
    if mask_data.shape != data.shape:
        raise ValueError(f"mask shape {mask_data.shape} differs from image shape {data.shape}")
    if not mask_data.any():
        raise ValueError("empty mask")
    scale = float(np.percentile(data[mask_data], percentile))
    if scale <= 0:
        raise ValueError("the image is not positive inside the mask")
    out = np.clip(data / scale, 0.0, clip)
    if skull_strip:
        out[~mask_data] = 0.0
    return nib.Nifti1Image(out.astype(np.float32), img.affine)
