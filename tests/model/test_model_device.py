"""Every tensor the model, the losses, the trainer, transfer and the simulator make
follows its inputs' device and dtype.

Without a GPU, PyTorch's ``meta`` device stands in for CUDA: a tensor left on the CPU
meets a meta tensor and raises "Tensor on device meta is not on the expected device
cpu". The float64 run catches silent promotions and ``.float()`` casts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from daninet_pipeline.model.config import TrainConfig
from daninet_pipeline.model.daninet import DaniNetModel


def fake_batch(cfg, B, *, device="cpu", dtype=torch.float32, seed=0):
    """A batch like :meth:`SliceSource.batch`, on ``device`` in ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    A = cfg.n_groups
    a = torch.randint(0, A, (B,), generator=g)
    return {"x": (torch.rand(B, 1, cfg.image_size, cfg.image_size, generator=g) * 2 - 1).to(device, dtype),
            "a": a.to(device), "lo": a.to(device), "hi": torch.clamp(a + 1, max=A - 1).to(device),
            "alpha": torch.full((B,), 0.25).to(device, dtype),
            "d": torch.randint(0, len(cfg.diagnoses), (B,), generator=g).to(device),
            "pos": torch.rand(B, generator=g).to(device, dtype), "slice_k": torch.arange(B).to(device)}


def regional_inputs(cfg, n_slices, *, seed=0):
    rng = np.random.default_rng(seed)
    R, A, D = len(cfg.regions), cfg.n_groups, len(cfg.diagnoses)
    table = np.clip(rng.normal(0.95, 0.02, (R, A, A, D)), 0.5, 1.5).astype(np.float32)
    masks = (rng.random((n_slices, R, cfg.image_size, cfg.image_size)) > 0.7).astype(np.uint8)
    return table, masks


def build_model(cfg, *, device, dtype=torch.float32, B=4):
    """A model on ``device`` in ``dtype`` with a batch set."""
    table, masks = regional_inputs(cfg, B)
    model = DaniNetModel(cfg, device=device, dtype=dtype, ratio_table=table, region_masks=masks)
    g = torch.Generator().manual_seed(1)
    model.set_input(fake_batch(cfg, B, device=device, dtype=dtype),
                    (torch.rand(B, cfg.z_dim, generator=g) * 2 - 1).to(device, dtype))
    return model


def one_step_tensors(model, step):
    """The tensor part of one optimisation step: forward, every loss, backward, optimiser
    steps (D_z, D_b, then E and G)."""
    model.forward()
    d_losses = model.optimize_D()
    eg_losses = model.optimize_EG(step)
    return {**d_losses, **eg_losses}


def paper_cfg():
    """The paper-sized preset (128 px, width 64, z 200, A = 10), every loss switched on."""
    cfg = TrainConfig.from_file("full")
    assert (cfg.image_size, cfg.width, cfg.z_dim, cfg.n_groups) == (128, 64, 200, 10)
    return cfg


def test_paper_sized_training_step_runs_on_the_meta_device():
    cfg = paper_cfg()
    model = build_model(cfg, device="meta")
    losses = one_step_tensors(model, step=cfg.steps - 1)
    assert model.seq.device.type == "meta" and model.seq.shape == (4, 10, 128, 128)
    for name, value in losses.items():
        assert value.device.type == "meta", name
    for net in model.nets.values():
        assert all(p.device.type == "meta" for p in net.parameters())


def test_paper_sized_transfer_step_runs_on_the_meta_device():
    from daninet_pipeline.model.transfer import prepare_transfer

    cfg = paper_cfg()
    model = build_model(cfg, device="meta")
    rng = np.random.default_rng(0)
    vol = np.zeros((40, 48, 30), np.float32)
    vol[5:35, 6:42, 4:26] = rng.random((30, 36, 22)).astype(np.float32) + 0.2
    scans = [{"image": vol, "age": 70.0, "diagnosis": "MCI"}]
    masks = rng.random((22, len(cfg.regions), cfg.image_size, cfg.image_size)) > 0.8
    tuned, source = prepare_transfer(model, scans, region_masks=masks, slice_indices=np.arange(4, 26))
    assert tuned.region_masks.device.type == "meta" and tuned.ratio_table is not None
    rows = np.arange(4)
    tuned.set_input(source.batch(rows), torch.rand(4, cfg.z_dim) * 2 - 1)
    losses = tuned.training_step(cfg.steps - 1)
    assert all(v.device.type == "meta" for v in losses.values())
    assert torch.isfinite(model.region_masks.sum()).device.type == "meta"


def test_paper_sized_simulation_runs_on_the_meta_device():
    from daninet_pipeline.model.simulate import Simulator

    cfg = paper_cfg()
    model = build_model(cfg, device="meta")
    sim = Simulator(model)
    x = torch.empty(6, 1, 128, 128, device="meta")
    pos = torch.linspace(0.2, 0.8, 6, device="meta")
    z = sim.encode(x, batch_size=4)
    assert z.device.type == "meta" and z.shape == (6, cfg.z_dim)
    for g in range(cfg.n_groups):
        out = sim.generate_group(z, x, g, 1, pos, batch_size=4)
        assert out.device.type == "meta" and out.shape == (6, 128, 128)


def test_one_step_in_float64_keeps_every_loss_output_and_gradient_float64(tiny_cfg):
    cfg = tiny_cfg.replace(n_bins=4)
    model = build_model(cfg, device="cpu", dtype=torch.float64)
    step = cfg.steps - 1
    model.forward()
    assert model.z.dtype == torch.float64 and model.seq.dtype == torch.float64
    d_losses = model.optimize_D()
    for name, value in d_losses.items():
        assert value.dtype == torch.float64, name
    for net in ("Dz", "Db"):
        for p in model.nets[net].parameters():
            assert p.grad is not None and p.grad.dtype == torch.float64, net
    eg_total, eg_losses = model.compute_EG_losses(step)
    for name, value in eg_losses.items():
        assert value.dtype == torch.float64, name
    model.opt_EG.zero_grad(set_to_none=True)
    eg_total.backward()
    for net in ("E", "G"):
        for p in model.nets[net].parameters():
            assert p.grad is not None and p.grad.dtype == torch.float64, net
    model.opt_EG.step()
    for net in model.nets.values():
        assert all(p.dtype == torch.float64 for p in net.parameters())
