"""Synthetic head anatomy for the demo dataset: plain functions on arrays and affines.

A subject is the ``MNI152NLin2009aSym`` template brain under a smooth random warp,
wrapped in non-brain tissue (extra-cerebral CSF, skull with marrow, scalp fat and skin,
neck with a spinal cord, eyes in orbital fat). Atrophy is a smooth deformation whose
displacement moves each region's boundary along the gradient of its smoothed mask, so
regions shrink (or ventricles grow) by an amount calibrated to a target volume change.

All coordinates are world millimetres (RAS). "Template space" is the template's world
frame; the head is built on a grid of that frame extended to hold scalp and neck.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Nominal annual fractional volume change per region kind and diagnosis.
#: Values follow the longitudinal MRI literature (ADNI: hippocampus about -1 %/y in CN,
#: -3 %/y in MCI, -4.5 %/y in AD; ventricles +2.5, +5, +8 %/y; whole brain -0.3 to -1.5 %/y).
ANNUAL_RATES: dict[str, dict[str, float]] = {
    "Hippocampus": {"CN": -0.010, "MCI": -0.028, "AD": -0.045},
    "Amygdala": {"CN": -0.010, "MCI": -0.025, "AD": -0.045},
    "Entorhinal": {"CN": -0.012, "MCI": -0.030, "AD": -0.055},
    "Temporal": {"CN": -0.005, "MCI": -0.012, "AD": -0.025},
    "Ventricle": {"CN": 0.025, "MCI": 0.050, "AD": 0.080},
    "Precuneus": {"CN": -0.006, "MCI": -0.015, "AD": -0.030},
    "PosteriorCingulate": {"CN": -0.006, "MCI": -0.014, "AD": -0.028},
    "Brain": {"CN": -0.003, "MCI": -0.008, "AD": -0.015},
}

#: T1w intensities of the non-brain tissues, relative to white matter = 1.
TISSUE_T1 = {"csf": 0.12, "bone": 0.04, "marrow": 0.45, "fat": 0.88, "skin": 0.45,
             "muscle": 0.40, "vitreous": 0.07, "cord": 0.62}


def region_kind(region: str) -> str:
    """'Left_Hippocampus' -> 'Hippocampus', 'Third_Ventricle' -> 'Ventricle'."""
    return region.split("_", 1)[1]


@dataclass(frozen=True)
class Grid:
    """A voxel grid: shape and voxel-to-world affine (4 x 4)."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def zooms(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    def world_coords(self) -> np.ndarray:
        """World coordinates (mm) of every voxel centre, shape (3, *shape), float32."""
        ijk = np.indices(self.shape, dtype=np.float32).reshape(3, -1)
        xyz = self.affine[:3, :3].astype(np.float32) @ ijk + self.affine[:3, 3:4].astype(np.float32)
        return xyz.reshape((3, *self.shape))


def random_smooth_field(shape, spacing_vox: float, amplitude: float, rng) -> np.ndarray:
    """Smooth random 3-vector field, shape (3, *shape), max norm ``amplitude``.

    White noise on a coarse lattice (one node per ``spacing_vox`` voxels) smoothed and
    interpolated with cubic splines, so its wavelength is about ``2 * spacing_vox``.
    """
    coarse = tuple(int(np.ceil(s / spacing_vox)) + 3 for s in shape)
    noise = rng.standard_normal((3, *coarse))
    field = np.empty((3, *shape), np.float32)
    for k in range(3):
        smooth = ndimage.gaussian_filter(noise[k], 1.0, mode="nearest")
        # cubic-spline upsampling of the lattice's interior onto the grid
        step = [(c - 3) / max(s - 1, 1) for c, s in zip(coarse, shape)]
        field[k] = ndimage.affine_transform(smooth, np.diag(step), offset=1.0, output_shape=shape,
                                            order=3, mode="nearest")
    norm = np.sqrt((field ** 2).sum(axis=0)).max()
    return field * np.float32(amplitude / max(norm, 1e-6))


def remove_affine_part(field: np.ndarray, mask: np.ndarray, step: int = 3) -> np.ndarray:
    """``field`` minus its least-squares affine fit over ``mask`` (every ``step``-th voxel).

    A subject's anatomy then differs from the template by a purely non-linear warp, so
    the head pose is the whole of the true native-to-template affine.
    """
    idx = np.argwhere(mask[::step, ::step, ::step]) * step
    design = np.column_stack([idx, np.ones(len(idx))])
    values = field[(slice(None), *idx.T)].T  # (n, 3)
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)  # (4, 3)
    grid = np.indices(field.shape[1:], dtype=np.float32)
    fitted = np.tensordot(coef[:3].T.astype(np.float32), grid, axes=1) + coef[3][:, None, None, None]
    return (field - fitted).astype(np.float32)


def warp(volume: np.ndarray, displacement_vox: np.ndarray, order: int = 1,
         cval: float = 0.0) -> np.ndarray:
    """Pull-back warp on one grid: ``out[x] = volume[x + displacement_vox[:, x]]``."""
    coords = np.indices(volume.shape, dtype=np.float32)
    coords += displacement_vox
    return ndimage.map_coordinates(volume, coords, order=order, mode="constant",
                                   cval=cval, prefilter=order > 1).astype(np.float32, copy=False)


@dataclass
class RegionField:
    """Unit displacement field of one region inside its bounding box (voxel units)."""

    name: str
    box: tuple[slice, slice, slice]
    field: np.ndarray  # (3, *box shape), voxels per unit coefficient
    gain: float  # fractional volume change per unit coefficient (first order)


def region_field(mask: np.ndarray, name: str, sigma_vox: float) -> RegionField:
    """Boundary-normal displacement of a region, calibrated on its own volume.

    The displacement is ``-grad(G_sigma * mask)`` scaled to a maximum of one voxel; a
    positive coefficient samples away from the region, so the region shrinks. ``gain``
    is the measured fractional volume change for a coefficient of 0.5 voxel, divided by
    0.5 (used to turn a target volume change into a coefficient).
    """
    pad = int(np.ceil(4 * sigma_vox)) + 2
    idx = np.nonzero(mask)
    box = tuple(slice(max(int(i.min()) - pad, 0), min(int(i.max()) + pad + 1, s))
                for i, s in zip(idx, mask.shape))
    sub = mask[box].astype(np.float32)
    smooth = ndimage.gaussian_filter(sub, sigma_vox)
    grad = np.stack(np.gradient(smooth))
    peak = np.sqrt((grad ** 2).sum(axis=0)).max()
    field = -grad / np.float32(max(peak, 1e-6))
    probe = 0.5
    shrunk = warp(sub, probe * field, order=1)
    gain = (shrunk.sum() / max(sub.sum(), 1.0) - 1.0) / probe
    return RegionField(name, box, field.astype(np.float32), float(gain))


def coefficient_for_change(change: float, gain: float) -> float:
    """Field coefficient that changes a region's volume by the fraction ``change``."""
    if gain == 0.0:
        return 0.0
    return change / gain


def atrophy_displacement(shape, fields: list[RegionField], changes: dict[str, float]) -> np.ndarray:
    """Sum of region fields, each scaled to its target fractional volume change.

    Returns a (3, *shape) float32 displacement in voxels (pull-back convention).
    """
    disp = np.zeros((3, *shape), np.float32)
    for rf in fields:
        coef = coefficient_for_change(changes.get(rf.name, 0.0), rf.gain)
        if coef:
            disp[(slice(None), *rf.box)] += np.float32(coef) * rf.field
    return disp


def soft_volume(mask: np.ndarray, box, displacement: np.ndarray, voxel_mm3: float) -> float:
    """Volume (mm^3) of a binary mask after a pull-back warp, with partial voxels."""
    sub = mask[box].astype(np.float32)
    moved = warp(sub, displacement[(slice(None), *box)], order=1)
    return float(moved.sum() * voxel_mm3)


def build_head(brain_mask: np.ndarray, zooms: np.ndarray, grid: Grid, rng) -> np.ndarray:
    """Non-brain tissue intensities around a brain, on ``grid`` (the head grid).

    ``brain_mask`` is the subject's baseline brain on the same grid. Returns an
    intensity map that is CSF inside the intracranial envelope, then skull (bone with
    marrow), scalp (fat, skin), plus neck, spinal cord and eyes; air is 0.
    """
    vox = float(zooms.mean())
    closed = ndimage.binary_closing(brain_mask, iterations=max(1, int(round(4 / vox))))
    envelope = ndimage.gaussian_filter(closed.astype(np.float32), 3.0 / vox) > 0.25
    envelope |= closed
    dist = ndimage.distance_transform_edt(~envelope, sampling=zooms).astype(np.float32)
    t_csf = rng.uniform(1.0, 2.0)
    t_skull = rng.uniform(5.0, 7.5)
    t_fat = rng.uniform(3.0, 5.0)
    t_skin = rng.uniform(1.5, 2.5)
    head = np.zeros(grid.shape, np.float32)
    head[envelope] = TISSUE_T1["csf"]
    layers = [(0.0, t_csf, "csf"), (t_csf, t_csf + t_skull, "bone"),
              (t_csf + t_skull, t_csf + t_skull + t_fat, "fat"),
              (t_csf + t_skull + t_fat, t_csf + t_skull + t_fat + t_skin, "skin")]
    for lo, hi, tissue in layers:
        head[(dist > lo) & (dist <= hi)] = TISSUE_T1[tissue]
    marrow = (dist > t_csf + 0.35 * t_skull) & (dist <= t_csf + 0.65 * t_skull)
    head[marrow] = TISSUE_T1["marrow"]
    outer = t_csf + t_skull + t_fat + t_skin

    xyz = grid.world_coords()
    # neck: an elliptic cylinder of muscle in a fat ring, below the skull base
    lowest = np.nonzero(brain_mask.any(axis=(0, 1)))[0].min()
    z_base = float(grid.affine[2, 2] * lowest + grid.affine[2, 3])
    cy = float(xyz[1][brain_mask].mean()) - 10.0
    r_neck = ((xyz[0] / 55.0) ** 2 + ((xyz[1] - cy) / 50.0) ** 2)
    below = xyz[2] < z_base + 25.0
    neck = below & (r_neck <= 1.0) & (dist > t_csf + t_skull)
    head[neck] = TISSUE_T1["muscle"]
    ring = below & (r_neck > 0.78) & (r_neck <= 1.0) & (dist > t_csf + t_skull)
    head[ring] = TISSUE_T1["fat"]
    # spinal cord in a CSF sheath inside a bony canal, continuing the brainstem
    low_slab = brain_mask[:, :, lowest:lowest + max(1, int(round(4 / vox)))]
    ci, cj, _ = [float(np.mean(a)) for a in np.nonzero(low_slab)]
    cx = float(grid.affine[0, 0] * ci + grid.affine[0, 3])
    cyc = float(grid.affine[1, 1] * cj + grid.affine[1, 3])
    r_cord = np.sqrt((xyz[0] - cx) ** 2 + (xyz[1] - cyc) ** 2)
    spine = (xyz[2] < z_base + 2.0) & ~envelope
    head[spine & (r_cord <= 14.0)] = TISSUE_T1["bone"]
    head[spine & (r_cord <= 9.0)] = TISSUE_T1["csf"]
    head[spine & (r_cord <= 6.0)] = TISSUE_T1["cord"]
    # eyes: vitreous spheres in orbital fat, in front of and below the frontal lobes
    for side in (-1.0, 1.0):
        centre = np.array([side * 32.0, 52.0, -38.0], np.float32)
        r = np.sqrt(((xyz - centre[:, None, None, None]) ** 2).sum(axis=0))
        free = ~envelope & (dist > t_csf + 1.0)
        head[free & (r <= 17.0)] = TISSUE_T1["fat"]
        head[free & (r <= 12.0)] = TISSUE_T1["vitreous"]
    # tissue texture (scanner-independent anatomy variation) and partial volumes
    tissue = (head > 0) & ~envelope
    texture = 1.0 + 0.06 * ndimage.gaussian_filter(rng.standard_normal(grid.shape).astype(np.float32),
                                                   2.0 / vox) / 0.1
    head[tissue] *= np.clip(texture[tissue], 0.7, 1.3)
    head[dist > outer + 0.5] = np.where(neck | ring, head, 0.0)[dist > outer + 0.5]
    return ndimage.gaussian_filter(head, 0.6 / vox)


def bias_field(shape, rng, max_change: float = 0.2) -> np.ndarray:
    """Smooth multiplicative field over a grid, values within [1 - c, 1 + c].

    A random polynomial of degree 3 in the normalised voxel coordinates, exponentiated
    and rescaled so that its largest deviation from 1 is ``c``, drawn in
    [0.5 * max_change, max_change].
    """
    axes = [np.linspace(-1, 1, s, dtype=np.float32) for s in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    log_b = np.zeros(shape, np.float32)
    for i in range(4):
        for j in range(4 - i):
            for k in range(4 - i - j):
                if i + j + k == 0:
                    continue
                log_b = log_b + np.float32(rng.normal(0, 1.0 / (i + j + k))) * x ** i * y ** j * z ** k
    log_b -= np.float32(0.5 * (log_b.max() + log_b.min()))
    target = np.log1p(rng.uniform(0.5, 1.0) * max_change)
    log_b *= np.float32(target / max(float(np.abs(log_b).max()), 1e-6))
    return np.exp(log_b)


def rician(signal: np.ndarray, sigma: float, rng) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise of s.d. ``sigma`` per channel."""
    real = signal + rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    imag = rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    return np.sqrt(real * real + imag * imag)


def rotation(angles_deg) -> np.ndarray:
    """3 x 3 rotation from angles (degrees) about x, y and z, applied in that order."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def resample_to_grid(volume: np.ndarray, source: Grid, target: Grid, target_to_source_world,
                     order: int = 1, cval: float = 0.0) -> np.ndarray:
    """Sample ``volume`` (on ``source``) at ``target``'s voxels.

    ``target_to_source_world`` (4 x 4) maps target world mm to source world mm.
    """
    vox = np.linalg.inv(source.affine) @ target_to_source_world @ target.affine
    return ndimage.affine_transform(volume, vox[:3, :3], offset=vox[:3, 3], output_shape=target.shape,
                                    order=order, mode="constant", cval=cval, prefilter=False,
                                    output=np.float32)
