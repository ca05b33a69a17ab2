"""Training data: axial slices of template-grid volumes in an on-disk, memory-mapped
slice store, and the batches a training step reads from it.

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

Intensities: a pre-processed volume (99th percentile in the brain = 1, clipped to
``[0, 1.5]``) is divided by ``intensity_max`` into ``[0, 1]`` (the store's scale) and
mapped to ``[-1, 1]`` for the networks; :func:`volume_slices` and
:func:`slice_positions` are the one place where this and the slice position are
computed (store, transfer and simulator use them).
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


def slice_positions(indices, depth: int) -> np.ndarray:
    """Position of each slice index along an axis of ``depth`` slices, in ``[0, 1]``."""
    return (np.asarray(indices, dtype=np.float64) / max(depth - 1, 1)).astype(np.float32)


def volume_slices(volume, image_size: int, *, axis: int, indices, intensity_max: float) -> np.ndarray:
    """The slices ``indices`` of a pre-processed volume on the store's scale: intensities
    clipped to ``[0, intensity_max]`` and divided by it, ``(n, S, S)`` float32 in [0, 1]."""
    vol = np.clip(np.asarray(volume, dtype=np.float32), 0, intensity_max) / intensity_max
    return np.clip(extract_slices(vol, image_size, axis=axis, indices=indices), 0, 1)


def to_network_range(x):
    """Store scale ``[0, 1]`` -> network range ``[-1, 1]``."""
    return x * 2 - 1


def from_network_range(x):
    """Network range ``[-1, 1]`` -> store scale ``[0, 1]``."""
    return (x + 1) / 2


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
              slice_indices=None, brain_fraction: float = 0.1, intensity_max: float = 1.5,
              provenance: dict | None = None, progress: bool = False) -> SliceStore:
        """Write a store from volumes on one template grid.

        ``records``: one dict per volume with ``image`` (a NIfTI path, a nibabel image or
        a 3D array), ``subject``, ``session``, ``age`` and ``diagnosis``. The slices kept
        are ``slice_indices`` or, by default, those of the first volume with at least
        ``brain_fraction`` of its largest brain area (:func:`brain_slice_indices`).
        Intensities are clipped to ``[0, intensity_max]`` and divided by it.
        ``provenance``: what made the volumes (template, intensity normalisation,
        pre-processing version), kept in ``meta.json`` and in the model file, so that a
        model is not applied to data pre-processed otherwise.
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
            sl = volume_slices(vol, image_size, axis=axis, indices=slice_indices, intensity_max=intensity_max)
            fh.seek(offset + v * n_sl * image_size * image_size * 2)
            fh.write(np.ascontiguousarray(sl, dtype=np.float16).tobytes())
            for k, (s, pos) in enumerate(zip(slice_indices, slice_positions(slice_indices, depth))):
                rows.append((v * n_sl + k, v, str(rec["subject"]), str(rec["session"]), float(rec["age"]),
                             str(rec["diagnosis"]), int(s), float(pos)))
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
            "provenance": dict(provenance or {}),
            "n_volumes": len(records),
            "build_seconds": time.perf_counter() - t0,
        }
        (root / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        LOGGER.info("slice store %s: %d volumes, %d slices in %.1f s", root, len(records), total,
                    meta["build_seconds"])
        return cls(root)


# --------------------------------------------------------------------------------------
# batches of a training step: every random choice is a function of (seed, step)
# --------------------------------------------------------------------------------------
def sample_rows(n_rows: int, batch: int, seed: int, step: int) -> np.ndarray:
    """Rows of the global batch of ``step``: uniform with replacement, a pure function
    of ``(seed, step)``."""
    return np.random.default_rng([seed, step]).integers(0, n_rows, size=batch)


def prior_noise(batch: int, z_dim: int, seed: int, step: int) -> torch.Tensor:
    """Samples ``z* ~ U[-1, 1]`` ``(batch, z_dim)`` of the global batch of ``step`` (CPU)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step) + 7)
    return torch.rand(batch, z_dim, generator=g) * 2 - 1


def wrong_age_offsets(batch: int, n_groups: int, seed: int, step: int) -> np.ndarray:
    """Offsets in ``1 .. A-1``: ``(a + offset) % A`` is an age group other than ``a``, the
    wrong condition D_b sees a real slice with."""
    return np.random.default_rng([seed, step, 2]).integers(1, max(n_groups, 2), size=batch)


class SliceSource:
    """Slices plus the per-row labels a training step needs.

    ``read(rows)`` returns float32 slices ``(n, S, S)`` on the store's scale [0, 1];
    ``ages``, ``diagnoses`` (labels) and ``positions`` are per row; ``slice_k`` is each
    row's index into the store's slice list (for the region masks).
    """

    def __init__(self, read, ages, diagnoses, positions, slice_k, cfg):
        self.read = read
        self.n = len(ages)
        self.n_groups = cfg.n_groups
        ages = np.asarray(ages, dtype=float)
        self.group = cfg.age_group(ages)
        self.lo, self.hi, self.alpha = cfg.age_interpolation(ages)
        labels = {lab: cfg.diagnosis_index(lab) for lab in dict.fromkeys(diagnoses)}
        self.dx = np.array([labels[d] for d in diagnoses], dtype=np.int64)
        self.pos = np.asarray(positions, dtype=np.float32)
        self.slice_k = np.asarray(slice_k, dtype=np.int64)

    @classmethod
    def from_store(cls, store: SliceStore, cfg) -> SliceSource:
        idx = store.index
        n_sl = len(store.slice_indices)
        return cls(store.read, idx["age"].to_numpy(), idx["diagnosis"].tolist(), idx["position"].to_numpy(),
                   idx["row"].to_numpy() % n_sl, cfg)

    @classmethod
    def from_arrays(cls, slices: np.ndarray, ages, diagnoses, positions, slice_k, cfg) -> SliceSource:
        arr = np.asarray(slices, dtype=np.float32)
        return cls(lambda rows: arr[np.asarray(rows)], ages, diagnoses, positions, slice_k, cfg)

    def batch(self, rows, wrong_offsets=None) -> dict:
        """The tensors of ``rows`` (CPU): ``x`` ``(B, 1, S, S)`` in [-1, 1]; ``a`` (age
        group), ``lo``/``hi``/``alpha`` (L_def's two groups), ``d``, ``pos``,
        ``slice_k``, and ``a_wrong`` (another age group, from ``wrong_offsets``)."""
        rows = np.asarray(rows)
        x = to_network_range(torch.from_numpy(self.read(rows)).unsqueeze(1))
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a[rows]))  # noqa: E731
        out = {"x": x, "a": t(self.group), "lo": t(self.lo), "hi": t(self.hi), "alpha": t(self.alpha),
               "d": t(self.dx), "pos": t(self.pos), "slice_k": t(self.slice_k)}
        if wrong_offsets is not None:
            out["a_wrong"] = (out["a"] + torch.as_tensor(np.asarray(wrong_offsets), dtype=torch.long)) % self.n_groups
        return out

    def step_batch(self, step: int, batch_size: int, seed: int, z_dim: int, *, rank: int = 0,
                   world: int = 1) -> tuple[dict, torch.Tensor]:
        """This process's share of the global batch of ``step`` and its prior samples:
        a pure function of ``(seed, step, rank, world)``."""
        B = batch_size
        share = slice(rank * B, (rank + 1) * B)
        rows = sample_rows(self.n, B * world, seed, step)[share]
        offsets = wrong_age_offsets(B * world, self.n_groups, seed, step)[share]
        return self.batch(rows, offsets), prior_noise(B * world, z_dim, seed, step)[share]


class StepBatches(torch.utils.data.Dataset):
    """Item ``step``: this process's ``(batch, prior noise)`` of that step
    (:meth:`SliceSource.step_batch`), so that batches stay a function of ``(seed, step,
    rank)`` whichever worker process reads them."""

    def __init__(self, source: SliceSource, batch_size: int, seed: int, z_dim: int, *, rank: int = 0,
                 world: int = 1):
        self.source, self.batch_size, self.seed, self.z_dim = source, batch_size, seed, z_dim
        self.rank, self.world = rank, world

    def __len__(self):
        return 2**62

    def __getitem__(self, step):
        return self.source.step_batch(int(step), self.batch_size, self.seed, self.z_dim, rank=self.rank,
                                      world=self.world)


def step_loader(source: SliceSource, steps, batch_size: int, seed: int, z_dim: int, *, rank: int = 0,
                world: int = 1, workers: int = 0, pin_memory: bool = False, prefetch: int = 4):
    """The batches of ``steps`` (a ``range`` or sequence of step numbers), read by ``workers``
    processes ahead of the training step (a torch ``DataLoader`` over the memory map;
    ``pin_memory`` for a CUDA device). ``workers=0`` reads in this process."""
    return torch.utils.data.DataLoader(
        StepBatches(source, batch_size, seed, z_dim, rank=rank, world=world), batch_size=None,
        sampler=steps, num_workers=workers, pin_memory=pin_memory,
        prefetch_factor=prefetch if workers else None)
