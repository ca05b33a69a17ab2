"""QC figure of the pre-processing: brain-mask outline (red) and template edges (cyan)
over the pre-processed image on the template grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np


def plot_preproc_qc(img: nib.spatialimages.SpatialImage, mask: nib.spatialimages.SpatialImage,
                    template: nib.spatialimages.SpatialImage, out_file: str, *,
                    title: str = "") -> str:
    """Write an SVG of 3 x 3 slices (sagittal, coronal, axial through the brain) with the
    brain-mask outline in red and the template's edges in cyan. Returns ``out_file``.

    ``img``, ``mask`` and ``template`` must share one grid (the template's).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.asarray(img.dataobj, dtype=np.float32)
    mdata = np.asarray(mask.dataobj) > 0
    tdata = np.asarray(template.dataobj, dtype=np.float32)
    if data.shape != mdata.shape or data.shape != tdata.shape:
        raise ValueError("image, mask and template must be on the same grid")
    from skimage.feature import canny

    vmax = float(np.percentile(data[mdata], 99.5)) if mdata.any() else float(data.max() or 1)
    fig, axes = plt.subplots(3, 3, figsize=(9, 9.5), facecolor="black")
    for row, axis in enumerate((0, 1, 2)):
        extent = np.nonzero(np.asarray(tdata > 0.05).any(axis=tuple(a for a in range(3) if a != axis)))[0]
        for col, frac in enumerate((0.35, 0.5, 0.65)):
            k = int(extent.min() + frac * (extent.max() - extent.min())) if extent.size else data.shape[axis] // 2
            take = lambda v: np.rot90(np.take(v, k, axis=axis))  # noqa: E731
            ax = axes[row, col]
            ax.imshow(take(data), cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
            edges = canny(take(tdata), sigma=1.5, low_threshold=0.08, high_threshold=0.2)
            overlay = np.zeros((*edges.shape, 4), np.float32)
            overlay[edges] = (0.0, 1.0, 1.0, 0.8)
            ax.imshow(overlay, interpolation="nearest")
            if take(mdata).any():
                ax.contour(take(mdata).astype(float), levels=[0.5], colors="red", linewidths=0.8)
            ax.set_axis_off()
    fig.suptitle(title or "brain mask (red), template edges (cyan)", color="white")
    fig.tight_layout()
    fig.savefig(out_file, format="svg" if out_file.endswith(".svg") else None,
                facecolor="black", dpi=100)
    plt.close(fig)
    return out_file
