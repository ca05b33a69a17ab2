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

Only the slices the model was trained on are generated: those of the training grid
(when the volume is on it) or, otherwise, those with at least ``brain_fraction`` of the
largest slice's brain area; the others, and voxels outside the input's support
(value <= 0), are copied from the input. Intensities keep the normalised range
``[0, intensity_max]`` (1.5: the participant level's clip).

A model knows the ages it was trained for (its age groups): :meth:`Simulator.age_use`
says which groups an age is simulated with, and an age outside the groups' span is
simulated at the nearest end (the caller says so, see
:func:`daninet_pipeline.simulation.subject.simulate_subject`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from ..errors import DaniNetError, ImageError
from .config import DEFAULT_SIMULATION_MODE, SIMULATION_MODES
from .daninet import DaniNetModel
from .data import (assemble_volume, brain_slice_indices, from_network_range, slice_positions, to_network_range,
                   volume_slices)

LOGGER = logging.getLogger(__name__)


#: Fields of the training data's provenance that the data simulated from must share.
PROVENANCE_FIELDS = ("template", "intensity_normalization", "preprocessing_backend", "preprocessing_version")


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

    @property
    def age_span(self) -> tuple[float, float]:
        """The ages (years) the model's age groups cover."""
        edges = self.cfg.bin_edges
        return float(edges[0]), float(edges[-1])

    def age_use(self, age: float) -> dict:
        """How ``age`` is simulated: ``model_age`` (the age inside the span of the
        group centres that is used), ``age_groups`` (0-based groups mixed) and their
        ``weights``, ``outside`` (True for an age outside :attr:`age_span`)."""
        centres = self.cfg.bin_centres
        lo, hi, alpha = (v[0] for v in self.cfg.age_interpolation([age]))
        groups, weights = [int(lo)], [float(alpha)]
        if hi != lo:
            groups.append(int(hi))
            weights.append(1 - float(alpha))
        lo_age, hi_age = self.age_span
        return {"model_age": float(np.clip(age, centres[0], centres[-1])), "age_groups": groups,
                "weights": weights, "outside": not lo_age <= float(age) <= hi_age}

    def check_data(self, image, provenance: dict | None = None, *, name: str = "the volume") -> None:
        """Refuse, in one line, data the model was not trained for: another grid (shape,
        affine), template, intensity normalisation, pre-processing backend or version.
        ``provenance``: the data's (:func:`daninet_pipeline.bids.derivatives.preproc_provenance`)."""
        grid, problems = self.grid, []
        shape = tuple(grid.get("volume_shape") or ())
        if shape and tuple(image.shape[:3]) != shape:
            problems.append(f"grid {tuple(image.shape[:3])} (model: {shape})")
        elif grid.get("affine") is not None and getattr(image, "affine", None) is not None and \
                not np.allclose(image.affine, np.asarray(grid["affine"]), atol=1e-3):
            problems.append("affine differs from the model's grid")
        trained = grid.get("provenance") or {}
        for key in PROVENANCE_FIELDS:
            if key in trained and provenance is not None and provenance.get(key) != trained[key]:
                problems.append(f"{key.replace('_', ' ')} {provenance.get(key)!r} (model: {trained[key]!r})")
        if problems:
            raise DaniNetError(f"{name} is not like the data the model {self.info.get('path', '')} was trained "
                               f"on: {'; '.join(problems)}")

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        return torch.cat([self.model.E(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def generate_group(self, z, x, group: int, d: int, pos, batch_size: int) -> torch.Tensor:
        """``G(z, group, d, pos)`` ``(n, S, S)`` for ``z`` ``(n, z_dim)``, in batches."""
        out = []
        for i in range(0, len(z), batch_size):
            zz = z[i:i + batch_size]
            dd = torch.full((len(zz),), d, dtype=torch.long, device=z.device)
            out.append(self.model.generate(zz, [group], dd, pos[i:i + batch_size], x[i:i + batch_size])[:, 0])
        return torch.cat(out)

    def slice_indices(self, vol: np.ndarray) -> np.ndarray:
        """The slices to generate: the training grid's, or those with at least
        ``brain_fraction`` of the largest slice's brain area."""
        grid = self.grid
        if grid.get("slice_indices") and tuple(grid.get("volume_shape") or ()) == tuple(vol.shape):
            return np.asarray(grid["slice_indices"], dtype=int)
        return brain_slice_indices(vol, axis=self.cfg.slice_axis, fraction=self.cfg.brain_fraction)

    def simulate(self, volume, age: float, diagnosis: str, target_ages, *, batch_size: int = 64,
                 mode: str = DEFAULT_SIMULATION_MODE, blend_sigma: float = 1.0):
        """Simulated volumes, one per target age.

        ``volume``: a 3D array, a nibabel image or a NIfTI path, on the template grid,
        pre-processed like the training data. ``age`` and ``diagnosis`` are the scan's.
        Returns a list of float32 arrays (or of nibabel images with the input's affine
        when the input is an image or a path), in the input's intensity scale.
        ``mode``: ``"direct"`` (the generator's image, as the paper) or ``"change"``
        (the input plus the generated change from its own age).
        """
        if mode not in SIMULATION_MODES:
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
        if not (vol > 0).any():
            raise ImageError("the volume has no brain voxel (all <= 0)")
        idx = self.slice_indices(vol)
        dev, dtype = self.model.device, self.model.dtype
        x = to_network_range(torch.from_numpy(volume_slices(vol, cfg.image_size, axis=axis, indices=idx,
                                                            intensity_max=imax)).unsqueeze(1)).to(dev, dtype)
        pos = torch.from_numpy(slice_positions(idx, depth)).to(dev, dtype)
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
            stack = stack.to(torch.float32).cpu().numpy()
            if blend_sigma > 0 and len(idx) > 1:
                stack = gaussian_filter1d(stack, blend_sigma, axis=0, mode="nearest")
            x0 = x[:, 0].to(torch.float32).cpu().numpy()
            if mode == "change":
                stack = x0 + stack
            sl = np.clip(from_network_range(stack), 0, 1) * imax
            out = assemble_volume(sl, vol.shape, axis=axis, indices=idx, base=vol)
            if mode == "change":
                # keep the input's full resolution: add the up-sampled change instead
                change = assemble_volume(sl - from_network_range(x0) * imax, vol.shape, axis=axis, indices=idx)
                out = np.clip(vol + change, 0, None)
            out[outside] = 0
            results.append(nib.Nifti1Image(out, affine) if affine is not None else out)
        return results
