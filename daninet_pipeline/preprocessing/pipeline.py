"""All steps in one call, in the order of the workflow (for scripts and benchmarks).

The Nipype workflow (:func:`daninet_pipeline.workflows.preproc.init_preproc_wf`) runs
the same functions as separate nodes; this module runs them in one process and times
each step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np


@dataclass
class PreprocResult:
    """Outputs of :func:`preprocess_t1w`."""

    t1w_ras: nib.Nifti1Image  #: input reoriented to RAS+
    t1w_corrected: nib.Nifti1Image  #: N4-corrected inside the brain mask, RAS+ grid
    bias_field: nib.Nifti1Image  #: multiplicative field, RAS+ grid
    mask_native: nib.Nifti1Image  #: brain mask on the input's own grid
    native_to_template: np.ndarray  #: 4x4 RAS mm
    t1w_preproc: nib.Nifti1Image  #: normalised, skull-stripped, template grid
    mask_template: nib.Nifti1Image  #: brain mask, template grid
    timings: dict[str, float] = field(default_factory=dict)  #: seconds per step


def preprocess_t1w(img: nib.spatialimages.SpatialImage, *, template: str | None = None,
                   brain_extraction: str = "deepbet", registration: str = "fast",
                   n_threads: int = 1) -> PreprocResult:
    """Reorient, N4 (head mask), brain mask, affine to the template, N4 again inside the
    brain mask, normalise, resample."""
    from ..allocator import keep_freed_memory
    from ..data.resources import DEFAULT_TEMPLATE, load_template, load_template_mask
    from .bias import HEAD_FIT_VOXEL_MM, n4_bias_correction
    from .brain_extraction import extract_brain
    from .image import check_t1w
    from .normalization import normalize_intensity
    from .registration import affine_registration
    from .reorient import reorient_like, reorient_to_ras
    from .resampling import resample_to_template

    keep_freed_memory()
    template = template or DEFAULT_TEMPLATE
    timings = {}
    t0 = time.perf_counter()

    def tick(name):
        nonlocal t0
        now = time.perf_counter()
        timings[name] = now - t0
        t0 = now

    img = check_t1w(img)
    tpl, tpl_mask = load_template(template), load_template_mask(template)
    ras = reorient_to_ras(img)
    tick("reorient")
    corrected, bias = n4_bias_correction(ras, fit_voxel_mm=HEAD_FIT_VOXEL_MM, n_threads=n_threads)
    tick("n4")
    if brain_extraction == "template":
        xfm0 = affine_registration(corrected, tpl, preset="coarse", n_threads=n_threads)
        mask = extract_brain(corrected, method="template", native_to_template=xfm0,
                             template_mask=tpl_mask)
    else:
        mask = extract_brain(corrected, method=brain_extraction, n_threads=n_threads)
    tick("brain_extraction")
    xfm = affine_registration(corrected, tpl, moving_mask=mask, fixed_mask=tpl_mask,
                              preset=registration, n_threads=n_threads)
    tick("registration")
    corrected, bias = n4_bias_correction(ras, mask=mask, n_threads=n_threads)
    tick("n4_brain")
    normalised = normalize_intensity(corrected, mask)
    tick("normalisation")
    preproc = resample_to_template(normalised, xfm, tpl, order=1)
    mask_std = resample_to_template(mask, xfm, tpl, order=0, dtype=np.uint8)
    tick("resampling")
    return PreprocResult(ras, corrected, bias, reorient_like(mask, img), xfm, preproc,
                         mask_std, timings)
