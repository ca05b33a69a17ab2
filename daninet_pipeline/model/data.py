"""Training data: axial slices of template-grid volumes in an on-disk, memory-mapped
slice store.

:func:`extract_slices` cuts a 3D volume (on the template grid) into square
``image_size x image_size`` slices (zero-padded to a square, then resampled);
:func:`assemble_volume` is its inverse. :class:`SliceStore` keeps every slice of every
training volume in one memory-mapped ``float16`` array on disk with an index table
(subject, session, age, diagnosis, slice), so an ADNI-sized set (10,000 volumes, a
million slices) trains without being held in memory.

Store layout (a directory)::

    meta.json      format, image size, slice axis and indices, volume shape and affine,
                   intensity scale
    slices.npy     (n_volumes * n_slices, S, S) float16, intensities in [0, 1]
    index.tsv      one row per slice: row, volume, subject, session, age, diagnosis,
                   slice, position
"""

from __future__ import annotations

import json
import logging
import mmap
import time
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from ..errors import ImageError

LOGGER = logging.getLogger(__name__)
STORE_FORMAT = 1


def _square_pad(shape2d):
    n = max(shape2d)
    return n, [((n - s) // 2, n - s - (n - s) // 2) for s in shape2d]


def extract_slices(volume, image_size: int, *, axis: int = 2, indices=None) -> np.ndarray:
    """Slices of a 3D volume as ``(n, image_size, image_size)`` float32.

    Each slice (the in-plane axes in their array order) is zero-padded, centred, to a
    square and resampled to ``image_size`` (bilinear, anti-aliased when shrinking).
    ``indices`` selects slices along ``axis`` (default: all).

    >>> vol = np.zeros((20, 30, 5), np.float32); vol[5:15, 5:25] = 1
    >>> s = extract_slices(vol, 16, indices=[1, 2])
    >>> s.shape, float(s[0, 8, 8]), float(s[0, 0, 8])
    ((2, 16, 16), 1.0, 0.0)
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ImageError(f"expected a 3D volume, got shape {vol.shape}")
    vol = np.moveaxis(vol, axis, 0)
    if indices is not None:
        vol = vol[np.asarray(indices, dtype=int)]
    n, pads = _square_pad(vol.shape[1:])
    t = torch.from_numpy(np.ascontiguousarray(vol))
    t = F.pad(t, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    if n != image_size:
        t = F.interpolate(t[:, None], size=(image_size, image_size), mode="bilinear",
                          align_corners=False, antialias=n > image_size)[:, 0]
    return t.numpy()


def assemble_volume(slices, shape, *, axis: int = 2, indices=None, base=None) -> np.ndarray:
    """Inverse of :func:`extract_slices`: put ``(n, S, S)`` slices back into a volume of
    ``shape``. Slices not in ``indices`` come from ``base`` (default zeros).

    >>> vol = np.random.default_rng(0).random((12, 10, 4)).astype(np.float32)
    >>> back = assemble_volume(extract_slices(vol, 12), vol.shape)
    >>> bool(np.allclose(back, vol, atol=1e-5))
    True
    """
    slices = torch.as_tensor(np.asarray(slices, dtype=np.float32))
    shape = tuple(int(s) for s in shape)
    inplane = [s for i, s in enumerate(shape) if i != axis]
    n, pads = _square_pad(inplane)
    if slices.shape[-1] != n:
        slices = F.interpolate(slices[:, None], size=(n, n), mode="bilinear", align_corners=False)[:, 0]
    slices = slices[:, pads[0][0]:pads[0][0] + inplane[0], pads[1][0]:pads[1][0] + inplane[1]]
    out = np.zeros(shape, np.float32) if base is None else np.array(base, dtype=np.float32, copy=True)
    out = np.moveaxis(out, axis, 0)  # view
    idx = np.arange(out.shape[0]) if indices is None else np.asarray(indices, dtype=int)
    out[idx] = slices.numpy()
    return np.moveaxis(out, 0, axis)


def brain_slice_indices(volume, *, axis: int = 2, fraction: float = 0.1) -> np.ndarray:
    """Indices of the slices whose non-zero area is at least ``fraction`` of the
    largest slice's (the slices worth training on)."""
    area = (np.moveaxis(np.asarray(volume), axis, 0) > 0).reshape(np.shape(volume)[axis], -1).sum(1)
    if area.max() == 0:
        raise ImageError("the volume has no non-zero voxel")
    return np.flatnonzero(area >= fraction * area.max())


def _load_volume(image):
    if isinstance(image, (str, Path)):
        img = nib.load(str(image))
        return np.asarray(img.dataobj, dtype=np.float32), img.affine
    if isinstance(image, nib.spatialimages.SpatialImage):
        return np.asarray(image.dataobj, dtype=np.float32), image.affine
    return np.asarray(image, dtype=np.float32), None


class SliceStore:
    """A memory-mapped store of training slices (see the module docstring).

    Open an existing store with ``SliceStore(root)``; build one with
    :meth:`SliceStore.build`.
    """

    def __init__(self, root):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.root} is not a slice store (no meta.json)")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != STORE_FORMAT:
            raise ImageError(f"{self.root}: slice store format {self.meta.get('format')} is not {STORE_FORMAT}")
        self.slices = np.load(self.root / "slices.npy", mmap_mode="r")
        try:  # training reads random rows: no read-ahead of neighbouring pages
            self.slices._mmap.madvise(mmap.MADV_RANDOM)
        except (AttributeError, OSError, ValueError):  # pragma: no cover - platform without madvise
            pass
        self.index = pd.read_csv(self.root / "index.tsv", sep="\t", dtype={"subject": str, "session": str,
                                                                          "diagnosis": str})

    def __len__(self):
        return len(self.index)

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def slice_indices(self) -> np.ndarray:
        return np.asarray(self.meta["slice_indices"], dtype=int)

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["volume_shape"])

    @property
    def affine(self) -> np.ndarray | None:
        aff = self.meta.get("affine")
        return None if aff is None else np.asarray(aff, dtype=float)

    def volumes(self) -> pd.DataFrame:
        """One row per volume: volume, subject, session, age, diagnosis."""
        cols = ["volume", "subject", "session", "age", "diagnosis"]
        return self.index[cols].drop_duplicates("volume").reset_index(drop=True)

    def read(self, rows) -> np.ndarray:
        """Slices ``rows`` as float32 ``(n, S, S)`` in [0, 1] (reads sorted rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), self.image_size, self.image_size), np.float32)
        out[order] = self.slices[rows[order]]
        return out

    def volume_slices(self, volume: int) -> np.ndarray:
        """All stored slices of one volume, float32 in [0, 1]."""
        n = len(self.slice_indices)
        return np.asarray(self.slices[volume * n:(volume + 1) * n], dtype=np.float32)

    @classmethod
    def build(cls, root, records: Sequence[dict], *, image_size: int = 128, axis: int = 2,
              slice_indices=None, brain_fraction: float = 0.1, intensity_max: float = 1.0,
              progress: bool = False) -> SliceStore:
        """Write a store from volumes on one template grid.

        ``records``: one dict per volume with ``image`` (a NIfTI path, a nibabel image or
        a 3D array), ``subject``, ``session``, ``age`` and ``diagnosis``. The slices kept
        are ``slice_indices`` or, by default, those of the first volume with at least
        ``brain_fraction`` of its largest brain area (:func:`brain_slice_indices`).
        Intensities are clipped to ``[0, intensity_max]`` and divided by it.
        """
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        if not len(records):
            raise ValueError("no volumes to store")
        t0 = time.perf_counter()
        first, affine = _load_volume(records[0]["image"])
        shape = first.shape
        if slice_indices is None:
            slice_indices = brain_slice_indices(first, axis=axis, fraction=brain_fraction)
        slice_indices = np.asarray(slice_indices, dtype=int)
        n_sl = len(slice_indices)
        total = n_sl * len(records)
        # the .npy header via open_memmap, then plain file writes: the slices never sit in
        # this process's memory (a writable memory map would count them as resident)
        header = np.lib.format.open_memmap(root / "slices.npy", mode="w+", dtype=np.float16,
                                           shape=(total, image_size, image_size))
        offset = header.offset
        del header
        fh = open(root / "slices.npy", "r+b")  # noqa: SIM115 - closed below
        rows = []
        iterator = enumerate(records)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(records), desc="slice store", unit="vol")
        depth = shape[axis]
        for v, rec in iterator:
            vol, aff = (first, affine) if v == 0 else _load_volume(rec["image"])
            if vol.shape != shape:
                raise ImageError(f"volume {v} ({rec.get('subject')}, {rec.get('session')}) has shape "
                                 f"{vol.shape}, not the store's {shape}: resample to the template grid")
            if affine is not None and aff is not None and not np.allclose(aff, affine, atol=1e-3):
                raise ImageError(f"volume {v} ({rec.get('subject')}, {rec.get('session')}) is not on the "
                                 "store's grid (affine differs)")
            sl = extract_slices(np.clip(vol, 0, intensity_max) / intensity_max, image_size, axis=axis,
                                indices=slice_indices)
            fh.seek(offset + v * n_sl * image_size * image_size * 2)
            fh.write(np.ascontiguousarray(np.clip(sl, 0, 1), dtype=np.float16).tobytes())
            for k, s in enumerate(slice_indices):
                rows.append((v * n_sl + k, v, str(rec["subject"]), str(rec["session"]), float(rec["age"]),
                             str(rec["diagnosis"]), int(s), s / max(depth - 1, 1)))
        fh.close()
        index = pd.DataFrame(rows, columns=["row", "volume", "subject", "session", "age", "diagnosis", "slice",
                                            "position"])
        index.to_csv(root / "index.tsv", sep="\t", index=False)
        meta = {
            "format": STORE_FORMAT,
            "image_size": int(image_size),
            "axis": int(axis),
            "slice_indices": slice_indices.tolist(),
            "volume_shape": [int(s) for s in shape],
            "affine": None if affine is None else np.asarray(affine).tolist(),
            "intensity_max": float(intensity_max),
            "n_volumes": len(records),
            "build_seconds": time.perf_counter() - t0,
        }
        (root / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        LOGGER.info("slice store %s: %d volumes, %d slices in %.1f s", root, len(records), total,
                    meta["build_seconds"])
        return cls(root)
