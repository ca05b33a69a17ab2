"""DaniNet losses, each next to its formula (DESIGN section 1; Ravi et al. 2019).

Conventions: ``seq`` is a generated sequence of shape ``(B, A, H, W)``, one channel per
age group (0-based, youngest first); ``a`` ``(B,)`` holds each input's own age group.
"Monotone" means non-increasing with age at every voxel: in T1w images atrophy turns
tissue into darker CSF, so an earlier age group is brighter than or as bright as a
later one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def deformation_loss(x, g_lo, g_hi, alpha):
    r"""L_def, the morphology (reconstruction) term.

    .. math:: L_{def} = \operatorname{mean}\big(x - (\alpha\, g_{lo} + (1-\alpha)\, g_{hi})\big)^2

    ``g_lo``/``g_hi`` are the outputs for the two age groups whose centres bracket the
    input's age, ``alpha`` ``(B,)`` the weight of the lower one (1 at the centre of
    ``lo``). ``x``, ``g_lo``, ``g_hi`` share a shape whose first axis is B.

    >>> x = torch.ones(2, 1, 2, 2)
    >>> float(deformation_loss(x, torch.ones_like(x), torch.zeros_like(x), torch.tensor([1.0, 0.5])))
    0.125
    """
    alpha = alpha.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return torch.mean((x - (alpha * g_lo + (1 - alpha) * g_hi)) ** 2)


def _anchored_differences(seq, a):
    """``diff[b, p] = g_a - g_p`` for ``p < a`` and ``g_p - g_a`` for ``p > a`` (0 at
    ``p == a``): positive where the constraint is broken. Returns ``(diff, mask)``."""
    B, A = seq.shape[:2]
    a = a.long().to(seq.device)
    g_a = seq[torch.arange(B, device=seq.device), a].unsqueeze(1)  # (B, 1, H, W)
    p = torch.arange(A, device=seq.device).unsqueeze(0)  # (1, A)
    sign = torch.where(p < a.unsqueeze(1), 1.0, -1.0).to(seq.dtype)  # +1 before a, -1 after
    sign = torch.where(p == a.unsqueeze(1), torch.zeros_like(sign), sign)
    diff = sign[:, :, None, None] * (g_a - seq)
    return diff, sign != 0


def voxel_sign_loss(seq, a):
    r"""L_vox exactly as the paper writes it (with ``sgn``), for reporting.

    .. math:: L_{vox} = \frac{1}{M N (A-1)} \Big[ \sum_{p<a} \operatorname{sgn}(g_a - g_p)
              + \sum_{p>a} \operatorname{sgn}(g_p - g_a) \Big]

    averaged over the batch. Each term is +1 at a voxel where the monotone constraint
    is broken, 0 where the two groups are equal and -1 where it holds strictly, so the
    value lies in ``[-1, 1]``: <= 0 for a monotone sequence (0 for a constant one, -1
    for a strictly monotone one). It has no useful gradient; train with
    :func:`voxel_loss`. :func:`voxel_violation_rate` gives the fraction of broken
    terms (0 for a monotone sequence).

    >>> seq = torch.tensor([3.0, 2.0, 1.0]).reshape(1, 3, 1, 1)
    >>> float(voxel_sign_loss(seq, torch.tensor([1])))
    -1.0
    """
    diff, _ = _anchored_differences(seq, a)
    A = seq.shape[1]
    return torch.sign(diff).sum(dim=1).mean() / (A - 1)


def voxel_violation_rate(seq, a, tol: float = 0.0):
    """Fraction of the ``(voxel, p != a)`` terms of :func:`voxel_sign_loss` that break
    the constraint by more than ``tol``: 0 for a monotone sequence."""
    diff, _ = _anchored_differences(seq, a)
    A = seq.shape[1]
    return (diff > tol).to(seq.dtype).sum(dim=1).mean() / (A - 1)


def voxel_loss(seq, a):
    r"""Differentiable surrogate of L_vox: the size of every violation.

    .. math:: \tilde L_{vox} = \frac{1}{M N (A-1)} \Big[ \sum_{p<a} \operatorname{relu}(g_a - g_p)
              + \sum_{p>a} \operatorname{relu}(g_p - g_a)
              + \sum_{p=1}^{A-1} \operatorname{relu}(g_{p+1} - g_p) \Big]

    averaged over the batch. The first two sums are the paper's terms with ``sgn``
    replaced by ``relu`` (0 where the constraint holds, the violation's size where it
    does not); the third adds each consecutive step, so that the loss is 0 exactly when
    the whole sequence is monotone (no later group brighter than an earlier one at any
    voxel), not only relative to ``g_a``, and grows linearly with every violation.

    >>> seq = torch.tensor([1.0, 2.0, 0.0]).reshape(1, 3, 1, 1)
    >>> float(voxel_loss(seq, torch.tensor([0])))  # (relu(2-1) + 0 + relu(2-1) + 0) / 2
    1.0
    """
    diff, _ = _anchored_differences(seq, a)
    steps = F.relu(seq[:, 1:] - seq[:, :-1]).sum(dim=1)
    A = seq.shape[1]
    return (F.relu(diff).sum(dim=1) + steps).mean() / (A - 1)


def regional_loss(seq, a, d, region_masks, target_ratios, eps=0.1):
    r"""L_reg, the region-level term, with a **squared** difference, weighted by each
    region's area in the slice.

    .. math:: L_{reg} = \frac{\sum_{b,i} w_{bi} \big[ \sum_{p<a} \big(T_i(p,a,d) -
              \frac{\sum g_a r_i + \epsilon}{\sum g_p r_i + \epsilon}\big)^2
              + \sum_{p>a} \big(T_i(a,p,d) - \frac{\sum g_p r_i + \epsilon}{\sum g_a r_i + \epsilon}\big)^2 \big]}
              {(A-1) \sum_{b,i} w_{bi}}

    with ``w_bi`` the area (pixels) of region ``i`` in slice ``b``. The paper's terms are
    signed (they could cancel or be minimised by moving away from the target), so each
    difference is squared here; the paper averages regions with equal weight, here a
    region counts by its area in the slice, and a region absent from a slice
    (``w = 0``) adds nothing. ``T_i(p, a, d)`` is the regional model's ratio of later
    over earlier regional intensity between groups ``min(p, a)`` and ``max(p, a)``,
    measured per slice like the ratios above
    (:func:`~daninet_pipeline.model.regional.regional_change`).

    ``seq`` must hold non-negative intensities (the trainer passes ``(g + 1) / 2``).
    ``region_masks``: ``(R, H, W)`` or per sample ``(B, R, H, W)``, 0/1. ``target_ratios``:
    either the ratio table ``(R, A, A, n_diagnoses)`` indexed ``[i, p, a, d]`` (see
    :meth:`RegionalModel.ratio_table`), or per-sample targets ``(B, R, A)``
    (``[b, i, p]``; the entry ``p == a`` is ignored). 0 when no region is in the batch.

    >>> seq = torch.tensor([2.0, 1.0]).reshape(1, 2, 1, 1)
    >>> masks = torch.ones(1, 1, 1)
    >>> r = torch.tensor([[[0.0, 0.5]]])  # the target halves from group 0 to 1
    >>> round(float(regional_loss(seq, torch.tensor([0]), torch.tensor([0]), masks, r, eps=0.0)), 6)
    0.0
    """
    B, A = seq.shape[:2]
    a = a.long().to(seq.device)
    d = d.long().to(seq.device)
    m = region_masks.to(seq.device, seq.dtype)
    if m.dim() == 3:
        m = m.unsqueeze(0).expand(B, -1, -1, -1)
    area = m.sum(dim=(2, 3))  # (B, R)
    S = torch.einsum("bphw,brhw->bpr", seq, m) + eps  # (B, A, R)
    S_a = S[torch.arange(B, device=seq.device), a].unsqueeze(1)  # (B, 1, R)
    p = torch.arange(A, device=seq.device)[None, :, None]
    before = p < a[:, None, None]
    ratio = torch.where(before, S_a / S, S / S_a)  # later over earlier, (B, A, R)
    if target_ratios.dim() == 4:
        t = target_ratios.to(seq.device, seq.dtype)
        target = t[:, :, a, d].permute(2, 1, 0)  # table[i, p, a, d] -> (B, A, R)
    else:
        target = target_ratios.to(seq.device, seq.dtype).permute(0, 2, 1)
    keep = (p != a[:, None, None]) & (area[:, None, :] > 0)
    sq = torch.where(keep, (target - ratio) ** 2, torch.zeros_like(ratio))  # absent regions: no NaN, no gradient
    weighted = (sq * area[:, None, :]).sum()
    return weighted / ((A - 1) * area.sum()).clamp_min(1)


class GANLoss(nn.Module):
    """Binary cross-entropy on logits against a real or a fake label (as
    pytorch-CycleGAN-and-pix2pix's ``GANLoss``); the label tensor is made like the
    logits, so it follows their device and dtype."""

    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    def forward(self, logits, target_is_real: bool):
        label = torch.full_like(logits, self.real_label if target_is_real else self.fake_label)
        return F.binary_cross_entropy_with_logits(logits, label)


_gan = GANLoss()


def latent_adversarial_loss(d_prior, d_code, *, discriminator: bool):
    r"""Adversarial loss on the latent code (D_z against E).

    .. math:: \min_E \max_{D_z} \; \mathbb{E}_{z^*}[\log D_z(z^*)] + \mathbb{E}_x[\log(1 - D_z(E(x)))]

    ``d_prior``: logits of D_z on prior samples ``z* ~ U[-1, 1]``; ``d_code``: logits on
    ``E(x)``. ``discriminator=True``: D_z's loss
    ``-[log D_z(z*) + log(1 - D_z(E(x)))]`` (``d_prior`` may be None otherwise);
    ``discriminator=False``: E's non-saturating loss ``-log D_z(E(x))``.
    """
    if discriminator:
        return _gan(d_prior, True) + _gan(d_code, False)
    return _gan(d_code, True)


def image_adversarial_loss(d_real, d_fake, *, discriminator: bool, d_mismatch=None):
    r"""Adversarial loss on images (D_b against G), both conditioned on (a, d).

    .. math:: \min_G \max_{D_b} \; \mathbb{E}_x[\log D_b(x, c_a)] + \mathbb{E}_{x,p}[\log(1 - D_b(G(E(x), p, d), c_p))]

    ``d_fake`` holds D_b's logits on the generated images of every age group ``p``,
    each with its own condition ``c_p`` (as the authors' code). ``discriminator=True``:
    D_b's loss ``-[log D_b(x) + log(1 - D_b(g))]``; with ``d_mismatch`` (logits on real
    slices shown with a wrong age group) the fake part is the mean of the generated and
    the mismatched terms, ``-[log D_b(x) + (log(1 - D_b(g)) + log(1 - D_b(x, c_wrong))) / 2]``
    (the matching-aware discriminator of Reed et al. 2016), so D_b must read the
    condition. ``discriminator=False``: G's non-saturating loss ``-log D_b(g)``
    (``d_real`` and ``d_mismatch`` unused).
    """
    if discriminator:
        fake = _gan(d_fake, False)
        if d_mismatch is not None:
            fake = (fake + _gan(d_mismatch, False)) / 2
        return _gan(d_real, True) + fake
    return _gan(d_fake, True)


def total_variation_loss(img):
    """Mean absolute difference of neighbouring pixels (CAAE's smoothness term)."""
    return (img[..., 1:, :] - img[..., :-1, :]).abs().mean() + (img[..., :, 1:] - img[..., :, :-1]).abs().mean()
