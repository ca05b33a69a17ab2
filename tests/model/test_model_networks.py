import pytest
import torch

from daninet_pipeline.model.config import TrainConfig
from daninet_pipeline.model.networks import condition_dim, condition_vector, define_D, define_E, define_G


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_and_latent_range(size):
    cfg = TrainConfig(image_size=size, width=4, z_dim=6, n_bins=3)
    E, G, Dz, Db = define_E(cfg), define_G(cfg), define_D(cfg, "z"), define_D(cfg, "b")
    x = torch.rand(3, 1, size, size) * 2 - 1
    z = E(x)
    assert z.shape == (3, 6) and z.abs().max() <= 1
    c = condition_vector(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.rand(3), cfg)
    assert c.shape == (3, condition_dim(cfg))
    g = G(z, c)
    assert g.shape == x.shape and g.abs().max() <= 1
    assert Dz(z).shape == (3,) and Db(g, c).shape == (3,)


def test_width_scales_the_nets():
    n = lambda w: sum(p.numel() for p in define_G(TrainConfig(image_size=32, width=w, z_dim=8)).parameters())
    assert n(8) > 2 * n(4)


def test_conditions_change_the_output():
    cfg = TrainConfig(image_size=32, width=4, z_dim=8, n_bins=4)
    torch.manual_seed(0)
    G = define_G(cfg)
    for p in G.parameters():  # FiLM starts at identity; give every weight some size
        torch.nn.init.normal_(p, 0, 0.3)
    z = torch.rand(1, 8)
    out = lambda a, d, s: G(z, condition_vector(torch.tensor([a]), torch.tensor([d]), torch.tensor([s]), cfg))
    ref = out(0, 0, 0.5)
    assert not torch.allclose(ref, out(3, 0, 0.5))
    assert not torch.allclose(ref, out(0, 2, 0.5))
    assert not torch.allclose(ref, out(0, 0, 0.2))


def test_diagnosis_ignored_without_conditioning():
    cfg = TrainConfig(image_size=32, width=4, z_dim=8, condition_diagnosis=False)
    c0 = condition_vector(torch.tensor([1]), torch.tensor([0]), torch.tensor([0.3]), cfg)
    c2 = condition_vector(torch.tensor([1]), torch.tensor([2]), torch.tensor([0.3]), cfg)
    assert torch.equal(c0, c2)


def test_residual_generator_predicts_a_change():
    cfg = TrainConfig(image_size=32, width=4, z_dim=8, residual=True)
    G = define_G(cfg)
    torch.nn.init.zeros_(G.out.weight)
    torch.nn.init.zeros_(G.out.bias)
    x = torch.rand(2, 1, 32, 32)
    c = condition_vector(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.rand(2), cfg)
    assert torch.equal(G(torch.zeros(2, 8), c, x), x)
    with pytest.raises(ValueError):
        G(torch.zeros(2, 8), c)


def test_a_sample_does_not_depend_on_its_batch():
    cfg = TrainConfig(image_size=32, width=4, z_dim=8)
    E, G = define_E(cfg), define_G(cfg)
    x = torch.rand(4, 1, 32, 32)
    c = condition_vector(torch.tensor([0, 1, 2, 3]), torch.zeros(4), torch.rand(4), cfg)
    full = G(E(x), c)
    assert torch.allclose(full[:2], G(E(x[:2]), c[:2]), atol=1e-6)
