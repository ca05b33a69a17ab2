import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.errors import DaniNetError, ModelFileError
from daninet_pipeline.model.config import TrainConfig
from daninet_pipeline.model.regional import (RegionalModel, fit_regional_model, region_slice_masks,
                                             regional_pairs_table)

CFG = TrainConfig(n_bins=6, age_min=60.0, age_max=90.0)  # groups of 5 years, centres 62.5 .. 87.5


def _table(seed=0, n=30):
    """hip shrinks 3 % and vent grows 5 % per group crossed; AD a little faster."""
    rng = np.random.default_rng(seed)
    c = CFG.bin_centres
    rows = []
    for s in range(n):
        d = s % 3
        f = int(rng.integers(0, 5))
        for t in range(f + 1, 6):
            for region, rate in (("hip", np.log(0.97)), ("vent", np.log(1.05))):
                lr = (rate - 0.004 * d) * (t - f) + rng.normal(0, 0.002)
                rows.append((f"s{s}", f, t, c[f], c[t], d, region, lr, np.exp(lr), 1.0))
    return pd.DataFrame(rows, columns=["subject", "from_group", "to_group", "from_age", "to_age", "diagnosis",
                                       "region", "log_ratio", "ratio", "weight"])


@pytest.mark.parametrize("kind", ["rates", "svr"])
def test_regional_models_recover_the_ratio_function(kind):
    model = fit_regional_model(_table(), CFG.replace(regional_model=kind))
    assert model.regions == ("hip", "vent") and model.kind == kind
    table = model.ratio_table(6, 3)
    for (f, t, d) in [(0, 3, 0), (1, 2, 1), (2, 5, 2)]:
        assert table[0, f, t, d] == pytest.approx(np.exp((np.log(0.97) - 0.004 * d) * (t - f)), abs=0.015)
        assert table[1, f, t, d] == pytest.approx(np.exp((np.log(1.05) - 0.004 * d) * (t - f)), abs=0.015)
    assert all(0 < model.cv_error[r] < 0.02 for r in model.regions)
    assert list(model.summary().columns) == ["region", "cv_error"]


@pytest.mark.parametrize("kind", ["rates", "svr"])
def test_ratio_table_layout_and_state_round_trip(kind):
    model = fit_regional_model(_table(), CFG.replace(regional_model=kind))
    table = model.ratio_table(6, 3)
    assert table.shape == (2, 6, 6, 3)
    assert np.all(table[:, np.arange(6), np.arange(6)] == 1)
    np.testing.assert_allclose(table[:, 1, 4], table[:, 4, 1])
    again = RegionalModel.from_state(model.to_state())
    np.testing.assert_allclose(again.ratio_table(6, 3), table)
    state = model.to_state()
    with pytest.raises(ModelFileError):
        RegionalModel.from_state({**state, "arrays": {**state["arrays"], next(iter(state["arrays"])): b"garbage"}})
    with pytest.raises(ModelFileError):
        RegionalModel.from_state({**state, "kind": "pickle"})


def test_no_pairs_is_a_clear_error():
    with pytest.raises(DaniNetError, match="longitudinal"):
        fit_regional_model(_table().iloc[:0], CFG)


def test_pairs_table_measures_the_true_ratio(tiny_store):
    cfg = TrainConfig(image_size=32, n_bins=4, age_min=63, age_max=83,
                      regions=("Left_Hippocampus", "Right_Lateral_Ventricle", "Left_Thalamus_Proper"))
    masks = region_slice_masks(tiny_store.volume_shape, tiny_store.affine, tiny_store.slice_indices, cfg)
    assert masks.shape == (len(tiny_store.slice_indices), 3, 32, 32)
    assert masks.sum(axis=(0, 2, 3)).min() > 5  # every region is on the grid
    table = regional_pairs_table(tiny_store, masks, cfg)
    # the fixture darkens every brain voxel by 1 % a year: 65 -> 72 -> 80 in groups 0, 1, 3;
    # the ratio is measured per slice (log-ratios averaged by area), like L_reg's
    assert set(zip(table["from_group"], table["to_group"])) == {(0, 1), (0, 3), (1, 3)}
    assert len(table) == 4 * 3 * 3
    f = lambda age: 1 - 0.01 * (age - 65)
    want = {(0, 1): f(72) / f(65), (0, 3): f(80) / f(65), (1, 3): f(80) / f(72)}
    got = table.groupby(["from_group", "to_group"])["ratio"].mean()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=0.01)
    assert set(table["diagnosis"]) == {0, 1, 2}  # CN, EMCI -> MCI, AD


def test_unknown_region_is_an_error(tiny_store):
    cfg = TrainConfig(image_size=32, regions=("Left_Nowhere",))
    with pytest.raises(DaniNetError, match="Left_Nowhere"):
        region_slice_masks(tiny_store.volume_shape, tiny_store.affine, tiny_store.slice_indices, cfg)
