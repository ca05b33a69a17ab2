"""Three orthogonal slices of T1w images, side by side, as a PNG."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def orthogonal_slices(img: nib.spatialimages.SpatialImage) -> list[np.ndarray]:
    """Sagittal, coronal and axial slices through the centre of the image, in RAS+.

    Each slice is 2D, oriented for display (rows top to bottom = superior to inferior
    or anterior to posterior), with the voxel aspect ratio preserved by the caller.
    """
    ras = nib.as_closest_canonical(img)
    data = np.asarray(ras.dataobj, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"expected a 3D image, got shape {data.shape}")
    ci, cj, ck = (s // 2 for s in data.shape)
    return [np.rot90(data[ci, :, :]), np.rot90(data[:, cj, :]), np.rot90(data[:, :, ck])]


def save_orthogonal_png(images: list, titles: list[str], out: Path) -> Path:
    """One row of three orthogonal slices per image, grey scale, to ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(images), 3, figsize=(9, 3.2 * len(images)), squeeze=False)
    for row, (img, title) in enumerate(zip(images, titles)):
        img = nib.load(img) if isinstance(img, (str, Path)) else img
        zooms = nib.as_closest_canonical(img).header.get_zooms()[:3]
        slices = orthogonal_slices(img)
        vmax = np.percentile(np.concatenate([s.ravel() for s in slices]), 99.5)
        aspects = [zooms[2] / zooms[1], zooms[2] / zooms[0], zooms[1] / zooms[0]]
        for col, (sl, aspect, name) in enumerate(zip(slices, aspects, ("sagittal", "coronal", "axial"))):
            ax = axes[row, col]
            ax.imshow(sl, cmap="gray", vmin=0, vmax=vmax, aspect=aspect, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(f"{title}: {name}" if col == 1 else name, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
