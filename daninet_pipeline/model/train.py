"""DaniNet training: the model class (one training step) and the training loop.

:class:`DaniNetModel` holds E, G, D_z and D_b with their optimisers and does one step in
the pytorch-CycleGAN-and-pix2pix shape (``set_input``, ``forward``,
``optimize_parameters``, ``set_requires_grad``, save/load). Each step

1. encodes the batch, ``z = E(x)``, and generates the whole sequence
   ``g_p = G(z, p, d, slice position)`` for every age group ``p``;
2. updates D_z (prior samples against ``E(x).detach()``) and D_b (real ``x`` against
   ``g_a.detach()``, conditioned on the input's own group ``a``): these steps never
   touch E or G;
3. updates E and G with ``sum_t w_t(step) * L_t`` over L_def, L_vox (surrogate), L_reg,
   the two adversarial terms and total variation; every weight comes from its
   :class:`~daninet_pipeline.model.config.WeightSchedule` at this step.

:func:`train` runs the loop over a :class:`~daninet_pipeline.model.data.SliceStore`:
progress bar with ETA, a TSV log of every loss and weight per step, checkpoints and
resume (batches and prior noise depend only on ``(seed, step)``, so a resumed run
repeats an uninterrupted one), bf16 autocast, and data-parallel training over
``torch.distributed`` processes (gloo on CPU, NCCL on GPU; start with
``torchrun --nproc_per_node N -m daninet_pipeline.model.train ...``), each process
taking its share of every global batch and averaging gradients.
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import distributed as dist

from .. import __version__
from ..errors import ModelFileError
from . import losses as L
from .config import LOSS_TERMS, TrainConfig
from .data import SliceStore
from .networks import condition_vector, define_D, define_E, define_G

LOGGER = logging.getLogger(__name__)

MODEL_FORMAT = "daninet-model"
MODEL_FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
LOG_NAME = "losses.tsv"

#: columns of the TSV log after ``step``
LOG_LOSSES = ("loss_def", "loss_vox", "loss_vox_sign", "loss_reg", "loss_adv_z", "loss_adv_b", "loss_tv",
              "loss_eg", "loss_dz", "loss_db")


# --------------------------------------------------------------------------------------
# distributed helpers
# --------------------------------------------------------------------------------------
def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sync_grads(params) -> None:
    """Average the gradients of ``params`` over the processes (one flat all-reduce)."""
    rank, world = _world()
    if world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= world
    for g, s in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
        g.copy_(s)


def _broadcast_params(modules) -> None:
    rank, world = _world()
    if world == 1:
        return
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            dist.broadcast(t.data, 0)


# --------------------------------------------------------------------------------------
# per-step randomness (depends on (seed, step) only)
# --------------------------------------------------------------------------------------
def sample_rows(n_rows: int, batch: int, seed: int, step: int) -> np.ndarray:
    """Rows of the global batch of ``step``: uniform with replacement, a pure function
    of ``(seed, step)``."""
    return np.random.default_rng([seed, step]).integers(0, n_rows, size=batch)


def prior_noise(batch: int, z_dim: int, seed: int, step: int) -> torch.Tensor:
    """Samples ``z* ~ U[-1, 1]`` of the global batch of ``step``."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step) + 7)
    return torch.rand(batch, z_dim, generator=g) * 2 - 1


# --------------------------------------------------------------------------------------
# data source: per-row labels of a slice store (or of in-memory slices)
# --------------------------------------------------------------------------------------
class SliceSource:
    """Slices plus the per-row labels a training step needs.

    ``read(rows)`` returns float32 slices in [0, 1]; ``ages``, ``diagnoses`` (labels)
    and ``positions`` are per row; ``slice_k`` is each row's index into the store's
    slice list (for the region masks).
    """

    def __init__(self, read, ages, diagnoses, positions, slice_k, cfg: TrainConfig):
        self.read = read
        self.n = len(ages)
        ages = np.asarray(ages, dtype=float)
        self.group = cfg.age_group(ages)
        self.lo, self.hi, self.alpha = cfg.age_interpolation(ages)
        labels = {lab: cfg.diagnosis_index(lab) for lab in dict.fromkeys(diagnoses)}
        self.dx = np.array([labels[d] for d in diagnoses], dtype=np.int64)
        self.pos = np.asarray(positions, dtype=np.float32)
        self.slice_k = np.asarray(slice_k, dtype=np.int64)

    @classmethod
    def from_store(cls, store: SliceStore, cfg: TrainConfig) -> SliceSource:
        idx = store.index
        n_sl = len(store.slice_indices)
        return cls(store.read, idx["age"].to_numpy(), idx["diagnosis"].tolist(), idx["position"].to_numpy(),
                   idx["row"].to_numpy() % n_sl, cfg)

    @classmethod
    def from_arrays(cls, slices: np.ndarray, ages, diagnoses, positions, slice_k, cfg) -> SliceSource:
        arr = np.asarray(slices, dtype=np.float32)
        return cls(lambda rows: arr[np.asarray(rows)], ages, diagnoses, positions, slice_k, cfg)

    def batch(self, rows) -> dict:
        rows = np.asarray(rows)
        x = torch.from_numpy(self.read(rows)).unsqueeze(1) * 2 - 1
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a[rows]))  # noqa: E731
        return {"x": x, "a": t(self.group), "lo": t(self.lo), "hi": t(self.hi), "alpha": t(self.alpha),
                "d": t(self.dx), "pos": t(self.pos), "slice_k": t(self.slice_k)}


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
class DaniNetModel:
    """E, G, D_z, D_b, their optimisers and one training step.

    ``svr_table``: the regional SVRs' ratio table ``(R, A, A, n_diagnoses)``;
    ``region_masks``: ``(n_slices, R, S, S)`` masks of the store's slices. Both are
    needed only when L_reg has a non-zero weight.
    """

    def __init__(self, cfg: TrainConfig, *, device="cpu", svr_table=None, region_masks=None, svrs=None):
        from ..allocator import keep_freed_memory

        keep_freed_memory()  # every step allocates and frees activations of 100s of MB
        self.cfg = cfg
        self.device = torch.device(device)
        torch.manual_seed(cfg.seed)
        self.E = define_E(cfg).to(self.device)
        self.G = define_G(cfg).to(self.device)
        self.Dz = define_D(cfg, "z").to(self.device)
        self.Db = define_D(cfg, "b").to(self.device)
        self.svrs = svrs
        self.svr_table = None if svr_table is None else torch.as_tensor(svr_table, dtype=torch.float32,
                                                                          device=self.device)
        self.region_masks = None if region_masks is None else torch.as_tensor(region_masks, device=self.device)
        self.make_optimizers(cfg.lr)
        self.input: dict = {}
        self.step = 0

    # ---- pieces --------------------------------------------------------------------
    @property
    def nets(self) -> dict:
        return {"E": self.E, "G": self.G, "Dz": self.Dz, "Db": self.Db}

    def make_optimizers(self, lr: float) -> None:
        betas = (self.cfg.beta1, self.cfg.beta2)
        self.opt_EG = torch.optim.Adam(list(self.E.parameters()) + list(self.G.parameters()), lr=lr, betas=betas)
        self.opt_Dz = torch.optim.Adam(self.Dz.parameters(), lr=lr, betas=betas)
        self.opt_Db = torch.optim.Adam(self.Db.parameters(), lr=lr, betas=betas)

    @property
    def optimizers(self) -> dict:
        return {"EG": self.opt_EG, "Dz": self.opt_Dz, "Db": self.opt_Db}

    @staticmethod
    def set_requires_grad(nets, requires_grad: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(requires_grad)

    def train_mode(self, flag: bool = True):
        for net in self.nets.values():
            net.train(flag)
        return self

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def generate(self, z, groups, d, pos, x=None):
        """``G(z, p, d, pos)`` for each group in ``groups`` (list of ints):
        ``(B, len(groups), S, S)``."""
        B = z.shape[0]
        n = len(groups)
        g = torch.as_tensor(groups, device=z.device).repeat_interleave(B)
        c = condition_vector(g, d.repeat(n), pos.repeat(n), self.cfg)
        xs = None if x is None else x.repeat(n, 1, 1, 1)
        out = self.G(z.repeat(n, 1), c, xs)
        return out.view(n, B, *out.shape[1:]).transpose(0, 1)[:, :, 0]

    # ---- training step ------------------------------------------------------------
    def set_input(self, batch: dict, z_prior=None) -> None:
        """A batch from :meth:`SliceSource.batch` (and the prior samples for D_z)."""
        self.input = {k: v.to(self.device) for k, v in batch.items()}
        if z_prior is None:
            z_prior = torch.rand(len(batch["x"]), self.cfg.z_dim) * 2 - 1
        self.input["z_prior"] = z_prior.to(self.device)

    def forward(self) -> None:
        inp = self.input
        with self._autocast():
            self.z = self.E(inp["x"])
            groups = list(range(self.cfg.n_groups))
            self.seq = self.generate(self.z, groups, inp["d"], inp["pos"], inp["x"]).float()
        B = self.seq.shape[0]
        ar = torch.arange(B, device=self.device)
        self.g_a = self.seq[ar, inp["a"]].unsqueeze(1)
        self.cond_a = condition_vector(inp["a"], inp["d"], inp["pos"], self.cfg)

    def backward_D(self) -> dict:
        """D_z and D_b losses on detached codes and images (E and G get no gradient)."""
        inp = self.input
        with self._autocast():
            loss_dz = L.latent_adversarial_loss(self.Dz(inp["z_prior"]), self.Dz(self.z.detach()), discriminator=True)
            loss_db = L.image_adversarial_loss(self.Db(inp["x"], self.cond_a), self.Db(self.g_a.detach(), self.cond_a),
                                               discriminator=True)
        return {"loss_dz": loss_dz, "loss_db": loss_db}

    def optimize_D(self) -> dict:
        self.set_requires_grad([self.Dz, self.Db], True)
        losses = self.backward_D()
        self.opt_Dz.zero_grad(set_to_none=True)
        self.opt_Db.zero_grad(set_to_none=True)
        (losses["loss_dz"] + losses["loss_db"]).backward()
        _sync_grads(self.Dz.parameters())
        _sync_grads(self.Db.parameters())
        self.opt_Dz.step()
        self.opt_Db.step()
        return losses

    def weights(self, step: int) -> dict:
        return {t: self.cfg.weight(t).at(step) for t in LOSS_TERMS}

    def compute_EG_losses(self, step: int) -> tuple[torch.Tensor, dict]:
        """The weighted E/G objective at ``step`` and every term (terms with weight 0 are
        computed without gradient, for the log)."""
        inp = self.input
        w = self.weights(step)
        B = self.seq.shape[0]
        ar = torch.arange(B, device=self.device)
        x = inp["x"]
        terms = {}

        def term(name, fn):
            if w[name] > 0:
                terms[name] = fn()
            else:
                with torch.no_grad():
                    terms[name] = fn()

        term("def", lambda: L.deformation_loss(x, self.seq[ar, inp["lo"]].unsqueeze(1),
                                               self.seq[ar, inp["hi"]].unsqueeze(1), inp["alpha"]))
        term("vox", lambda: L.voxel_loss(self.seq, inp["a"]))
        if self.svr_table is not None and self.region_masks is not None:
            masks = self.region_masks[inp["slice_k"]]
            term("reg", lambda: L.regional_loss((self.seq + 1) / 2, inp["a"], inp["d"], masks, self.svr_table,
                                                eps=self.cfg.reg_eps))
        elif w["reg"] > 0:
            raise RuntimeError("L_reg has a non-zero weight but no SVR table / region masks were given")
        else:
            terms["reg"] = torch.tensor(float("nan"))
        with self._autocast():
            term("adv_z", lambda: L.latent_adversarial_loss(None, self.Dz(self.z), discriminator=False))
            term("adv_b", lambda: L.image_adversarial_loss(None, self.Db(self.g_a, self.cond_a), discriminator=False))
        term("tv", lambda: L.total_variation_loss(self.seq))
        total = sum(w[t] * terms[t].float() for t in LOSS_TERMS if w[t] > 0)
        if not torch.is_tensor(total):
            total = torch.zeros((), device=self.device, requires_grad=True)
        with torch.no_grad():
            vox_sign = L.voxel_sign_loss(self.seq, inp["a"])
        out = {f"loss_{t}": terms[t] for t in LOSS_TERMS}
        out["loss_vox_sign"] = vox_sign
        out["loss_eg"] = total
        return total, out

    def optimize_EG(self, step: int) -> dict:
        self.set_requires_grad([self.Dz, self.Db], False)
        total, out = self.compute_EG_losses(step)
        self.opt_EG.zero_grad(set_to_none=True)
        total.backward()
        _sync_grads(list(self.E.parameters()) + list(self.G.parameters()))
        self.opt_EG.step()
        self.set_requires_grad([self.Dz, self.Db], True)
        return out

    def optimize_parameters(self, step: int | None = None) -> dict:
        """One training step; returns every loss as a float (averaged over processes)."""
        step = self.step if step is None else step
        self.forward()
        d_losses = self.optimize_D()
        eg_losses = self.optimize_EG(step)
        self.step = step + 1
        out = {**eg_losses, **d_losses}
        vals = torch.tensor([float(out[k].detach()) for k in LOG_LOSSES], dtype=torch.float64)
        rank, world = _world()
        if world > 1:
            vals = vals.to(self.device)
            dist.all_reduce(vals)
            vals = vals.cpu() / world
        return dict(zip(LOG_LOSSES, vals.tolist()))

    # ---- state ---------------------------------------------------------------------
    def state_dict(self, *, optimizers: bool = True) -> dict:
        state = {"nets": {k: v.state_dict() for k, v in self.nets.items()}, "step": self.step}
        if optimizers:
            state["optimizers"] = {k: v.state_dict() for k, v in self.optimizers.items()}
        return state

    def load_state_dict(self, state: dict, *, optimizers: bool = True) -> None:
        for k, net in self.nets.items():
            net.load_state_dict(state["nets"][k])
        if optimizers and "optimizers" in state:
            for k, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][k])
        self.step = int(state.get("step", 0))

    def save_model_file(self, path, *, summary: dict | None = None, grid: dict | None = None) -> Path:
        """The self-describing model file: weights, config, SVRs, bin edges, labels,
        training summary, package and format versions."""
        cfg = self.cfg
        state = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "package_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "config": cfg.to_dict(),
            "bin_edges": list(cfg.bin_edges),
            "diagnoses": list(cfg.diagnoses),
            "nets": {k: v.state_dict() for k, v in self.nets.items()},
            "svrs": None if self.svrs is None else self.svrs.to_state(),
            "svr_table": None if self.svr_table is None else self.svr_table.cpu(),
            "grid": grid or {},
            "training": summary or {},
        }
        return _atomic_save(state, path)

    @classmethod
    def from_model_file(cls, path, *, device="cpu") -> tuple[DaniNetModel, dict]:
        """Load a model file (raises :class:`ModelFileError` with a one-line reason)."""
        state = load_model_file(path)
        cfg = TrainConfig.from_dict(state["config"])
        svrs = None
        if state.get("svrs") is not None:
            from .regional import RegionalSVRs

            svrs = RegionalSVRs.from_state(state["svrs"])
        model = cls(cfg, device=device, svr_table=state.get("svr_table"), svrs=svrs)
        try:
            for k, net in model.nets.items():
                net.load_state_dict(state["nets"][k])
        except (RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelFileError(f"{path}: weights do not match the model's configuration ({first})") from None
        return model, state


def _atomic_save(obj, path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def load_model_file(path) -> dict:
    """Read and validate a model file; :class:`ModelFileError` (one line) if it is
    missing, corrupt, not a DaniNet model or from an incompatible format version."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any read failure is a corrupt file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: not a readable DaniNet model file ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not a DaniNet model file")
    if state.get("format_version") != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format {state.get('format_version')} (written by daninet_pipeline "
            f"{state.get('package_version')}) is not supported by daninet_pipeline {__version__} "
            f"(format {MODEL_FORMAT_VERSION})"
        )
    for key in ("config", "nets"):
        if key not in state:
            raise ModelFileError(f"{path}: model file has no {key!r}")
    try:
        TrainConfig.from_dict(state["config"])
    except ValueError as exc:
        raise ModelFileError(f"{path}: configuration is not valid for this version ({exc})") from None
    return state


# --------------------------------------------------------------------------------------
# the training loop
# --------------------------------------------------------------------------------------
def _setup_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return _world()


def _reg_needed(cfg: TrainConfig) -> bool:
    w = cfg.weight_reg
    return w.value > 0 or (w.kind != "constant" and w.initial > 0)


def prepare_regional(store: SliceStore, cfg: TrainConfig):
    """Region masks of the store's slices and SVRs fitted on its longitudinal pairs."""
    from .regional import fit_regional_svrs, region_slice_masks, regional_pairs_table

    masks = region_slice_masks(store.volume_shape, store.affine, store.slice_indices, cfg)
    table = regional_pairs_table(store, masks, cfg)
    svrs = fit_regional_svrs(table, C=cfg.svr_C, epsilon=cfg.svr_epsilon)
    return masks, svrs


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
            "intensity_max": store.meta["intensity_max"]}


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


def train(config: TrainConfig | str | Path, store: SliceStore | str | Path, out_dir, resume: bool = False, *,
          device=None, progress: bool = True, stop_at: int | None = None, regional=None) -> Path:
    """Train DaniNet on a slice store; write ``out_dir/checkpoint.pt``,
    ``out_dir/losses.tsv`` and (at the end) the model file ``out_dir/model.pt``.

    ``config``: a :class:`TrainConfig`, a JSON path or a preset name. ``resume``: go on
    from ``out_dir/checkpoint.pt`` (its configuration must match, except ``steps``).
    ``stop_at``: stop (after a checkpoint) at this step without writing the model file,
    as an interrupted run would. ``regional``: precomputed ``(region_masks, svrs)``.
    Under ``torchrun`` each process trains on its share of every global batch of
    ``world_size * batch_size`` slices. Returns the path of the model file (or of the
    checkpoint when stopped early).
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_file(config)
    store = store if isinstance(store, SliceStore) else SliceStore(store)
    out_dir = Path(out_dir)
    rank, world = _setup_distributed()
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    if store.image_size != cfg.image_size:
        raise ValueError(f"the slice store holds {store.image_size} px slices but the configuration asks for "
                         f"{cfg.image_size}")
    source = SliceSource.from_store(store, cfg)
    masks = svrs = table = None
    if _reg_needed(cfg):
        masks, svrs = regional if regional is not None else prepare_regional(store, cfg)
        table = svrs.ratio_table(cfg.n_groups, len(cfg.diagnoses))
    model = DaniNetModel(cfg, device=device, svr_table=table, region_masks=masks, svrs=svrs)
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
    _broadcast_params(model.nets.values())
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
            _atomic_save({"config": cfg.to_dict(), "model": model.state_dict(), "package_version": __version__},
                         ckpt_path)

    for step in range(start, end):
        rows = sample_rows(source.n, B * world, cfg.seed, step)[rank * B:(rank + 1) * B]
        noise = prior_noise(B * world, cfg.z_dim, cfg.seed, step)[rank * B:(rank + 1) * B]
        model.set_input(source.batch(rows), noise)
        last = model.optimize_parameters(step)
        recent = (recent + [last])[-20:]
        if rank == 0 and (step % cfg.log_every == 0 or step == end - 1):
            log.write({"step": step, **last, **{f"w_{t}": v for t, v in model.weights(step).items()},
                       "lr": cfg.lr, "seconds": time.perf_counter() - t0})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(def_=f"{last['loss_def']:.4f}", vox=f"{last['loss_vox']:.4f}")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < end:
            checkpoint(step + 1)
    if bar is not None:
        bar.close()
    log.close()
    checkpoint(end)
    if world > 1:
        dist.barrier()
    if end < cfg.steps:
        return ckpt_path
    summary = _data_summary(store, cfg)
    summary.update({
        "steps": cfg.steps,
        "processes": world,
        "seconds_this_run": time.perf_counter() - t0,
        "final_losses": {k: _mean_or_nan([r[k] for r in recent]) for k in LOG_LOSSES},
        "svr_cv_mae": None if svrs is None else dict(svrs.cv_mae),
    })
    path = out_dir / MODEL_NAME
    if rank == 0:
        model.save_model_file(path, summary=summary, grid=_store_grid(store))
    if world > 1:
        dist.barrier()
    return path


def copy_model(model: DaniNetModel) -> DaniNetModel:
    """An independent copy (weights, optimisers re-created)."""
    new = copy.copy(model)
    for k in ("E", "G", "Dz", "Db"):
        setattr(new, k, copy.deepcopy(getattr(model, k)))
    new.make_optimizers(model.cfg.lr)
    return new


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
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = TrainConfig.from_file(args.config)
    if args.steps is not None:
        cfg = cfg.replace(steps=args.steps)
    path = train(cfg, args.store, args.out, resume=args.resume, progress=not args.no_progress,
                 stop_at=args.stop_at)
    rank, world = _world()
    if rank == 0:
        print(path)
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
