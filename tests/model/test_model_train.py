import csv

import numpy as np
import pytest
import torch

from daninet_pipeline.model.config import WeightSchedule
from daninet_pipeline.model.daninet import LOG_LOSSES, DaniNetModel
from daninet_pipeline.model.data import SliceSource, prior_noise, sample_rows
from daninet_pipeline.model.modelfile import load_model_file
from daninet_pipeline.model.regional import RegionalModel, fit_regional_model, region_slice_masks, regional_pairs_table
from daninet_pipeline.model.train import train

ZERO = WeightSchedule(0.0)


@pytest.fixture(scope="module")
def regional(tiny_store):
    from daninet_pipeline.model.config import TrainConfig

    cfg = TrainConfig.from_file("demo").replace(image_size=32, n_bins=4, age_min=63.0, age_max=83.0)
    masks = region_slice_masks(tiny_store.volume_shape, tiny_store.affine, tiny_store.slice_indices, cfg)
    return masks, fit_regional_model(regional_pairs_table(tiny_store, masks, cfg), cfg, regions=cfg.regions)


def make_model(cfg, store, regional, step=0, **weights):
    """A model with the batch of ``step`` set; ``weights`` replace weight_<term>."""
    cfg = cfg.replace(**{f"weight_{k}": (v if isinstance(v, WeightSchedule) else WeightSchedule(v))
                         for k, v in weights.items()})
    masks, reg = regional
    model = DaniNetModel(cfg, ratio_table=reg.ratio_table(cfg.n_groups, len(cfg.diagnoses)), region_masks=masks,
                         regional=reg)
    src = SliceSource.from_store(store, cfg)
    rows = sample_rows(src.n, cfg.batch_size, cfg.seed, step)
    model.set_input(src.batch(rows), prior_noise(cfg.batch_size, cfg.z_dim, cfg.seed, step))
    return model


def params(net):
    return [p.detach().clone() for p in net.parameters()]


def grad_of_G(model, step=0):
    model.forward()
    model.set_requires_grad([model.Dz, model.Db], False)
    total, _ = model.compute_EG_losses(step)
    model.G.zero_grad(set_to_none=True)
    total.backward()
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                      for p in model.G.parameters()])


def test_discriminator_steps_do_not_move_E_or_G(tiny_cfg, tiny_store, regional):
    model = make_model(tiny_cfg, tiny_store, regional)
    before = {k: params(getattr(model, k)) for k in ("E", "G", "Dz", "Db")}
    model.forward()
    model.optimize_D()
    for k in ("E", "G"):
        assert all(torch.equal(a, b) for a, b in zip(before[k], params(getattr(model, k))))
        assert all(p.grad is None for p in getattr(model, k).parameters())
    for k in ("Dz", "Db"):
        assert not all(torch.equal(a, b) for a, b in zip(before[k], params(getattr(model, k))))


def test_generator_step_does_not_move_the_discriminators(tiny_cfg, tiny_store, regional):
    model = make_model(tiny_cfg, tiny_store, regional, adv_z=1.0, adv_b=1.0)
    before = params(model.Db) + params(model.Dz)
    model.forward()
    model.optimize_EG(0)
    assert all(torch.equal(a, b) for a, b in zip(before, params(model.Db) + params(model.Dz)))
    assert all(p.requires_grad for p in model.Db.parameters())  # re-enabled afterwards


@pytest.mark.parametrize("term", ["vox", "reg", "def", "adv_b", "tv"])
def test_each_loss_reaches_G(term, tiny_cfg, tiny_store, regional):
    only = {t: 0.0 for t in ("def", "vox", "reg", "adv_z", "adv_b", "tv")}
    only[term] = 1.0
    g = grad_of_G(make_model(tiny_cfg, tiny_store, regional, **only))
    assert g.abs().sum() > 0
    only[term] = 0.0
    assert grad_of_G(make_model(tiny_cfg, tiny_store, regional, **only)).abs().sum() == 0


def test_changing_a_weight_changes_the_gradient(tiny_cfg, tiny_store, regional):
    g1 = grad_of_G(make_model(tiny_cfg, tiny_store, regional, vox=1.0, reg=1.0))
    g2 = grad_of_G(make_model(tiny_cfg, tiny_store, regional, vox=1.0, reg=3.0))
    g3 = grad_of_G(make_model(tiny_cfg, tiny_store, regional, vox=0.5, reg=1.0))
    assert not torch.allclose(g1, g2) and not torch.allclose(g1, g3)


def test_schedules_are_live(tiny_cfg, tiny_store, regional):
    ramp = WeightSchedule(1.0, "linear", start=10, end=20, initial=0.0)
    model = make_model(tiny_cfg, tiny_store, regional, vox=ramp, reg=0.0, adv_z=0.0, adv_b=0.0)
    g_before = grad_of_G(model, step=5)
    g_mid = grad_of_G(model, step=15)
    g_end = grad_of_G(model, step=25)
    # L_def's part is the same at every step; L_vox's part scales with its weight 0, 0.5, 1
    vox = g_end - g_before
    assert vox.abs().sum() > 0
    torch.testing.assert_close(g_mid - g_before, 0.5 * vox, rtol=1e-3, atol=1e-3 * float(vox.abs().max()))
    assert model.weights(15)["vox"] == 0.5


def read_log(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_train_writes_log_checkpoint_and_model(tiny_cfg, tiny_store, regional, tmp_path):
    path = train(tiny_cfg, tiny_store, tmp_path, progress=False, regional=regional)
    assert path == tmp_path / "model.pt" and (tmp_path / "checkpoint.pt").is_file()
    rows = read_log(tmp_path / "losses.tsv")
    assert [int(r["step"]) for r in rows] == list(range(tiny_cfg.steps))
    assert set(LOG_LOSSES) <= set(rows[0])
    assert all(np.isfinite(float(r[k])) for r in rows for k in LOG_LOSSES)
    # the demo schedules ramp L_vox from step 50: the log shows the weight used
    assert float(rows[-1]["w_vox"]) == tiny_cfg.weight_vox.at(tiny_cfg.steps - 1)
    state = load_model_file(path)
    assert state["config"] == tiny_cfg.to_dict()
    assert state["bin_edges"] == list(tiny_cfg.bin_edges) and state["diagnoses"] == ["CN", "MCI", "AD"]
    assert state["training"]["n_volumes"] == 12 and state["training"]["n_subjects"] == 4
    assert state["grid"]["volume_shape"] == list(tiny_store.volume_shape)
    assert state["regional"].regions == tiny_cfg.regions
    assert state["package_version"]


def test_training_keeps_a_model_file_every_model_every_steps_to_choose_from(tiny_cfg, tiny_store, regional, tmp_path):
    train(tiny_cfg, tiny_store, tmp_path / "default", progress=False, regional=regional)
    assert sorted(p.name for p in (tmp_path / "default").glob("model*.pt")) == ["model.pt"]
    train(tiny_cfg.replace(model_every=3), tiny_store, tmp_path, progress=False, regional=regional)  # 6 steps
    written = sorted(p.name for p in tmp_path.glob("model*.pt"))
    print("model files:", written)
    assert written == ["model.pt", "model_step-000003.pt"]
    early, last = load_model_file(tmp_path / "model_step-000003.pt"), load_model_file(tmp_path / "model.pt")
    assert early["training"]["steps"] == 3 and last["training"]["steps"] == 6
    assert early["config"] == last["config"] and early["grid"] == last["grid"]
    assert any(not torch.equal(early["nets"]["G"][k], last["nets"]["G"][k]) for k in last["nets"]["G"])


def test_model_file_round_trip(tiny_cfg, tiny_store, regional, tmp_path):
    model = make_model(tiny_cfg, tiny_store, regional)
    model.optimize_parameters(0)
    model.save_model_file(tmp_path / "m.pt")
    again, _ = DaniNetModel.from_model_file(tmp_path / "m.pt")
    for k, net in model.nets.items():
        for (n1, a), (n2, b) in zip(net.state_dict().items(), again.nets[k].state_dict().items()):
            assert n1 == n2 and torch.equal(a, b)
    torch.testing.assert_close(again.ratio_table, model.ratio_table)


def test_resume_repeats_an_uninterrupted_run(tiny_cfg, tiny_store, regional, tmp_path):
    cfg = tiny_cfg.replace(weight_vox=WeightSchedule(1.0, "linear", start=1, end=4), steps=6, checkpoint_every=100)
    train(cfg, tiny_store, tmp_path / "a", progress=False, regional=regional)
    ckpt = train(cfg, tiny_store, tmp_path / "b", progress=False, regional=regional, stop_at=3)
    assert ckpt.name == "checkpoint.pt" and not (tmp_path / "b" / "model.pt").exists()
    assert len(read_log(tmp_path / "b" / "losses.tsv")) == 3
    train(cfg, tiny_store, tmp_path / "b", resume=True, progress=False, regional=regional)
    a, b = read_log(tmp_path / "a" / "losses.tsv"), read_log(tmp_path / "b" / "losses.tsv")
    assert [r["step"] for r in b] == [str(s) for s in range(6)]
    for ra, rb in zip(a, b):
        for k in LOG_LOSSES:
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-5, abs=1e-7), (ra["step"], k)
    wa = load_model_file(tmp_path / "a" / "model.pt")["nets"]["G"]
    wb = load_model_file(tmp_path / "b" / "model.pt")["nets"]["G"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k])


def test_resume_with_another_config_is_refused(tiny_cfg, tiny_store, regional, tmp_path):
    train(tiny_cfg, tiny_store, tmp_path, progress=False, regional=regional, stop_at=2)
    with pytest.raises(ValueError, match="another configuration"):
        train(tiny_cfg.replace(lr=1e-2), tiny_store, tmp_path, resume=True, progress=False, regional=regional)


def test_bf16_autocast_step(tiny_cfg, tiny_store, regional):
    model = make_model(tiny_cfg.replace(precision="bf16"), tiny_store, regional, vox=1.0, reg=1.0)
    losses = model.optimize_parameters(0)
    assert all(np.isfinite(v) for k, v in losses.items())


def test_def_loss_falls_when_training(tiny_cfg, tiny_store, regional, tmp_path):
    cfg = tiny_cfg.replace(steps=40, batch_size=8, lr=2e-3, log_every=1)
    train(cfg, tiny_store, tmp_path, progress=False, regional=regional)
    rows = read_log(tmp_path / "losses.tsv")
    first = np.mean([float(r["loss_def"]) for r in rows[:5]])
    last = np.mean([float(r["loss_def"]) for r in rows[-5:]])
    assert last < 0.5 * first
