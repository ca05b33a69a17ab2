"""Transfer learning (the paper's "T"): fine-tune a copy of the model on one subject's
own earlier scans before simulating that subject.

The copy keeps the training objective (L_def, L_vox, the adversarial terms, and L_reg
when region masks are given) with the weights the schedules reach at the end of
training, a fresh Adam at ``transfer_lr``, and batches drawn from the subject's slices
(a pure function of ``(seed, step)``, as in training). The original model is untouched.
"""

from __future__ import annotations

import logging

import numpy as np
import nibabel as nib

from .data import brain_slice_indices, extract_slices
from .simulate import Simulator
from .train import DaniNetModel, SliceSource, copy_model, prior_noise, sample_rows

LOGGER = logging.getLogger(__name__)


def subject_source(scans, cfg, *, slice_indices=None) -> SliceSource:
    """A :class:`SliceSource` from one subject's scans: a list of dicts with ``image``
    (3D array / nibabel image), ``age`` and ``diagnosis``."""
    arrays, ages, dx, pos, ks = [], [], [], [], []
    for scan in scans:
        img = scan["image"]
        vol = np.asarray(img.dataobj if isinstance(img, nib.spatialimages.SpatialImage) else img, dtype=np.float32)
        idx = (brain_slice_indices(vol, axis=cfg.slice_axis, fraction=cfg.brain_fraction)
               if slice_indices is None else np.asarray(slice_indices, dtype=int))
        sl = extract_slices(np.clip(vol, 0, cfg.intensity_max) / cfg.intensity_max, cfg.image_size,
                            axis=cfg.slice_axis, indices=idx)
        depth = vol.shape[cfg.slice_axis]
        arrays.append(np.clip(sl, 0, 1))
        ages += [float(scan["age"])] * len(idx)
        dx += [str(scan["diagnosis"])] * len(idx)
        pos += list(idx / max(depth - 1, 1))
        ks += list(range(len(idx)))
    return SliceSource.from_arrays(np.concatenate(arrays), ages, dx, pos, ks, cfg)


def transfer(model: DaniNetModel | Simulator, scans, *, steps: int | None = None, lr: float | None = None,
             seed: int | None = None, region_masks=None) -> DaniNetModel | Simulator:
    """Fine-tune a copy of ``model`` on ``scans`` (one subject's earlier scans, see
    :func:`subject_source`) for ``steps`` steps (default ``cfg.transfer_steps``) at
    ``lr`` (default ``cfg.transfer_lr``). Returns the same kind it was given."""
    as_sim = isinstance(model, Simulator)
    base = model.model if as_sim else model
    cfg = base.cfg
    steps = cfg.transfer_steps if steps is None else int(steps)
    lr = cfg.transfer_lr if lr is None else float(lr)
    seed = cfg.seed if seed is None else seed
    new = copy_model(base)
    new.make_optimizers(lr)
    new.region_masks = None if region_masks is None else region_masks
    if new.region_masks is None:
        new.svr_table = None  # without masks L_reg cannot be computed
        if cfg.weight_reg.at(cfg.steps) > 0:
            LOGGER.info("transfer without region masks: L_reg is left out")
            new.cfg = cfg.replace(weight_reg=type(cfg.weight_reg)(0.0))
    source = subject_source(scans, new.cfg)
    new.train_mode(True)
    B = min(cfg.batch_size, source.n)
    final_step = max(cfg.steps - 1, 0)  # weights as at the end of training
    for k in range(steps):
        rows = sample_rows(source.n, B, seed + 1, k)
        new.set_input(source.batch(rows), prior_noise(B, cfg.z_dim, seed + 1, k))
        losses = new.optimize_parameters(final_step)
        if k == 0 or k == steps - 1:
            LOGGER.info("transfer step %d/%d: L_def %.5f", k + 1, steps, losses["loss_def"])
    new.cfg = cfg
    new.train_mode(False)
    return Simulator(new, getattr(model, "info", None)) if as_sim else new
