"""The DaniNet model: E, G, D_z and D_b, their optimisers and one training step, in the
pytorch-CycleGAN-and-pix2pix shape (``set_input``, ``forward``, ``optimize_D``,
``optimize_EG``, ``set_requires_grad``).

Each step

1. encodes the batch, ``z = E(x)``, and generates the whole sequence
   ``g_p = G(z, p, d, slice position)`` for every age group ``p``;
2. updates D_z (prior samples against ``E(x).detach()``) and D_b. D_b sees, as in the
   authors' code, the generated image of *every* age group with that group's own
   condition (fake), the real slice with its own condition (real) and the real slice
   with a wrong age group (fake: a matching-aware discriminator, Reed et al. 2016), so
   D_b must use the age condition; these steps never touch E or G;
3. updates E and G with ``sum_t w_t(step) * L_t`` over L_def, L_vox (surrogate), L_reg,
   the two adversarial terms (G's over every age group) and total variation; every
   weight comes from its :class:`~daninet_pipeline.model.config.WeightSchedule`.

Every tensor the step makes follows the model's ``device`` and ``dtype`` (a float64 run
stays float64; nothing is left on the CPU when the model is on a GPU).
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch

from . import losses as L
from .config import LOSS_TERMS, TrainConfig
from .distributed import mean_over_processes, sync_grads
from .modelfile import atomic_save, load_model_file, model_state
from .networks import condition_vector, define_D, define_E, define_G

#: the losses one step reports, in the order of the TSV log
LOG_LOSSES = ("loss_def", "loss_vox", "loss_vox_sign", "loss_reg", "loss_adv_z", "loss_adv_b", "loss_tv",
              "loss_eg", "loss_dz", "loss_db")


class DaniNetModel:
    """E, G, D_z, D_b, their optimisers and one training step.

    ``ratio_table``: the regional model's ratio table ``(R, A, A, n_diagnoses)``;
    ``region_masks``: ``(n_slices, R, S, S)`` masks of the training slices. Both are
    needed only when L_reg has a non-zero weight. ``regional``: the fitted
    :class:`~daninet_pipeline.model.regional.RegionalModel` (saved in the model file).
    """

    def __init__(self, cfg: TrainConfig, *, device="cpu", dtype=torch.float32, ratio_table=None,
                 region_masks=None, regional=None):
        from ..allocator import keep_freed_memory

        keep_freed_memory()  # every step allocates and frees activations of 100s of MB
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = dtype
        torch.manual_seed(cfg.seed)
        self.E = define_E(cfg).to(self.device, dtype)
        self.G = define_G(cfg).to(self.device, dtype)
        self.Dz = define_D(cfg, "z").to(self.device, dtype)
        self.Db = define_D(cfg, "b").to(self.device, dtype)
        self.regional = regional
        self.ratio_table = None if ratio_table is None else torch.as_tensor(ratio_table).to(self.device, dtype)
        self.region_masks = None if region_masks is None else torch.as_tensor(region_masks).to(self.device)
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

    def autocast(self):
        """bf16 autocast of the forward passes when the configuration asks for it."""
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def condition(self, groups, d, pos) -> torch.Tensor:
        """The condition vector ``(B, A + D + 2F)`` in the model's dtype."""
        return condition_vector(groups, d, pos, self.cfg).to(self.dtype)

    def generate(self, z, groups, d, pos, x=None):
        """``G(z, p, d, pos)`` for each group in ``groups`` (list of ints):
        ``(B, len(groups), S, S)`` in the model's dtype."""
        B = z.shape[0]
        n = len(groups)
        g = torch.as_tensor(groups, device=z.device).repeat_interleave(B)
        c = self.condition(g, d.repeat(n), pos.repeat(n))
        xs = None if x is None else x.repeat(n, 1, 1, 1)
        with self.autocast():
            out = self.G(z.repeat(n, 1), c, xs)
        return out.to(self.dtype).view(n, B, *out.shape[1:]).transpose(0, 1)[:, :, 0]

    # ---- training step ------------------------------------------------------------
    def set_input(self, batch: dict, z_prior=None) -> None:
        """A batch from :meth:`~daninet_pipeline.model.data.SliceSource.batch` and the
        prior samples for D_z; floating tensors take the model's dtype, all its device.
        Without ``a_wrong`` in the batch, the wrong age groups are drawn here."""
        self.input = {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                      for k, v in batch.items()}
        B = len(batch["x"])
        if "a_wrong" not in self.input:
            offset = torch.randint(1, max(self.cfg.n_groups, 2), (B,)).to(self.device)
            self.input["a_wrong"] = (self.input["a"] + offset).remainder(self.cfg.n_groups)
        if z_prior is None:
            z_prior = torch.rand(B, self.cfg.z_dim) * 2 - 1
        self.input["z_prior"] = z_prior.to(self.device, self.dtype)

    def forward(self) -> None:
        """``z = E(x)``, the whole sequence ``seq`` ``(B, A, S, S)`` and its conditions."""
        inp = self.input
        with self.autocast():
            self.z = self.E(inp["x"]).to(self.dtype)
        A = self.cfg.n_groups
        self.seq = self.generate(self.z, list(range(A)), inp["d"], inp["pos"], inp["x"])
        B = self.seq.shape[0]
        # every generated image with its own condition, b-major: row b * A + p
        self.cond_seq = self.condition(torch.arange(A, device=self.device).repeat(B),
                                       inp["d"].repeat_interleave(A), inp["pos"].repeat_interleave(A))
        self.cond_a = self.condition(inp["a"], inp["d"], inp["pos"])
        self.cond_wrong = self.condition(inp["a_wrong"], inp["d"], inp["pos"])

    def _flat_seq(self, seq):
        B, A, S, _ = seq.shape
        return seq.reshape(B * A, 1, S, S)

    def _Db(self, x, cond):
        with self.autocast():
            return self.Db(x, cond).to(self.dtype)

    def backward_D(self) -> dict:
        """D_z and D_b losses on detached codes and images (E and G get no gradient)."""
        inp = self.input
        with self.autocast():
            d_prior = self.Dz(inp["z_prior"]).to(self.dtype)
            d_code = self.Dz(self.z.detach()).to(self.dtype)
        loss_dz = L.latent_adversarial_loss(d_prior, d_code, discriminator=True)
        loss_db = L.image_adversarial_loss(
            self._Db(inp["x"], self.cond_a), self._Db(self._flat_seq(self.seq.detach()), self.cond_seq),
            discriminator=True, d_mismatch=self._Db(inp["x"], self.cond_wrong))
        return {"loss_dz": loss_dz, "loss_db": loss_db}

    def optimize_D(self) -> dict:
        self.set_requires_grad([self.Dz, self.Db], True)
        losses = self.backward_D()
        self.opt_Dz.zero_grad(set_to_none=True)
        self.opt_Db.zero_grad(set_to_none=True)
        (losses["loss_dz"] + losses["loss_db"]).backward()
        sync_grads(self.Dz.parameters())
        sync_grads(self.Db.parameters())
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
        if self.ratio_table is not None and self.region_masks is not None:
            masks = self.region_masks[inp["slice_k"]]
            term("reg", lambda: L.regional_loss((self.seq + 1) / 2, inp["a"], inp["d"], masks, self.ratio_table,
                                                eps=self.cfg.reg_eps))
        elif w["reg"] > 0:
            raise RuntimeError("L_reg has a non-zero weight but no ratio table / region masks were given")
        else:
            terms["reg"] = torch.full((), float("nan"), device=self.device, dtype=self.dtype)
        with self.autocast():
            term("adv_z", lambda: L.latent_adversarial_loss(None, self.Dz(self.z).to(self.dtype),
                                                            discriminator=False))
        term("adv_b", lambda: L.image_adversarial_loss(None, self._Db(self._flat_seq(self.seq), self.cond_seq),
                                                       discriminator=False))
        term("tv", lambda: L.total_variation_loss(self.seq))
        total = sum(w[t] * terms[t] for t in LOSS_TERMS if w[t] > 0)
        if not torch.is_tensor(total):
            total = torch.zeros((), device=self.device, dtype=self.dtype, requires_grad=True)
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
        sync_grads(list(self.E.parameters()) + list(self.G.parameters()))
        self.opt_EG.step()
        self.set_requires_grad([self.Dz, self.Db], True)
        return out

    def training_step(self, step: int | None = None) -> dict:
        """The tensor part of one optimisation step (forward, every loss, backward,
        optimiser steps) on the input set by :meth:`set_input`; returns every loss as a
        detached tensor on the model's device."""
        step = self.step if step is None else step
        self.forward()
        d_losses = self.optimize_D()
        eg_losses = self.optimize_EG(step)
        self.step = step + 1
        return {k: v.detach() for k, v in {**eg_losses, **d_losses}.items()}

    def optimize_parameters(self, step: int | None = None) -> dict:
        """:meth:`training_step`, with every loss as a float (averaged over processes)."""
        losses = self.training_step(step)
        vals = mean_over_processes(torch.stack([losses[k].to(torch.float64) for k in LOG_LOSSES]))
        return dict(zip(LOG_LOSSES, vals.cpu().tolist()))

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
        """The self-describing model file (:mod:`~daninet_pipeline.model.modelfile`)."""
        return atomic_save(model_state(self.cfg, self.nets, regional=self.regional, ratio_table=self.ratio_table,
                                       grid=grid, summary=summary), path)

    @classmethod
    def from_model_file(cls, path, *, device="cpu", dtype=torch.float32) -> tuple[DaniNetModel, dict]:
        """Load a model file (raises :class:`ModelFileError` with a one-line reason)."""
        from ..errors import ModelFileError
        from .config import TrainConfig

        state = load_model_file(path)
        cfg = TrainConfig.from_dict(state["config"])
        model = cls(cfg, device=device, dtype=dtype, ratio_table=state.get("ratio_table"),
                    regional=state.get("regional"))
        try:
            for k, net in model.nets.items():
                net.load_state_dict(state["nets"][k])
        except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{path}: weights do not match the model's configuration ({first})") from None
        return model, state


def copy_model(model: DaniNetModel) -> DaniNetModel:
    """An independent copy (weights copied, optimisers re-created)."""
    new = copy.copy(model)
    for k in ("E", "G", "Dz", "Db"):
        setattr(new, k, copy.deepcopy(getattr(model, k)))
    new.make_optimizers(model.cfg.lr)
    return new
