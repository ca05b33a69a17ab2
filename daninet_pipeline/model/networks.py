"""The four DaniNet networks: encoder E, generator G, latent discriminator D_z and
image discriminator D_b.

Shapes follow the CAAE nets the authors built on (Zhang et al. 2017; Ravi et al. 2019),
scaled by ``width`` (64 is the authors' size): stride-2 convolutions halve a
``S x S`` slice down to 8 x 8 (``log2(S / 8)`` layers, channels ``width * 2**i`` capped
at ``8 * width``), a dense layer gives ``z`` (tanh, so ``z`` lies in ``[-1, 1]^n``). G
mirrors E with transposed convolutions. One network serves every axial slice: G and
D_b are conditioned on (age group, diagnosis, slice position), the condition vector
being ``[one-hot age group (A), one-hot diagnosis (D), sin/cos of the slice position
(2F)]``. G takes it both at its dense input (as CAAE) and at every up-sampling block
(a per-channel scale and shift, "FiLM"), so that age acts at every scale.

No batch normalisation anywhere (GroupNorm in G only), so that a sample's output does
not depend on the rest of its batch and data-parallel training equals one big batch.

>>> import torch
>>> from daninet_pipeline.model.config import TrainConfig
>>> cfg = TrainConfig(image_size=32, width=4, z_dim=8, n_bins=3)
>>> E, G = define_E(cfg), define_G(cfg)
>>> x = torch.zeros(2, 1, 32, 32)
>>> z = E(x); z.shape
torch.Size([2, 8])
>>> c = condition_vector(torch.tensor([0, 2]), torch.tensor([1, 0]), torch.tensor([0.3, 0.5]), cfg)
>>> G(z, c, x).shape
torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig


def condition_dim(cfg: TrainConfig) -> int:
    """Length of the condition vector of G and D_b."""
    return cfg.n_groups + len(cfg.diagnoses) + 2 * cfg.slice_frequencies


def condition_vector(age_group, diagnosis, slice_pos, cfg: TrainConfig) -> torch.Tensor:
    """Condition vector ``(B, A + D + 2F)`` from 0-based age groups, 0-based diagnosis
    indices and slice positions in ``[0, 1]`` (all shape ``(B,)``).

    The diagnosis part is all zeros when ``cfg.condition_diagnosis`` is False (the
    ablations without "C").
    """
    age_group = torch.as_tensor(age_group).long()
    dev = age_group.device
    diagnosis = torch.as_tensor(diagnosis, device=dev).long()
    pos = torch.as_tensor(slice_pos, device=dev, dtype=torch.float32).reshape(-1, 1)
    a = nn.functional.one_hot(age_group, cfg.n_groups).float()
    d = nn.functional.one_hot(diagnosis, len(cfg.diagnoses)).float()
    if not cfg.condition_diagnosis:
        d = torch.zeros_like(d)
    freqs = (2.0 ** torch.arange(cfg.slice_frequencies, device=dev, dtype=torch.float32)) * math.pi
    ang = pos * freqs
    return torch.cat([a, d, torch.sin(ang), torch.cos(ang)], dim=1)


def _n_down(image_size: int) -> int:
    return max(1, int(round(math.log2(image_size / 8))))


def _channels(width: int, n: int) -> list[int]:
    return [width * min(2**i, 8) for i in range(n)]


def _pad(k: int) -> int:
    return (k - 1) // 2


class Encoder(nn.Module):
    """E: slice ``(B, 1, S, S)`` in ``[-1, 1]`` -> ``z`` ``(B, z_dim)`` in ``[-1, 1]``."""

    def __init__(self, image_size: int, width: int, z_dim: int, kernel_size: int = 4):
        super().__init__()
        n = _n_down(image_size)
        chans = _channels(width, n)
        layers, cin = [], 1
        for c in chans:
            layers += [nn.Conv2d(cin, c, kernel_size, 2, _pad(kernel_size)), nn.LeakyReLU(0.2)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.final_size = image_size // 2**n
        self.fc = nn.Linear(cin * self.final_size**2, z_dim)

    def forward(self, x):
        h = self.features(x)
        return torch.tanh(self.fc(h.flatten(1)))


class _UpBlock(nn.Module):
    def __init__(self, cin, cout, cond_dim, k):
        super().__init__()
        p = _pad(k)
        self.up = nn.ConvTranspose2d(cin, cout, k, 2, p, output_padding=2 + 2 * p - k)
        self.norm = nn.GroupNorm(math.gcd(8, cout), cout, affine=False)
        self.film = nn.Linear(cond_dim, 2 * cout)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h, c):
        h = self.norm(self.up(h))
        scale, shift = self.film(c)[:, :, None, None].chunk(2, dim=1)
        return torch.relu(h * (1 + scale) + shift)


class Generator(nn.Module):
    """G: (``z``, condition vector[, input slice]) -> slice ``(B, 1, S, S)``.

    Output ``tanh(h)``; with ``residual=True`` the output is ``x + tanh(h)`` (the change
    from the input ``x``), which requires passing ``x``.
    """

    def __init__(self, image_size, width, z_dim, cond_dim, kernel_size=4, residual=False):
        super().__init__()
        n = _n_down(image_size)
        chans = _channels(width, n)[::-1]  # e.g. 8w, 4w, 2w, w
        self.start = image_size // 2**n
        self.c0 = chans[0]
        self.residual = residual
        self.fc = nn.Linear(z_dim + cond_dim, self.c0 * self.start**2)
        outs = chans[1:] + [chans[-1]]
        self.blocks = nn.ModuleList(
            _UpBlock(cin, cout, cond_dim, kernel_size) for cin, cout in zip(chans, outs)
        )
        self.out = nn.Conv2d(outs[-1], 1, 3, 1, 1)

    def forward(self, z, cond, x=None):
        h = torch.relu(self.fc(torch.cat([z, cond], dim=1)))
        h = h.view(-1, self.c0, self.start, self.start)
        for block in self.blocks:
            h = block(h, cond)
        out = torch.tanh(self.out(h))
        if self.residual:
            if x is None:
                raise ValueError("a residual generator needs the input slice x")
            out = x + out
        return out


class LatentDiscriminator(nn.Module):
    """D_z: ``z`` -> logit that ``z`` was drawn from the uniform prior ``U[-1, 1]``."""

    def __init__(self, z_dim, width):
        super().__init__()
        h = [max(8, width), max(8, width // 2), max(8, width // 4)]
        layers, cin = [], z_dim
        for c in h:
            layers += [nn.Linear(cin, c), nn.LeakyReLU(0.2)]
            cin = c
        layers.append(nn.Linear(cin, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z).squeeze(1)


class ImageDiscriminator(nn.Module):
    """D_b: (slice, condition vector) -> logit that the slice is a real brain of that
    age group, diagnosis and slice position. As CAAE's D_img, the condition maps are
    concatenated after the first convolution; channels ``width/4 .. 2 width``."""

    def __init__(self, image_size, width, cond_dim, kernel_size=4):
        super().__init__()
        n = _n_down(image_size)
        chans = [max(4, width // 4) * min(2**i, 8) for i in range(n)]
        p = _pad(kernel_size)
        self.first = nn.Conv2d(1, chans[0], kernel_size, 2, p)
        layers, cin = [], chans[0] + cond_dim
        for c in chans[1:]:
            layers += [nn.Conv2d(cin, c, kernel_size, 2, p), nn.LeakyReLU(0.2)]
            cin = c
        self.features = nn.Sequential(*layers)
        final = image_size // 2**n
        self.fc = nn.Sequential(nn.Linear(cin * final**2, 4 * width), nn.LeakyReLU(0.2), nn.Linear(4 * width, 1))

    def forward(self, x, cond):
        h = nn.functional.leaky_relu(self.first(x), 0.2)
        c = cond[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
        h = self.features(torch.cat([h, c.to(h.dtype)], dim=1))
        return self.fc(h.flatten(1)).squeeze(1)


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """DCGAN-style initialisation (normal(0, 0.02) weights, zero biases), skipping the
    FiLM layers, which start at identity."""
    for name, m in net.named_modules():
        if name.endswith("film"):
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def define_E(cfg: TrainConfig) -> Encoder:
    return init_weights(Encoder(cfg.image_size, cfg.width, cfg.z_dim, cfg.kernel_size))


def define_G(cfg: TrainConfig) -> Generator:
    return init_weights(
        Generator(cfg.image_size, cfg.width, cfg.z_dim, condition_dim(cfg), cfg.kernel_size, cfg.residual)
    )


def define_D(cfg: TrainConfig, which: str) -> nn.Module:
    """``which='z'``: D_z; ``which='b'``: D_b."""
    if which == "z":
        return init_weights(LatentDiscriminator(cfg.z_dim, cfg.width))
    if which == "b":
        return init_weights(ImageDiscriminator(cfg.image_size, cfg.width, condition_dim(cfg), cfg.kernel_size))
    raise ValueError(f"unknown discriminator {which!r}; choose 'z' or 'b'")
