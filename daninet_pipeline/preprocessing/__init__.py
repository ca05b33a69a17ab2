"""Pre-processing steps for one T1w image, as plain functions on nibabel images.

One module per step, applied in this order by :func:`daninet_pipeline.workflows.preproc.init_preproc_wf`:

====================  =============================================  =====================
module                function                                       library
====================  =============================================  =====================
``image``             :func:`load_t1w` (checks: 3D, finite, not      nibabel
                      empty)
``reorient``          :func:`reorient_to_ras`                        nibabel
``bias``              :func:`n4_bias_correction` (N4 on a shrunk     SimpleITK
                      image, field applied at full resolution)
``brain_extraction``  :func:`extract_brain` (deepbet CNN, or the     deepbet / scipy
                      registered template mask)
``registration``      :func:`affine_registration` (multi-resolution  SimpleITK
                      affine, brain to skull-stripped template)
``resampling``        :func:`resample_to_template`                   scipy
``normalization``     :func:`normalize_intensity`                    numpy
====================  =============================================  =====================

Affines between spaces are 4x4 matrices in world RAS millimetres mapping a point of the
native T1w to the template (``native_to_template``); :mod:`.transforms` converts them
to and from ITK text files (what ANTs and ITK read); :mod:`.masks` holds the mask
operations the steps share (:func:`~.masks.largest_component`).
"""

from .bias import n4_bias_correction
from .brain_extraction import extract_brain
from .image import load_t1w
from .normalization import normalize_intensity
from .registration import affine_registration
from .reorient import reorient_like, reorient_to_ras
from .resampling import resample_to_template
from .transforms import read_itk_affine, write_itk_affine

__all__ = [
    "affine_registration",
    "extract_brain",
    "load_t1w",
    "n4_bias_correction",
    "normalize_intensity",
    "read_itk_affine",
    "reorient_like",
    "reorient_to_ras",
    "resample_to_template",
    "write_itk_affine",
]
