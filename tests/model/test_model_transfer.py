import numpy as np
import torch

from daninet_pipeline.model.losses import deformation_loss
from daninet_pipeline.model.simulate import Simulator
from daninet_pipeline.model.train import DaniNetModel
from daninet_pipeline.model.transfer import subject_source, transfer


def test_transfer_fine_tunes_a_copy(tiny_cfg, grid_volume):
    vol, aff = grid_volume
    cfg = tiny_cfg.replace(lr=1e-3)
    model = DaniNetModel(cfg)
    scans = [{"image": vol, "age": 66.0, "diagnosis": "CN"}, {"image": vol * 0.95, "age": 72.0, "diagnosis": "CN"}]
    src = subject_source(scans, cfg)
    assert src.n == 2 * len(np.flatnonzero((vol > 0).reshape(-1, vol.shape[2]).sum(0) >= 0.1 * (vol > 0).reshape(-1, vol.shape[2]).sum(0).max()))

    def def_loss(m):
        b = src.batch(np.arange(src.n))
        with torch.no_grad():
            m.set_input(b)
            m.forward()
            ar = torch.arange(len(b["x"]))
            return float(deformation_loss(b["x"], m.seq[ar, b["lo"]].unsqueeze(1), m.seq[ar, b["hi"]].unsqueeze(1),
                                          b["alpha"]))

    before_w = [p.clone() for p in model.G.parameters()]
    before = def_loss(model)
    tuned = transfer(model, scans, steps=15, lr=3e-3)
    assert all(torch.equal(a, b) for a, b in zip(before_w, model.G.parameters()))  # original untouched
    assert def_loss(tuned) < 0.7 * before
    # a Simulator in, a Simulator out
    sim = transfer(Simulator(model), scans, steps=1)
    assert isinstance(sim, Simulator)
    assert sim.simulate(vol, 66.0, "CN", [75.0])[0].shape == vol.shape
