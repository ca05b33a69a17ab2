"""The DaniNet training loop over a slice store.

:func:`train` runs :class:`~daninet_pipeline.model.daninet.DaniNetModel` steps over a
:class:`~daninet_pipeline.model.data.SliceStore`: progress bar with ETA, a TSV log of
every loss and weight per step, checkpoints and resume (batches, prior noise and D_b's
wrong age groups depend only on ``(seed, step)``, so a resumed run repeats an
uninterrupted one), bf16 autocast, and data-parallel training over
``torch.distributed`` processes (:mod:`~daninet_pipeline.model.distributed`; start with
``torchrun --nproc_per_node N -m daninet_pipeline.model.train ...``). The model file's
format is :mod:`~daninet_pipeline.model.modelfile`.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import distributed as dist

from .. import __version__
from ..errors import DaniNetError
from .config import LOSS_TERMS, TrainConfig
from .daninet import LOG_LOSSES, DaniNetModel
from .data import SliceSource, SliceStore, step_loader
from .distributed import broadcast_params, setup_distributed, world
from .modelfile import CHECKPOINT_NAME, MODEL_NAME, atomic_save

LOGGER = logging.getLogger(__name__)

LOG_NAME = "losses.tsv"
#: the model file written every ``model_every`` steps (``step``: the steps trained), to
#: choose a step on the validation split (:func:`~daninet_pipeline.evaluation.evaluate.choose_on_validation`)
STEP_MODEL_NAME = "model_step-{step:06d}.pt"
#: exit code of ``python -m daninet_pipeline.model.train`` stopped by a signal after a
#: checkpoint (the SLURM recipe resubmits the job on it)
EXIT_INTERRUPTED = 75


def _reg_needed(cfg: TrainConfig) -> bool:
    w = cfg.weight_reg
    return w.value > 0 or (w.kind != "constant" and w.initial > 0)


def prepare_regional(store: SliceStore, cfg: TrainConfig):
    """Region masks of the store's slices and the regional model fitted on its
    longitudinal pairs (:func:`~daninet_pipeline.model.regional.fit_regional_model`)."""
    from .regional import fit_regional_model, region_slice_masks, regional_pairs_table

    masks = region_slice_masks(store.volume_shape, store.affine, store.slice_indices, cfg)
    return masks, fit_regional_model(regional_pairs_table(store, masks, cfg), cfg, regions=cfg.regions)


def _data_summary(store: SliceStore, cfg: TrainConfig) -> dict:
    vols = store.volumes()
    return {
        "n_volumes": int(len(vols)),
        "n_subjects": int(vols["subject"].nunique()),
        "n_slices": int(len(store)),
        "age_min": float(vols["age"].min()),
        "age_max": float(vols["age"].max()),
        "diagnoses": {k: int(v) for k, v in vols["diagnosis"].map(cfg.fold_diagnosis).value_counts().items()},
        "volumes_per_age_group": np.bincount(cfg.age_group(vols["age"].to_numpy()),
                                              minlength=cfg.n_groups).tolist(),
    }


def _mean_or_nan(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _store_grid(store: SliceStore) -> dict:
    return {"volume_shape": list(store.volume_shape), "affine": None if store.affine is None else
            store.affine.tolist(), "slice_indices": store.slice_indices.tolist(), "axis": store.meta["axis"],
            "intensity_max": store.meta["intensity_max"], "provenance": store.meta.get("provenance", {})}


class _TSVLog:
    def __init__(self, path: Path, start_step: int, enabled: bool):
        self.enabled = enabled
        self.path = path
        self.fields = ["step", *LOG_LOSSES, *(f"w_{t}" for t in LOSS_TERMS), "lr", "seconds"]
        if not enabled:
            return
        rows = []
        if start_step > 0 and path.is_file():
            with path.open() as f:
                rows = [r for r in csv.DictReader(f, delimiter="\t") if int(r["step"]) < start_step]
        self.fh = path.open("w", newline="")
        self.writer = csv.DictWriter(self.fh, self.fields, delimiter="\t")
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.fh.flush()

    def write(self, row: dict) -> None:
        if self.enabled:
            self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
            self.fh.flush()

    def close(self) -> None:
        if self.enabled:
            self.fh.close()


class TrainingInterrupted(DaniNetError):
    """Training stopped on SIGTERM/SIGINT after writing a checkpoint; resume with
    ``resume=True`` (``--resume``). ``step`` is the step the checkpoint holds."""

    def __init__(self, step: int, path: Path):
        super().__init__(f"training interrupted: checkpoint at step {step} in {path}; resume with --resume")
        self.step = step


class _StopRequest:
    """SIGTERM/SIGINT handlers that ask the loop to stop after the current step (only in
    the main thread; the previous handlers come back on exit)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = None
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def requested(self, device) -> bool:
        """Whether any process was signalled (all processes agree, so they stop together)."""
        flag = torch.tensor([1.0 if self.signum is not None else 0.0], device=device)
        _, size = world()
        if size > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)


def train(config: TrainConfig | str | Path, store: SliceStore | str | Path, out_dir, resume: bool = False, *,
          device=None, progress: bool = True, stop_at: int | None = None, regional=None,
          workers: int = 0) -> Path:
    """Train DaniNet on a slice store; write ``out_dir/checkpoint.pt``,
    ``out_dir/losses.tsv``, every ``model_every`` steps a model file
    (``out_dir/model_step-<step>.pt``, :data:`STEP_MODEL_NAME`) and at the end the model
    file ``out_dir/model.pt``.

    ``config``: a :class:`TrainConfig`, a JSON path or a preset name. ``resume``: go on
    from ``out_dir/checkpoint.pt`` (its configuration must match, except ``steps``).
    ``stop_at``: stop (after a checkpoint) at this step without writing the model file,
    as an interrupted run would. ``regional``: precomputed ``(region_masks, regional_model)``.
    Under ``torchrun`` each process trains on its share of every global batch of
    ``world_size * batch_size`` slices. ``workers``: processes reading batches ahead of
    the step (:func:`~daninet_pipeline.model.data.step_loader`; the batches do not
    depend on it). On SIGTERM or SIGINT (a job's time limit, ``docker stop``) the
    current step ends, a checkpoint is written and :class:`TrainingInterrupted` is
    raised. Returns the path of the model file (or of the checkpoint when stopped early).
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_file(config)
    store = store if isinstance(store, SliceStore) else SliceStore(store)
    out_dir = Path(out_dir)
    rank, size = setup_distributed()
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    if store.image_size != cfg.image_size:
        raise ValueError(f"the slice store holds {store.image_size} px slices but the configuration asks for "
                         f"{cfg.image_size}")
    source = SliceSource.from_store(store, cfg)
    masks = reg_model = table = None
    if _reg_needed(cfg):
        masks, reg_model = regional if regional is not None else prepare_regional(store, cfg)
        table = reg_model.ratio_table(cfg.n_groups, len(cfg.diagnoses))
    model = DaniNetModel(cfg, device=device, ratio_table=table, region_masks=masks, regional=reg_model)
    ckpt_path = out_dir / CHECKPOINT_NAME
    start = 0
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        saved = TrainConfig.from_dict(ckpt["config"])
        if saved.replace(steps=cfg.steps) != cfg:
            raise ValueError(f"{ckpt_path}: the checkpoint was written with another configuration; "
                             "resume with the same one (only 'steps' may change)")
        model.load_state_dict(ckpt["model"])
        start = model.step
        LOGGER.info("resuming from step %d", start)
    elif resume:
        LOGGER.warning("no checkpoint in %s: starting from step 0", out_dir)
    broadcast_params(model.nets.values())
    model.train_mode(True)
    log = _TSVLog(out_dir / LOG_NAME, start, enabled=rank == 0)
    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc="DaniNet training", unit="step", dynamic_ncols=True)
    B = cfg.batch_size
    t0 = time.perf_counter()
    last = {}
    recent = []

    def checkpoint(step):
        if rank == 0:
            atomic_save({"config": cfg.to_dict(), "model": model.state_dict(), "package_version": __version__},
                         ckpt_path)

    def summary(steps) -> dict:
        out = _data_summary(store, cfg)
        out.update({
            "steps": steps,
            "processes": size,
            "seconds_this_run": time.perf_counter() - t0,
            "final_losses": {k: _mean_or_nan([r[k] for r in recent]) for k in LOG_LOSSES},
            "regional_model": None if reg_model is None else reg_model.kind,
            "regional_cv_error": None if reg_model is None else dict(reg_model.cv_error),
        })
        return out

    loader = step_loader(source, range(start, end), B, cfg.seed, cfg.z_dim, rank=rank, world=size,
                         workers=workers, pin_memory=model.device.type == "cuda")
    with _StopRequest() as stop:
        for step, (batch, noise) in zip(range(start, end), loader):
            model.set_input(batch, noise)
            last = model.optimize_parameters(step)
            recent = (recent + [last])[-20:]
            if rank == 0 and (step % cfg.log_every == 0 or step == end - 1):
                log.write({"step": step, **last, **{f"w_{t}": v for t, v in model.weights(step).items()},
                           "lr": cfg.lr, "seconds": time.perf_counter() - t0})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(def_=f"{last['loss_def']:.4f}", vox=f"{last['loss_vox']:.4f}")
            if stop.requested(model.device) and step + 1 < end:
                if bar is not None:
                    bar.close()
                log.close()
                checkpoint(step + 1)
                LOGGER.warning("signal received: checkpoint at step %d of %d written to %s", step + 1, cfg.steps,
                               ckpt_path)
                if size > 1:
                    dist.barrier()
                raise TrainingInterrupted(step + 1, ckpt_path)
            if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < end:
                checkpoint(step + 1)
            if rank == 0 and cfg.model_every and (step + 1) % cfg.model_every == 0 and step + 1 < cfg.steps:
                model.save_model_file(out_dir / STEP_MODEL_NAME.format(step=step + 1), summary=summary(step + 1),
                                      grid=_store_grid(store))
    del loader
    if bar is not None:
        bar.close()
    log.close()
    checkpoint(end)
    if size > 1:
        dist.barrier()
    if end < cfg.steps:
        return ckpt_path
    path = out_dir / MODEL_NAME
    if rank == 0:
        model.save_model_file(path, summary=summary(cfg.steps), grid=_store_grid(store))
    if size > 1:
        dist.barrier()
    return path


def main(argv=None) -> int:
    """``python -m daninet_pipeline.model.train --config C --store S --out O [--resume]``
    (also under ``torchrun``)."""
    p = argparse.ArgumentParser(description="Train DaniNet on a slice store.")
    p.add_argument("--config", required=True, help="JSON configuration file or preset name")
    p.add_argument("--store", required=True, help="slice store directory")
    p.add_argument("--out", required=True, help="output directory (checkpoint, log, model file)")
    p.add_argument("--resume", action="store_true", help="go on from OUT/checkpoint.pt")
    p.add_argument("--steps", type=int, help="override the configuration's number of steps")
    p.add_argument("--stop-at", type=int, help="stop at this step after a checkpoint")
    p.add_argument("--workers", type=int, default=0,
                   help="processes reading batches ahead of the step (default 0: in the training process)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = TrainConfig.from_file(args.config)
    if args.steps is not None:
        cfg = cfg.replace(steps=args.steps)
    try:
        path = train(cfg, args.store, args.out, resume=args.resume, progress=not args.no_progress,
                     stop_at=args.stop_at, workers=args.workers)
    except TrainingInterrupted as exc:
        LOGGER.warning("%s", exc)
        if world()[1] > 1:
            dist.destroy_process_group()
        return EXIT_INTERRUPTED
    rank, size = world()
    if rank == 0:
        print(path)
    if size > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
