"""Simulate a brain at other ages with a trained DaniNet model file.

``Simulator.load(path).simulate(volume, age, diagnosis, target_ages)`` cuts the volume
(on the template grid the model was trained on) into slices, encodes them once,
generates every needed age group in batches, and reassembles one 3D volume per target
age on the same grid. A target age between two age-group centres is the same mix
``alpha * g_lo + (1 - alpha) * g_hi`` that L_def trains.

Through-plane consistency: the network is 2D, so independently generated neighbouring
slices can differ (seams). The generated stack is blended along the slice axis with a
Gaussian of ``blend_sigma`` slices (the authors averaged neighbouring slices' models
with Gaussian weights), in ``mode="direct"`` on the output and in ``mode="change"`` on
the change ``g_t - g_own``, which is then added to the input.

Voxels outside the input's support (value <= 0) stay 0; slices without brain are copied.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from ..errors import ImageError
from .data import assemble_volume, extract_slices
from .train import DaniNetModel

LOGGER = logging.getLogger(__name__)


class Simulator:
    """A trained model ready to simulate (see the module docstring)."""

    def __init__(self, model: DaniNetModel, info: dict | None = None):
        self.model = model
        self.cfg = model.cfg
        self.info = info or {}
        model.train_mode(False)

    @classmethod
    def load(cls, path, *, device: str | None = None) -> Simulator:
        """Load a model file; :class:`~daninet_pipeline.errors.ModelFileError` if it is
        corrupt or incompatible."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model, state = DaniNetModel.from_model_file(path, device=device)
        info = {k: state.get(k) for k in ("package_version", "format_version", "created", "bin_edges", "diagnoses",
                                          "grid", "training")}
        info["path"] = str(path)
        return cls(model, info)

    @property
    def grid(self) -> dict:
        return self.info.get("grid") or {}

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        return torch.cat([self.model.E(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def generate_group(self, z, x, group: int, d: int, pos, batch_size: int) -> torch.Tensor:
        out = []
        for i in range(0, len(z), batch_size):
            zz = z[i:i + batch_size]
            dd = torch.full((len(zz),), d, dtype=torch.long, device=z.device)
            with self.model._autocast():
                out.append(self.model.generate(zz, [group], dd, pos[i:i + batch_size], x[i:i + batch_size])[:, 0]
                           .float())
        return torch.cat(out)

    def simulate(self, volume, age: float, diagnosis: str, target_ages, *, batch_size: int = 64,
                 mode: str = "direct", blend_sigma: float = 1.0):
        """Simulated volumes, one per target age.

        ``volume``: a 3D array, a nibabel image or a NIfTI path, on the template grid,
        pre-processed like the training data. ``age`` and ``diagnosis`` are the scan's.
        Returns a list of float32 arrays (or of nibabel images with the input's affine
        when the input is an image or a path), in the input's intensity scale.
        ``mode``: ``"direct"`` (the generator's image, as the paper) or ``"change"``
        (the input plus the generated change from its own age).
        """
        if mode not in ("direct", "change"):
            raise ValueError(f"mode must be 'direct' or 'change', not {mode!r}")
        cfg = self.cfg
        affine = None
        if isinstance(volume, (str, Path)):
            volume = nib.load(str(volume))
        if isinstance(volume, nib.spatialimages.SpatialImage):
            affine = volume.affine
            vol = np.asarray(volume.dataobj, dtype=np.float32)
        else:
            vol = np.asarray(volume, dtype=np.float32)
        if vol.ndim != 3:
            raise ImageError(f"expected a 3D volume, got shape {vol.shape}")
        shape = tuple(self.grid.get("volume_shape") or ())
        if shape and tuple(vol.shape) != shape:
            LOGGER.warning("volume shape %s differs from the training grid %s", vol.shape, shape)
        target_ages = np.atleast_1d(np.asarray(target_ages, dtype=float))
        imax = float(self.grid.get("intensity_max", cfg.intensity_max))
        axis = cfg.slice_axis
        depth = vol.shape[axis]
        area = (np.moveaxis(vol, axis, 0) > 0).reshape(depth, -1).sum(1)
        idx = np.flatnonzero(area > 0)
        if len(idx) == 0:
            raise ImageError("the volume has no brain voxel (all <= 0)")
        dev = self.model.device
        x = torch.from_numpy(extract_slices(np.clip(vol, 0, imax) / imax, cfg.image_size, axis=axis, indices=idx))
        x = (x.unsqueeze(1) * 2 - 1).to(dev)
        pos = torch.as_tensor(idx / max(depth - 1, 1), dtype=torch.float32, device=dev)
        d = cfg.diagnosis_index(diagnosis)
        z = self.encode(x, batch_size)
        cache: dict[int, torch.Tensor] = {}

        def group(g):
            if g not in cache:
                cache[g] = self.generate_group(z, x, int(g), d, pos, batch_size)
            return cache[g]

        def at_age(t):
            lo, hi, alpha = (v[0] for v in self.cfg.age_interpolation([t]))
            out = float(alpha) * group(lo)
            if alpha < 1:
                out = out + (1 - float(alpha)) * group(hi)
            return out

        own = at_age(age) if mode == "change" else None
        outside = vol <= 0
        results = []
        for t in target_ages:
            g = at_age(t)
            stack = g - own if mode == "change" else g
            stack = stack.cpu().numpy()
            if blend_sigma > 0 and len(idx) > 1:
                stack = gaussian_filter1d(stack, blend_sigma, axis=0, mode="nearest")
            if mode == "change":
                stack = x[:, 0].cpu().numpy() + stack
            sl = np.clip((stack + 1) / 2, 0, 1) * imax
            out = assemble_volume(sl, vol.shape, axis=axis, indices=idx, base=vol)
            if mode == "change":
                # keep the input's full resolution: add the up-sampled change instead
                change = assemble_volume(sl - (x[:, 0].cpu().numpy() + 1) / 2 * imax, vol.shape, axis=axis,
                                         indices=idx)
                out = np.clip(vol + change, 0, None)
            out[outside] = 0
            results.append(nib.Nifti1Image(out, affine) if affine is not None else out)
        return results
