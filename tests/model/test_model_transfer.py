import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from daninet_pipeline.errors import DaniNetError
from daninet_pipeline.model.config import WeightSchedule
from daninet_pipeline.model.daninet import DaniNetModel
from daninet_pipeline.model.data import brain_slice_indices
from daninet_pipeline.model.losses import deformation_loss
from daninet_pipeline.model.simulate import Simulator
from daninet_pipeline.model.transfer import prepare_transfer, scans_up_to, subject_source, transfer


def test_transfer_fine_tunes_a_copy_with_every_loss(tiny_cfg, grid_volume):
    vol, aff = grid_volume
    cfg = tiny_cfg.replace(lr=1e-3, weight_reg=WeightSchedule(1.0))  # L_reg on at the end of training
    R, A, D = len(cfg.regions), cfg.n_groups, len(cfg.diagnoses)
    model = DaniNetModel(cfg, ratio_table=np.full((R, A, A, D), 0.95, np.float32))
    scans = [{"image": nib.Nifti1Image(vol, aff), "age": 66.0, "diagnosis": "CN"},
             {"image": nib.Nifti1Image(vol * 0.95, aff), "age": 72.0, "diagnosis": "CN"}]
    idx = brain_slice_indices(vol, axis=cfg.slice_axis, fraction=cfg.brain_fraction)
    src = subject_source(scans, cfg, slice_indices=idx)
    assert src.n == 2 * len(idx)
    tuned, _ = prepare_transfer(model, scans)  # region masks cut from the atlas on the scans' grid
    assert tuned.region_masks.shape == (len(idx), R, cfg.image_size, cfg.image_size)
    assert int(tuned.region_masks.sum()) > 0

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


def test_transfer_with_L_reg_needs_the_atlas_grid(tiny_cfg, grid_volume):
    vol, _ = grid_volume
    cfg = tiny_cfg.replace(weight_reg=WeightSchedule(1.0))
    R, A, D = len(cfg.regions), cfg.n_groups, len(cfg.diagnoses)
    model = DaniNetModel(cfg, ratio_table=np.ones((R, A, A, D), np.float32))
    with pytest.raises(DaniNetError, match="affine"):
        prepare_transfer(model, [{"image": vol, "age": 66.0, "diagnosis": "CN"}])


def test_transfer_never_learns_from_a_scan_after_the_starting_one():
    sessions = pd.DataFrame({"session": ["M000", "M012", "M024", "M036"], "age": [70.0, 71.0, 72.0, 73.0]})
    assert scans_up_to(sessions, 71.0)["session"].tolist() == ["M000", "M012"]
    assert scans_up_to(sessions.iloc[::-1], 70.0)["session"].tolist() == ["M000"]
