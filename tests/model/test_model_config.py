import json

import numpy as np
import pytest

from daninet_pipeline.model.config import PRESETS, ConfigError, TrainConfig, WeightSchedule


def test_defaults_follow_the_authors():
    cfg = TrainConfig()
    assert cfg.n_groups == 10
    np.testing.assert_allclose(cfg.bin_edges, np.linspace(63, 88, 11))
    assert cfg.diagnoses == ("CN", "MCI", "AD")
    assert [cfg.fold_diagnosis(d) for d in ("CN", "SMC", "EMCI", "MCI", "LMCI", "AD")] == \
        ["CN", "CN", "MCI", "MCI", "MCI", "AD"]
    assert cfg.image_size == 128


def test_unknown_diagnosis_is_an_error():
    with pytest.raises(ConfigError, match="XYZ"):
        TrainConfig().fold_diagnosis("XYZ")


def test_bin_edges_are_configurable():
    cfg = TrainConfig(bin_edges_override=(50, 60, 75, 90))
    assert cfg.n_groups == 3
    assert cfg.age_group([49, 59.9, 60, 80, 95]).tolist() == [0, 0, 1, 2, 2]
    np.testing.assert_allclose(cfg.bin_centres, [55, 67.5, 82.5])


def test_age_interpolation_reproduces_the_age():
    cfg = TrainConfig()
    ages = np.array([64.25, 70.0, 77.7, 86.0])
    lo, hi, alpha = cfg.age_interpolation(ages)
    c = cfg.bin_centres
    np.testing.assert_allclose(alpha * c[lo] + (1 - alpha) * c[hi], ages, atol=1e-5)
    assert np.all((alpha >= 0) & (alpha <= 1))


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_round_trip(name, tmp_path):
    cfg = TrainConfig.from_file(name)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "c.json"
    cfg.save(path)
    assert TrainConfig.from_file(path) == cfg
    json.loads(path.read_text())


def test_presets_match_the_ablations():
    base, P, C, T, full, res = (TrainConfig.from_file(n) for n in ("base", "P", "C", "T", "full", "full-residual"))
    assert base.weight_vox.value == base.weight_reg.value == 0 and not base.condition_diagnosis
    assert base.transfer_steps == 0 and not base.residual
    assert P.weight_vox.value > 0 and P.weight_reg.value > 0 and not P.condition_diagnosis
    assert C.condition_diagnosis and C.weight_vox.value == 0
    assert T.transfer_steps > 0 and T.weight_vox.value == 0
    assert full.condition_diagnosis and full.weight_reg.value > 0 and full.transfer_steps > 0
    assert res.residual and res.replace(residual=False) == full


def test_unknown_field_and_bad_values(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"extends": "base", "widht": 3}))
    with pytest.raises(ConfigError, match="widht"):
        TrainConfig.from_file(p)
    with pytest.raises(ConfigError):
        TrainConfig(image_size=100)
    with pytest.raises(ConfigError):
        TrainConfig(precision="fp8")
    with pytest.raises(ConfigError, match="neither"):
        TrainConfig.from_file("no-such-preset")


def test_weight_schedules():
    lin = WeightSchedule(2.0, "linear", start=10, end=20, initial=0.0)
    assert [lin.at(s) for s in (0, 10, 15, 20, 100)] == [0.0, 0.0, 1.0, 2.0, 2.0]
    st = WeightSchedule(3.0, "step", start=5, initial=1.0)
    assert [st.at(s) for s in (4, 5, 6)] == [1.0, 3.0, 3.0]
    with pytest.raises(ConfigError):
        WeightSchedule(1.0, "linear", start=5, end=5)
    cfg = TrainConfig.from_dict({"weight_vox": {"value": 2.0, "kind": "linear", "start": 1, "end": 3}})
    assert cfg.weight("vox").at(2) == 1.0
