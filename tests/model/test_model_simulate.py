import numpy as np
import nibabel as nib
import pytest
import torch

from daninet_pipeline.errors import ModelFileError
from daninet_pipeline.model.simulate import Simulator
from daninet_pipeline.model.modelfile import MODEL_FORMAT_VERSION
from daninet_pipeline.model.train import train


@pytest.fixture(scope="module")
def model_file(tiny_store, tmp_path_factory):
    from daninet_pipeline.model.config import TrainConfig

    cfg = TrainConfig.from_file("demo").replace(image_size=32, width=4, z_dim=8, batch_size=4, steps=3, n_bins=4,
                                                age_min=63.0, age_max=83.0)
    return train(cfg, tiny_store, tmp_path_factory.mktemp("sim"), progress=False)


def test_simulate_returns_volumes_on_the_grid(model_file, grid_volume):
    vol, aff = grid_volume
    sim = Simulator.load(model_file)
    out = sim.simulate(vol, 70.0, "LMCI", [65.5, 78.0])
    assert len(out) == 2
    for o in out:
        assert o.shape == vol.shape and o.dtype == np.float32
        assert np.all(o[vol <= 0] == 0) and np.all(np.isfinite(o))
        assert o[vol > 0].std() > 0
    imgs = sim.simulate(nib.Nifti1Image(vol, aff), 70.0, "CN", [80.0])
    assert isinstance(imgs[0], nib.Nifti1Image) and np.allclose(imgs[0].affine, aff)


def test_ages_between_centres_mix_the_two_groups(model_file, grid_volume):
    vol, _ = grid_volume
    sim = Simulator.load(model_file)
    c = sim.cfg.bin_centres  # 65.5, 70.5, 75.5, 80.5
    lo, hi, mid = sim.simulate(vol, 70.0, "CN", [c[1], c[2], (c[1] + c[2]) / 2], blend_sigma=0, mode="direct")
    # the mix happens before clipping and resampling, so compare inside the brain, loosely
    brain = vol > 0.2
    np.testing.assert_allclose(mid[brain], ((lo + hi) / 2)[brain], atol=2e-3)


def test_blending_smooths_across_slices(model_file, grid_volume):
    vol, _ = grid_volume
    sim = Simulator.load(model_file)
    sharp = sim.simulate(vol, 70.0, "CN", [80.0], blend_sigma=0)[0]
    smooth = sim.simulate(vol, 70.0, "CN", [80.0], blend_sigma=2.0)[0]
    brain = (vol > 0).all(axis=2, keepdims=False)
    jump = lambda v: np.abs(np.diff(v, axis=2))[vol[:, :, 1:] * vol[:, :, :-1] > 0].mean()
    assert jump(smooth) < jump(sharp)


def test_change_mode_keeps_the_input_where_nothing_changes(model_file, grid_volume):
    vol, _ = grid_volume
    sim = Simulator.load(model_file)
    same = sim.simulate(vol, 70.0, "CN", [70.0], mode="change")[0]
    np.testing.assert_allclose(same, vol, atol=1e-5)


def _one_line_error(path):
    with pytest.raises(ModelFileError) as info:
        Simulator.load(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_corrupt_model_files(model_file, tmp_path):
    data = model_file.read_bytes()
    trunc = tmp_path / "truncated.pt"
    trunc.write_bytes(data[: len(data) // 2])
    _one_line_error(trunc)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all" * 10)
    _one_line_error(junk)
    _one_line_error(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    assert "not a DaniNet model" in _one_line_error(other)


def test_incompatible_model_files(model_file, tmp_path):
    state = torch.load(model_file, weights_only=True)
    newer = tmp_path / "newer.pt"
    torch.save({**state, "format_version": MODEL_FORMAT_VERSION + 1, "package_version": "9.0"}, newer)
    assert "9.0" in _one_line_error(newer)
    wrong = tmp_path / "wrong.pt"
    torch.save({**state, "config": {**state["config"], "width": 8}}, wrong)
    assert "do not match" in _one_line_error(wrong)
    bad_cfg = tmp_path / "badcfg.pt"
    torch.save({**state, "config": {**state["config"], "no_such_field": 1}}, bad_cfg)
    assert "no_such_field" in _one_line_error(bad_cfg)


def test_a_model_predictor_goes_to_another_process_as_its_file_and_predicts_the_same(model_file, grid_volume, tmp_path):
    import pickle

    from daninet_pipeline.evaluation.evaluate import FollowUp, ModelPredictor

    vol, aff = grid_volume
    start = tmp_path / "start.nii.gz"
    nib.save(nib.Nifti1Image(vol, aff), start)
    pair = FollowUp(subject="01", start_session="M000", followup_session="M036", start=str(start),
                    followup=str(start), start_mask=str(start), followup_mask=str(start), start_age=70.0,
                    followup_age=73.0, diagnosis="CN", earlier=[(70.0, str(start))])
    here = ModelPredictor("m", model_file, modes=("change",), transfer=False)
    sent = pickle.dumps(here)
    assert len(sent) < 2000  # the path and settings, not the weights
    there = pickle.loads(sent)
    assert there.modes == ("change",) and there.age_span == here.age_span
    np.testing.assert_array_equal(there.predict(pair, vol)["m-change"], here.predict(pair, vol)["m-change"])
