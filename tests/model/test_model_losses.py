"""Each loss against its formula, computed by explicit loops on hand-made tensors."""

import math

import numpy as np
import pytest
import torch

from daninet_pipeline.model import losses as L


def _rand_seq(B=3, A=5, H=4, W=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, A, H, W, generator=g), torch.tensor([0, 2, 4])[:B]


def test_deformation_loss_formula():
    g = torch.Generator().manual_seed(1)
    x, lo, hi = (torch.rand(3, 1, 4, 4, generator=g) for _ in range(3))
    alpha = torch.tensor([0.0, 0.3, 1.0])
    want = np.mean([((x[b] - (alpha[b] * lo[b] + (1 - alpha[b]) * hi[b])) ** 2).mean().item() for b in range(3)])
    assert L.deformation_loss(x, lo, hi, alpha).item() == pytest.approx(want, rel=1e-6)
    assert L.deformation_loss(x, x, x, alpha).item() == 0


def _sign_loss_by_loops(seq, a):
    B, A, H, W = seq.shape
    total = 0.0
    for b in range(B):
        ab = int(a[b])
        s = 0.0
        for p in range(A):
            if p < ab:
                s += torch.sign(seq[b, ab] - seq[b, p]).sum().item()
            elif p > ab:
                s += torch.sign(seq[b, p] - seq[b, ab]).sum().item()
        total += s / (H * W * (A - 1))
    return total / B


def test_voxel_sign_loss_formula():
    seq, a = _rand_seq()
    assert L.voxel_sign_loss(seq, a).item() == pytest.approx(_sign_loss_by_loops(seq, a), abs=1e-6)


def test_voxel_sign_loss_extremes():
    seq = torch.arange(5, 0, -1, dtype=torch.float32).reshape(1, 5, 1, 1).expand(2, 5, 3, 3)  # strictly decreasing
    a = torch.tensor([1, 3])
    assert L.voxel_sign_loss(seq, a).item() == -1.0
    assert L.voxel_sign_loss(seq.flip(1), a).item() == 1.0
    assert L.voxel_sign_loss(torch.ones(2, 5, 3, 3), a).item() == 0.0
    assert L.voxel_violation_rate(seq, a).item() == 0.0
    assert L.voxel_violation_rate(seq.flip(1), a).item() == 1.0


def test_voxel_loss_zero_exactly_on_monotone_sequences():
    seq, a = _rand_seq(seed=3)
    mono = seq.sort(dim=1, descending=True).values
    assert L.voxel_loss(mono, a).item() == 0.0
    flat = torch.ones(3, 5, 2, 2)
    assert L.voxel_loss(flat, a).item() == 0.0
    # not monotone although every group respects g_a: still penalised (the consecutive term)
    s = torch.tensor([2.0, 3.0, 1.0, 0.5, 0.0]).reshape(1, 5, 1, 1)
    assert L.voxel_loss(s, torch.tensor([2])).item() > 0
    assert L.voxel_sign_loss(s, torch.tensor([2])).item() == -1.0


def test_voxel_loss_matches_hand_value_and_grows_with_violation():
    def by_hand(seq, a):
        B, A = seq.shape[:2]
        out = 0.0
        for b in range(B):
            ab = int(a[b])
            v = torch.zeros(seq.shape[2:])
            for p in range(A):
                if p < ab:
                    v += torch.relu(seq[b, ab] - seq[b, p])
                elif p > ab:
                    v += torch.relu(seq[b, p] - seq[b, ab])
                if p < A - 1:
                    v += torch.relu(seq[b, p + 1] - seq[b, p])
            out += v.mean().item() / (A - 1)
        return out / B

    seq, a = _rand_seq(seed=5)
    assert L.voxel_loss(seq, a).item() == pytest.approx(by_hand(seq, a), rel=1e-5)
    base = torch.tensor([3.0, 2.0, 1.0]).reshape(1, 3, 1, 1)
    vals = []
    for bump in (0.0, 1.5, 2.0, 3.0):
        s = base.clone()
        s[0, 2] += bump  # the oldest group brightens by `bump`
        vals.append(L.voxel_loss(s, torch.tensor([1])).item())
    assert vals[0] == 0 < vals[1] < vals[2] < vals[3]


def test_voxel_loss_has_gradient_only_where_violated():
    seq = torch.tensor([3.0, 2.0, 2.5]).reshape(1, 3, 1, 1).requires_grad_()
    L.voxel_loss(seq, torch.tensor([0])).backward()
    # only the step 2 -> 2.5 is violated: d/dg1 = -1/(A-1), d/dg2 = +1/(A-1)
    assert seq.grad.flatten().tolist() == [0.0, -0.5, 0.5]


def _regional_by_loops(seq, a, d, masks, table, eps):
    """L_reg by loops: squared ratio errors weighted by each region's area in the slice,
    over (A - 1) times the total area; absent regions add nothing."""
    B, A = seq.shape[:2]
    R = masks.shape[0]
    num = den = 0.0
    for b in range(B):
        ab, db = int(a[b]), int(d[b])
        for i in range(R):
            w = masks[i].sum().item()
            if w == 0:
                continue
            Sa = (seq[b, ab] * masks[i]).sum().item()
            for p in range(A):
                Sp = (seq[b, p] * masks[i]).sum().item()
                if p < ab:
                    num += w * (table[i, p, ab, db].item() - (Sa + eps) / (Sp + eps)) ** 2
                elif p > ab:
                    num += w * (table[i, p, ab, db].item() - (Sp + eps) / (Sa + eps)) ** 2
            den += w * (A - 1)
    return num / den


def test_regional_loss_formula_with_a_table():
    seq, a = _rand_seq(B=3, A=4, H=5, W=5, seed=7)
    a = torch.tensor([0, 2, 3])
    d = torch.tensor([1, 0, 1])
    g = torch.Generator().manual_seed(8)
    masks = (torch.rand(3, 5, 5, generator=g) > 0.5).float()
    masks[2] = 0  # a region absent from the slices
    table = 0.8 + 0.4 * torch.rand(3, 4, 4, 2, generator=g)
    got = L.regional_loss(seq, a, d, masks, table, eps=0.1).item()
    assert got == pytest.approx(_regional_by_loops(seq, a, d, masks, table, 0.1), rel=1e-5)


def test_regional_loss_per_sample_predictions_and_masks():
    seq, _ = _rand_seq(B=2, A=3, H=4, W=4, seed=9)
    a, d = torch.tensor([1, 0]), torch.tensor([0, 0])
    g = torch.Generator().manual_seed(10)
    masks = (torch.rand(3, 4, 4, generator=g) > 0.3).float()
    table = 0.9 + 0.2 * torch.rand(3, 3, 3, 1, generator=g)
    per_sample = torch.stack([table[:, :, int(a[b]), int(d[b])] for b in range(2)])  # (B, R, A)
    per_masks = masks.expand(2, 3, 4, 4)
    want = L.regional_loss(seq, a, d, masks, table)
    assert L.regional_loss(seq, a, d, per_masks, per_sample).item() == pytest.approx(want.item(), rel=1e-6)


def test_regional_loss_is_zero_when_the_ratios_match():
    # a region darkening by 10 % per group, SVR predicting exactly that
    A = 4
    seq = torch.stack([torch.full((3, 3), 0.9**p) for p in range(A)]).unsqueeze(0)
    masks = torch.ones(1, 3, 3)
    table = torch.ones(1, A, A, 1)
    for p in range(A):
        for q in range(A):
            table[0, p, q, 0] = 0.9 ** abs(p - q)
    assert L.regional_loss(seq, torch.tensor([1]), torch.tensor([0]), masks, table, eps=0.0).item() == \
        pytest.approx(0.0, abs=1e-10)


def test_adversarial_losses_are_the_log_formulas():
    real = torch.tensor([0.3, -1.2])
    fake = torch.tensor([2.0, -0.5])
    sig = torch.sigmoid
    d_want = (-(torch.log(sig(real))).mean() - torch.log(1 - sig(fake)).mean()).item()
    g_want = (-torch.log(sig(fake))).mean().item()
    for fn in (L.latent_adversarial_loss, L.image_adversarial_loss):
        assert fn(real, fake, discriminator=True).item() == pytest.approx(d_want, rel=1e-5)
        assert fn(real, fake, discriminator=False).item() == pytest.approx(g_want, rel=1e-5)
    gan = L.GANLoss()
    assert gan(torch.zeros(3), True).item() == pytest.approx(math.log(2))
    out = gan(torch.zeros(3, dtype=torch.float64, device="meta"), False)  # the label follows the logits
    assert out.dtype == torch.float64 and out.device.type == "meta"


def test_total_variation():
    img = torch.zeros(1, 1, 3, 3)
    assert L.total_variation_loss(img).item() == 0
    img[0, 0, 1, 1] = 1
    assert L.total_variation_loss(img).item() == pytest.approx(2 / 6 + 2 / 6)
