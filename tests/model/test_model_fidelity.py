"""The method as the paper and the authors' code define it (issue: model fidelity).

D_b scores every age group's generated image with its own condition and counts a real
slice shown with a wrong age as fake; the regional progression model composes across
spans; L_reg compares per-slice ratios, weights regions by area and skips absent ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from daninet_pipeline.model import losses as L
from daninet_pipeline.model.config import TrainConfig, WeightSchedule

from .test_model_device import build_model

ZERO = WeightSchedule(0.0)


def only(cfg, term):
    """``cfg`` with every loss weight 0 but ``term``'s (1)."""
    return cfg.replace(**{f"weight_{t}": WeightSchedule(1.0 if t == term else 0.0)
                          for t in ("def", "vox", "reg", "adv_z", "adv_b", "tv")})


# ---- D_b over the whole sequence -----------------------------------------------------
def test_image_adversarial_gradient_reaches_every_age_group(tiny_cfg):
    cfg = only(tiny_cfg, "adv_b")
    model = build_model(cfg, device="cpu", B=4)
    model.forward()
    model.seq.retain_grad()
    model.set_requires_grad([model.Dz, model.Db], False)
    total, _ = model.compute_EG_losses(0)
    total.backward()
    per_image = model.seq.grad.abs().sum(dim=(2, 3))  # (B, A): every sample, every age group
    assert per_image.shape == (4, cfg.n_groups)
    assert bool((per_image > 0).all()), per_image.tolist()


def test_image_discriminator_scores_every_group_and_real_slices_with_a_wrong_age(tiny_cfg):
    cfg = tiny_cfg
    model = build_model(cfg, device="cpu", B=4)
    calls = []
    forward = model.Db.forward

    def record(x, cond):
        calls.append((x.detach().clone(), cond.detach().clone()))
        return forward(x, cond)

    model.Db.forward = record
    model.forward()
    model.backward_D()
    A = cfg.n_groups
    x = model.input["x"]
    a = model.input["a"]
    real_ages, fake_ages = [], set()
    for inp, cond in calls:
        ages = cond[:, :A].argmax(1)
        if inp.shape == x.shape and torch.equal(inp, x):
            real_ages.append(ages)
        else:
            fake_ages.update(ages.tolist())
    assert fake_ages == set(range(A))  # every age group's generated image is scored
    assert any(torch.equal(r, a) for r in real_ages)  # the real slice with its own age
    assert any(bool((r != a).all()) for r in real_ages)  # and with a wrong age (counts as fake)


# ---- L_reg: area weights, absent regions -----------------------------------------------
def test_regional_loss_skips_regions_absent_from_a_slice():
    seq = torch.tensor([2.0, 1.0]).reshape(1, 2, 1, 1).repeat(1, 1, 2, 2)
    present = torch.ones(1, 2, 2)
    masks = torch.stack([present[0], torch.zeros(2, 2)])  # region 1 absent from the slice
    a, d = torch.tensor([0]), torch.tensor([0])
    target = torch.tensor([[[1.0, 0.5]], [[1.0, 0.2]]]).reshape(1, 2, 2)  # (B, R, A)
    with_absent = L.regional_loss(seq, a, d, masks, target, eps=0.0)
    alone = L.regional_loss(seq, a, d, masks[:1], target[:, :1], eps=0.0)
    assert float(with_absent) == pytest.approx(float(alone)) == pytest.approx(0.0)


def test_regional_loss_weights_regions_by_their_area_in_the_slice():
    seq = torch.ones(1, 2, 3, 3)
    seq[0, 1] = 0.5  # every region halves from group 0 to 1
    masks = torch.zeros(2, 3, 3)
    masks[0, 0, 0] = 1  # region 0: 1 pixel, target 1.0 (error 0.5)
    masks[1, 1:, :] = 1  # region 1: 6 pixels, target 0.5 (no error)
    target = torch.tensor([[[1.0, 1.0], [1.0, 0.5]]])  # (B, R, A)
    loss = L.regional_loss(seq, torch.tensor([0]), torch.tensor([0]), masks, target, eps=0.0)
    assert float(loss) == pytest.approx(1 * 0.5**2 / 7)


# ---- the regional progression model composes --------------------------------------------
def toy_pairs(cfg, *, per_group=0.91, n_pairs=300, seed=0):
    """Pairs spanning 1-2 age groups whose ratio composes (``per_group`` per group)."""
    rng = np.random.default_rng(seed)
    A = cfg.n_groups
    centres = cfg.bin_centres
    rows = []
    for k in range(n_pairs):
        span = int(rng.integers(1, 3))
        lo = int(rng.integers(0, A - span))
        ratio = per_group**span * float(np.exp(rng.normal(0, 0.002)))
        rows.append({"subject": f"s{k % 60}", "region": "hippocampus", "diagnosis": 0, "from_group": lo,
                     "to_group": lo + span, "from_age": centres[lo], "to_age": centres[lo + span],
                     "log_ratio": np.log(ratio), "weight": 1.0})
    return pd.DataFrame(rows)


def test_regional_rates_compose_across_spans():
    from daninet_pipeline.model.regional import fit_regional_model

    cfg = TrainConfig()  # A = 10 groups, 63-88 years
    model = fit_regional_model(toy_pairs(cfg), cfg)
    table = model.ratio_table(cfg.n_groups, len(cfg.diagnoses))[0, :, :, 0]  # [p, a]: min -> max
    assert table[0, 1] == pytest.approx(0.91, abs=0.005)
    assert table[0, 5] == pytest.approx(0.91**5, abs=0.01)
    assert table[0, 9] == pytest.approx(0.91**9, abs=0.015)
    for a, b, c in [(0, 4, 9), (1, 2, 3), (2, 6, 8)]:
        assert table[a, c] == pytest.approx(table[a, b] * table[b, c], rel=1e-5)
    assert np.allclose(table, table.T)


def test_regional_rates_differ_by_diagnosis_and_report_a_cross_validated_error():
    from daninet_pipeline.model.regional import fit_regional_model

    cfg = TrainConfig()
    fast = toy_pairs(cfg, per_group=0.85, seed=1).assign(diagnosis=2)
    slow = toy_pairs(cfg, per_group=0.97, seed=2).assign(diagnosis=0, subject=lambda t: "c" + t["subject"])
    model = fit_regional_model(pd.concat([fast, slow], ignore_index=True), cfg)
    t = model.ratio_table(cfg.n_groups, len(cfg.diagnoses))[0]
    assert t[0, 3, 2] == pytest.approx(0.85**3, abs=0.01)
    assert t[0, 3, 0] == pytest.approx(0.97**3, abs=0.01)
    assert model.cv_error["hippocampus"] < 0.01


def test_svr_option_is_kept_for_the_papers_choice():
    from daninet_pipeline.model.regional import fit_regional_model

    cfg = TrainConfig().replace(regional_model="svr")
    model = fit_regional_model(toy_pairs(cfg), cfg)
    table = model.ratio_table(cfg.n_groups, len(cfg.diagnoses))[0, :, :, 0]
    assert table[0, 1] == pytest.approx(0.91, abs=0.01)


def test_regional_targets_are_per_slice_area_weighted_log_ratios():
    from daninet_pipeline.model.regional import regional_change

    rng = np.random.default_rng(0)
    early = rng.random((3, 4, 4)).astype(np.float32) + 0.5
    late = early * np.array([0.9, 0.8, 0.7], np.float32)[:, None, None]
    masks = np.zeros((3, 1, 4, 4), np.float32)
    masks[0, 0, :1] = 1  # 4 px
    masks[1, 0, :2] = 1  # 8 px
    # slice 2: region absent
    log_ratio, weight = regional_change(early, late, masks, eps=0.1)
    s_e = [(early[k] * masks[k, 0]).sum() for k in range(2)]
    s_l = [(late[k] * masks[k, 0]).sum() for k in range(2)]
    expected = (4 * np.log((s_l[0] + 0.1) / (s_e[0] + 0.1)) + 8 * np.log((s_l[1] + 0.1) / (s_e[1] + 0.1))) / 12
    assert log_ratio[0] == pytest.approx(expected, rel=1e-5)
    assert weight[0] == pytest.approx(12)
