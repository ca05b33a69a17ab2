"""Transfer learning (the paper's "T"): fine-tune a copy of the model on one subject's
own scans up to the prediction's starting scan before simulating that subject.

The copy keeps the whole training objective, L_reg included (the atlas regions are cut
on the subject's slices exactly as for training, and the model's ratio table gives the
targets), with the weights the schedules reach at the end of training, a fresh Adam at
``transfer_lr``, and batches drawn from every slice the model generates for these scans
(the paper fine-tuned each slice's model on the slice and its neighbours; one network
serves all slices here, so it sees all of them), a pure function of ``(seed, step)``
as in training. The original model is untouched. A later scan than the starting one is
never used (:func:`scans_up_to`).
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from ..errors import DaniNetError
from .daninet import DaniNetModel, copy_model
from .data import SliceSource, slice_positions, volume_slices
from .simulate import Simulator

LOGGER = logging.getLogger(__name__)


def scans_up_to(sessions: pd.DataFrame, start_age: float) -> pd.DataFrame:
    """The rows of ``sessions`` (one subject; ``age`` column) acquired no later than the
    starting scan at ``start_age``: the only scans transfer may learn from."""
    return sessions[sessions["age"].astype(float) <= float(start_age) + 1e-6].sort_values("age")


def _volume(image):
    if isinstance(image, nib.spatialimages.SpatialImage):
        return np.asarray(image.dataobj, dtype=np.float32), image.affine
    return np.asarray(image, dtype=np.float32), None


def subject_source(scans, cfg, *, slice_indices, intensity_max: float | None = None) -> SliceSource:
    """A :class:`SliceSource` from one subject's scans (dicts with ``image``: 3D array or
    nibabel image on the template grid, ``age``, ``diagnosis``); ``slice_k`` indexes
    ``slice_indices``, so region masks cut on those slices line up."""
    imax = cfg.intensity_max if intensity_max is None else float(intensity_max)
    idx = np.asarray(slice_indices, dtype=int)
    arrays, ages, dx, pos, ks = [], [], [], [], []
    for scan in scans:
        vol, _ = _volume(scan["image"])
        arrays.append(volume_slices(vol, cfg.image_size, axis=cfg.slice_axis, indices=idx, intensity_max=imax))
        ages += [float(scan["age"])] * len(idx)
        dx += [str(scan["diagnosis"])] * len(idx)
        pos += list(slice_positions(idx, vol.shape[cfg.slice_axis]))
        ks += list(range(len(idx)))
    return SliceSource.from_arrays(np.concatenate(arrays), ages, dx, pos, ks, cfg)


def _base_and_grid(model):
    if isinstance(model, Simulator):
        return model.model, model.grid
    return model, {}


def prepare_transfer(model: DaniNetModel | Simulator, scans, *, region_masks=None, slice_indices=None,
                     lr: float | None = None) -> tuple[DaniNetModel, SliceSource]:
    """The copy to fine-tune and the subject's slice source.

    ``slice_indices``: the slices to learn from (default: those the simulator would
    generate for the first scan). ``region_masks``: ``(n_slices, R, S, S)`` on those
    slices; by default cut from the atlas on the scans' grid (the scans must then be
    nibabel images). Needed only when L_reg has a weight at the end of training.
    """
    base, grid = _base_and_grid(model)
    cfg = base.cfg
    if not scans:
        raise DaniNetError("transfer needs at least one scan of the subject")
    vol, affine = _volume(scans[0]["image"])
    if slice_indices is None:
        slice_indices = Simulator(base, {"grid": grid}).slice_indices(vol)
    new = copy_model(base)
    new.make_optimizers(cfg.transfer_lr if lr is None else float(lr))
    if base.weights(max(cfg.steps - 1, 0))["reg"] > 0:
        if base.ratio_table is None:
            raise DaniNetError("the model has no regional ratio table: L_reg cannot be part of the transfer")
        if region_masks is None:
            from .regional import region_slice_masks

            if affine is None:
                raise DaniNetError("transfer with L_reg needs the scans as images with an affine (for the atlas)")
            region_masks = region_slice_masks(vol.shape, affine, slice_indices, cfg)
        new.region_masks = torch.as_tensor(np.asarray(region_masks, dtype=np.uint8)).to(new.device)
    source = subject_source(scans, cfg, slice_indices=slice_indices,
                            intensity_max=grid.get("intensity_max", cfg.intensity_max))
    return new, source


def transfer(model: DaniNetModel | Simulator, scans, *, steps: int | None = None, lr: float | None = None,
             seed: int | None = None, region_masks=None, slice_indices=None) -> DaniNetModel | Simulator:
    """Fine-tune a copy of ``model`` on ``scans`` (one subject's scans up to the starting
    scan, see :func:`subject_source`) for ``steps`` steps (default
    ``cfg.transfer_steps``) at ``lr`` (default ``cfg.transfer_lr``) with every loss of
    the training (:func:`prepare_transfer`). Returns the same kind it was given."""
    base, grid = _base_and_grid(model)
    cfg = base.cfg
    steps = cfg.transfer_steps if steps is None else int(steps)
    seed = cfg.seed if seed is None else seed
    new, source = prepare_transfer(model, scans, region_masks=region_masks, slice_indices=slice_indices, lr=lr)
    new.train_mode(True)
    B = min(cfg.batch_size, source.n)
    final_step = max(cfg.steps - 1, 0)  # weights as at the end of training
    for k in range(steps):
        batch, noise = source.step_batch(k, B, seed + 1, cfg.z_dim)
        new.set_input(batch, noise)
        losses = new.training_step(final_step)
        if k == 0 or k == steps - 1:
            LOGGER.info("transfer step %d/%d: L_def %.5f, L_reg %.5f", k + 1, steps, float(losses["loss_def"]),
                        float(losses["loss_reg"]))
    new.train_mode(False)
    return Simulator(new, getattr(model, "info", None)) if isinstance(model, Simulator) else new
