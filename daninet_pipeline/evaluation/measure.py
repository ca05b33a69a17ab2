"""Regional volume change between two images on one grid, measured as the field does.

Two measurements, since a method that changes intensities and one that moves tissue
can each be favoured by one of them:

- :func:`tbm_change` (tensor-based morphometry): ANTsPy SyN registers the starting
  scan (fixed) to the other image (moving); the Jacobian determinant of the resulting
  transform, on the starting scan's grid, is each voxel's volume ratio (the integral
  of the Jacobian over a set of voxels is their volume in the other image). A region's
  fractional change is the mean Jacobian over the region minus one, weighted by the
  starting scan's own tissue in it when its posteriors are given (grey matter; CSF for
  a ventricle), so a ventricle's change is its CSF's, not the atlas label's.
- :func:`atropos_change`: ANTsPy Atropos segments both images into CSF, grey and white
  matter (k-means start, MRF prior) inside the starting scan's brain mask; a region's
  volume is the sum of its grey-matter posteriors (CSF for a ventricle), as in
  voxel-based morphometry: a structure that shrinks gives way to white matter or CSF.
  When Atropos fails on an image to compare (it exits non-zero on some generated
  images), that image's change is NaN (not scored, with a warning), not an error.

Both take arrays on the template grid with the atlas labels of that grid. An image
compared with itself has no change: both functions return zeros without running
anything. The errors of both against the demo data's ground truth are stated in
``docs/group_and_simulation.md`` and checked by the tests on known changes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager

import numpy as np

LOG = logging.getLogger("daninet.evaluation")


class MeasurementError(RuntimeError):
    """A segmentation or registration that did not run to the end."""

#: SyN iterations per level (half, then full resolution; ANTsPy halves the grid per extra level):
#: the benchmark's and :func:`~daninet_pipeline.workflows.evaluation.init_evaluation_wf`'s
#: setting; about 9 s per pair at the small demo shape (2 mm, cropped to the brain) on one
#: busy core.
SYN_ITERATIONS = (20, 10)
#: the group level's quick evaluation (``daninet ... group``, ``make demo``): one level of
#: 5 iterations at full resolution, about half the time of :data:`SYN_ITERATIONS` per
#: registration on the demo grid; its error on the phantom of the tests and against the
#: demo data's ground truth (``benchmarks/tbm_settings.py``) is stated in
#: docs/group_and_simulation.md, and every table's ``oracle`` row shows it again
QUICK_SYN_ITERATIONS = (5,)
#: ... on a grid of voxels this size at least (mm): 1 mm derivatives are registered (and the
#: starting scan's tissue weights segmented) on their 2 mm block means, the grid on which
#: the quick setting's accuracy was measured: 8x fewer voxels (7-8 s a registration
#: instead of 32-48 s on the shared machine) and, on the demo chain's real derivatives,
#: the same mean error against the ground truth (0.031; docs/group_and_simulation.md)
QUICK_SYN_VOXEL_MM = 2.0
MEASUREMENTS = ("tbm", "atropos")


def _ants_image(array: np.ndarray, zooms):
    import ants

    return ants.from_numpy(np.ascontiguousarray(array, dtype=np.float32),
                           spacing=tuple(float(z) for z in zooms))


def _check(start: np.ndarray, other: np.ndarray, labels: np.ndarray) -> None:
    if start.shape != other.shape or start.shape != labels.shape:
        raise ValueError(f"shapes differ: start {start.shape}, other {other.shape}, labels {labels.shape}")


def region_masks(labels: np.ndarray, regions: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Boolean mask of each region (name -> atlas label ids) on the labels' grid."""
    return {name: np.isin(labels, ids) for name, ids in regions.items()}


def grid_factor(zooms, voxel_mm=None) -> int:
    """The integer block size that brings the finest voxel of ``zooms`` to ``voxel_mm``
    at least (1: register on the image's own grid).

    >>> grid_factor((1.0, 1.0, 1.0), 2.0), grid_factor((2.0, 2.0, 2.0), 2.0), grid_factor((1.0,) * 3)
    (2, 1, 1)
    """
    if not voxel_mm:
        return 1
    return max(1, int(round(float(voxel_mm) / min(float(z) for z in zooms))))


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """``array`` averaged over blocks of ``factor`` voxels per axis (zero-padded to a
    multiple of ``factor``)."""
    if factor == 1:
        return array
    array = np.pad(array, [(0, (-s) % factor) for s in array.shape])
    a, b, c = (s // factor for s in array.shape)
    return array.reshape(a, factor, b, factor, c, factor).mean(axis=(1, 3, 5))


@contextmanager
def _ants_scratch():
    """A private folder for the files ANTsPy writes and leaves behind (each SyN's
    transforms, Atropos' posteriors: about 15 MB a follow-up at 1 mm, tens of gigabytes
    in the temp folder over a cohort), removed on exit with everything in it. ANTsPy
    names them with :func:`tempfile.mktemp`, so the folder is made the temp folder of
    this (single-threaded) call and given back after."""
    with tempfile.TemporaryDirectory(prefix="daninet_ants_") as tmp:
        before, tempfile.tempdir = tempfile.tempdir, tmp
        try:
            yield tmp
        finally:
            tempfile.tempdir = before


def jacobian_determinant(start: np.ndarray, other: np.ndarray, zooms, *,
                         iterations=None, seed: int = 1, voxel_mm=None) -> np.ndarray:
    """Jacobian determinant (on ``start``'s grid) of SyN from ``start`` (fixed) to ``other``
    (``iterations`` per level, default :data:`SYN_ITERATIONS`). With ``voxel_mm`` a finer
    grid is registered on its block means (:func:`grid_factor`) and each coarse voxel's
    determinant is given to the fine voxels it covers."""
    factor = grid_factor(zooms, voxel_mm)
    if factor > 1:
        jac = jacobian_determinant(block_mean(start, factor), block_mean(other, factor),
                                   tuple(float(z) * factor for z in zooms), iterations=iterations, seed=seed)
        for axis in range(3):
            jac = np.repeat(jac, factor, axis=axis)
        return jac[:start.shape[0], :start.shape[1], :start.shape[2]]
    import ants

    iterations = SYN_ITERATIONS if iterations is None else iterations
    fixed, moving = _ants_image(start, zooms), _ants_image(other, zooms)
    with _ants_scratch() as tmp:
        reg = ants.registration(fixed=fixed, moving=moving, type_of_transform="SyNOnly",
                                initial_transform="Identity", reg_iterations=tuple(iterations),
                                random_seed=seed, verbose=False, outprefix=os.path.join(tmp, "syn_"))
        warp = next(t for t in reg["fwdtransforms"] if t.endswith((".nii", ".nii.gz")))
        jac = ants.create_jacobian_determinant_image(fixed, warp, do_log=False)
        return jac.numpy().astype(np.float32)


def bounding_box(mask: np.ndarray, margin: int = 3) -> tuple[slice, slice, slice]:
    """The mask's bounding box grown by ``margin`` voxels (the registration's field of view)."""
    idx = np.nonzero(mask)
    if not idx[0].size:
        raise ValueError("the mask is empty")
    return tuple(slice(max(int(i.min()) - margin, 0), min(int(i.max()) + margin + 1, s))
                 for i, s in zip(idx, mask.shape))


def tbm_change(start: np.ndarray, other: np.ndarray, labels: np.ndarray, regions: dict[str, list[int]],
               zooms, *, mask=None, start_posteriors=None, iterations=None,
               seed: int = 1, voxel_mm=None) -> dict[str, float]:
    """Fractional volume change of each region from ``start`` to ``other`` by TBM.

    With ``mask`` (the starting scan's brain mask) both images are cropped to its
    bounding box (3 voxels of margin) before registering, which halves the time on the
    template grid. With ``start_posteriors`` (:func:`tissue_posteriors` of ``start``) the
    Jacobian is averaged over the region's grey matter (CSF for a ventricle), else over
    the whole region. ``voxel_mm``: register on a grid this coarse at least
    (:func:`jacobian_determinant`; the group level's quick setting, :data:`QUICK_SYN_VOXEL_MM`).
    """
    _check(start, other, labels)
    masks = region_masks(labels, regions)
    if np.array_equal(start, other):
        return {name: 0.0 for name in masks}
    box = bounding_box(mask) if mask is not None else tuple(slice(None) for _ in start.shape)
    jac = np.ones(start.shape, np.float32)
    jac[box] = jacobian_determinant(start[box], other[box], zooms, iterations=iterations, seed=seed,
                                    voxel_mm=voxel_mm)
    out = {}
    for name, m in masks.items():
        if start_posteriors is None:
            w = m.astype(np.float32)
        else:
            w = _region_class(start_posteriors, name) * m
        total = float(w.sum())
        out[name] = float((jac * w).sum() / total - 1.0) if total > 0 else float("nan")
    return out


def tissue_posteriors(image: np.ndarray, mask: np.ndarray, zooms, *, iterations: int = 5,
                      voxel_mm=None) -> np.ndarray:
    """Atropos posteriors (3, *shape) of CSF, grey and white matter inside ``mask``,
    ordered by mean intensity (T1w: CSF darkest). With ``voxel_mm`` a finer grid is
    segmented on its block means (:func:`grid_factor`; TBM's weights in the group level's
    quick setting), each coarse voxel's posteriors given to the fine voxels it covers."""
    factor = grid_factor(zooms, voxel_mm)
    if factor > 1:
        post = tissue_posteriors(block_mean(np.nan_to_num(np.asarray(image, np.float32)), factor),
                                 block_mean(np.asarray(mask, np.float32), factor) > 0.5,
                                 tuple(float(z) * factor for z in zooms), iterations=iterations)
        for axis in range(1, 4):
            post = np.repeat(post, factor, axis=axis)
        return post[:, :image.shape[0], :image.shape[1], :image.shape[2]]
    import ants

    image = np.nan_to_num(np.asarray(image, np.float32))
    img = _ants_image(image, zooms)
    msk = _ants_image(mask.astype(np.float32), zooms)
    with _ants_scratch():
        try:
            # r=0: Atropos' fixed seed (its default draws one from the clock, so the
            # posteriors, TBM's weights, differed from call to call)
            seg = ants.atropos(a=img, x=msk, i="kmeans[3]", m="[0.1,1x1x1]", c=f"[{iterations},0]",
                               priorweight=0.0, verbose=0, r=0)
        except Exception as err:  # ANTsPy raises a bare Exception when Atropos exits non-zero
            raise MeasurementError(f"Atropos failed: {err}") from err
        post = np.stack([p.numpy() for p in seg["probabilityimages"]]).astype(np.float32)
    means = [float(image[mask & (p > 0.5)].mean()) if (mask & (p > 0.5)).any() else np.inf
             for p in post]
    return post[np.argsort(means)]


def _region_class(posteriors: np.ndarray, name: str) -> np.ndarray:
    """The tissue class a region is measured on: CSF for a ventricle, else grey matter."""
    return posteriors[0] if "Ventricle" in name else posteriors[1]


def tissue_volumes(posteriors: np.ndarray, masks: dict[str, np.ndarray], voxel_mm3: float) -> dict[str, float]:
    """Each region's volume (mm^3): its grey-matter posteriors, or CSF for a ventricle."""
    return {name: float(_region_class(posteriors, name)[m].sum() * voxel_mm3) for name, m in masks.items()}


def atropos_change(start: np.ndarray, other: np.ndarray, mask: np.ndarray, labels: np.ndarray,
                   regions: dict[str, list[int]], zooms, *, start_posteriors=None) -> dict[str, float]:
    """Fractional volume change of each region from ``start`` to ``other`` by Atropos.

    Both images are segmented inside ``mask`` (the starting scan's brain mask, dilated by
    one voxel so tissue lost at the edge becomes CSF, not background). A ventricle's
    region is its atlas label grown by two voxels, since a growing ventricle leaves it. Pass the starting
    scan's ``start_posteriors`` (:func:`tissue_posteriors`) to reuse them across methods.
    """
    _check(start, other, labels)
    masks = region_masks(labels, regions)
    if np.array_equal(start, other):
        return {name: 0.0 for name in masks}
    voxel = float(np.prod(zooms))
    mask = dilated(mask)
    # a growing ventricle leaves its atlas label: count its CSF within 2 voxels of it
    masks = {name: (dilated(dilated(m)) & mask) if "Ventricle" in name else m for name, m in masks.items()}
    if start_posteriors is None:
        start_posteriors = tissue_posteriors(start, mask, zooms)
    a = tissue_volumes(start_posteriors, masks, voxel)
    try:
        b = tissue_volumes(tissue_posteriors(other, mask, zooms), masks, voxel)
    except MeasurementError as err:  # e.g. a generated image Atropos cannot segment: no measurement
        LOG.warning("%s: the change is not measured (NaN)", err)
        return {name: float("nan") for name in masks}
    return {name: (b[name] / a[name] - 1.0) if a[name] > 0 else float("nan") for name in masks}


def dilated(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one voxel (6-neighbourhood)."""
    from scipy import ndimage

    return ndimage.binary_dilation(np.asarray(mask, bool))


def measure_change(method: str, start: np.ndarray, other: np.ndarray, mask: np.ndarray,
                   labels: np.ndarray, regions: dict[str, list[int]], zooms, **kwargs) -> dict[str, float]:
    """:func:`tbm_change` (``"tbm"``) or :func:`atropos_change` (``"atropos"``)."""
    if method == "tbm":
        return tbm_change(start, other, labels, regions, zooms, mask=mask, **kwargs)
    if method == "atropos":
        return atropos_change(start, other, mask, labels, regions, zooms, **kwargs)
    raise ValueError(f"unknown measurement {method!r}; choose one of {', '.join(MEASUREMENTS)}")
