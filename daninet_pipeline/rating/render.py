"""Pre-rendered slices of a trial's images: one PNG strip per image and view.

Every image of a trial is cut on the same slices, cropped to the same box (the real
follow-up's brain, padded) and shown with the same intensity window (the follow-up's
brain percentiles), so only the images differ. A strip stacks a view's slices top to
bottom; the page shows one slice at a time. PNGs are written with Pillow and carry no
text chunks (no file names, software or dates).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import RatingError

#: View name -> the RAS axis it cuts across.
VIEWS = {"axial": 2, "coronal": 1, "sagittal": 0}


def load_ras(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A 3D image as a float32 array in RAS+ voxel order, with its voxel sizes (mm)."""
    try:
        img = nib.as_closest_canonical(nib.load(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as err:  # nibabel raises several types for an unreadable file
        raise RatingError(f"{path}: cannot be read as a NIfTI image ({err})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise RatingError(f"{path}: a 3D image is needed, this one has shape {data.shape}")
    return np.nan_to_num(data), tuple(float(z) for z in img.header.get_zooms()[:3])


@dataclass(frozen=True)
class Layout:
    """Where and how a trial's images are cut: voxel box ``(lo, hi)`` per RAS axis,
    slice indices per view, intensity window (image units), voxel sizes (mm)."""

    box: tuple[tuple[int, int], ...]
    slices: dict[str, list[int]]
    window: tuple[float, float]
    zooms: tuple[float, float, float]


def trial_layout(followup: np.ndarray, mask: np.ndarray | None, zooms, *, n_slices: int = 24,
                 pad: int = 2) -> Layout:
    """The layout of a trial from its real follow-up (``followup``: X x Y x Z, RAS+).

    The box holds the brain (``mask``, or the non-zero voxels) plus ``pad`` voxels; up to
    ``n_slices`` evenly spaced slices per view are cut inside it; the window is the
    0.5th-99.5th percentile of the brain's intensities.
    """
    brain = (mask > 0) if mask is not None else (followup != 0)
    if brain.shape != followup.shape:
        raise RatingError(f"brain mask of shape {brain.shape} does not fit the follow-up {followup.shape}")
    if not brain.any():
        raise RatingError("the real follow-up has an empty brain")
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(brain.any(axis=other))
        box.append((max(int(idx[0]) - pad, 0), min(int(idx[-1]) + pad + 1, followup.shape[axis])))
    slices = {}
    for view, axis in VIEWS.items():
        lo, hi = box[axis]
        count = min(n_slices, hi - lo)
        # centres of `count` equal parts of the box (the brain's edges carry little)
        slices[view] = sorted({int(lo + (k + 0.5) * (hi - lo) / count) for k in range(count)})
    values = followup[brain]
    low, high = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if high <= low:
        high = low + 1.0
    return Layout(tuple(box), slices, (low, high), tuple(zooms))


def view_strip(data: np.ndarray, layout: Layout, view: str, *, scale: float = 1.0) -> np.ndarray:
    """The slices of one view stacked top to bottom: uint8, (n_slices * H, W), each slice
    resized by ``scale`` (<= 1: no more pixels than the page shows).

    Axial: anterior up; coronal and sagittal: superior up; the patient's right on the
    right (neurological convention) in axial and coronal views.
    """
    from PIL import Image

    (x0, x1), (y0, y1), (z0, z1) = layout.box
    low, high = layout.window
    frames = []
    for k in layout.slices[view]:
        if view == "axial":
            cut = data[x0:x1, y0:y1, k]
        elif view == "coronal":
            cut = data[x0:x1, k, z0:z1]
        else:
            cut = data[k, y0:y1, z0:z1]
        grey = np.round(np.clip((cut.T[::-1] - low) / (high - low), 0, 1) * 255).astype(np.uint8)
        if scale < 1:
            size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
            grey = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.LANCZOS))
        frames.append(grey)
    return np.concatenate(frames, axis=0)


def render_scale(layout: Layout, max_side: int) -> float:
    """The factor (<= 1) that brings the box's largest side down to ``max_side`` pixels."""
    return min(1.0, max_side / max(hi - lo for lo, hi in layout.box))


def pixel_aspect(layout: Layout, view: str) -> float:
    """Height / width of one pixel of a view, in mm (voxels need not be cubes)."""
    zx, zy, zz = layout.zooms
    return {"axial": zy / zx, "coronal": zz / zx, "sagittal": zz / zy}[view]


def save_png(array: np.ndarray, path: Path) -> None:
    """A uint8 grey image as a PNG with no metadata chunks."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(path, format="PNG", optimize=True)
