import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.errors import DaniNetError, ModelFileError
from daninet_pipeline.model.config import TrainConfig
from daninet_pipeline.model.regional import (RegionalSVRs, fit_regional_svrs, region_slice_masks,
                                             regional_pairs_table)


def _table(seed=0, n=30):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        d = s % 3
        f = int(rng.integers(0, 5))
        for t in range(f + 1, 6):
            for region, slope in (("hip", 0.03), ("vent", -0.05)):
                rows.append((f"s{s}", f, t, d, region, 1 - slope * (t - f) - 0.01 * d + rng.normal(0, 0.002)))
    return pd.DataFrame(rows, columns=["subject", "from_group", "to_group", "diagnosis", "region", "ratio"])


def test_svrs_recover_the_ratio_function():
    svrs = fit_regional_svrs(_table())
    assert svrs.regions == ("hip", "vent")
    pred = svrs.predict([0, 1, 2], [3, 2, 5], [0, 1, 2])
    want_hip = [1 - 0.03 * 3, 1 - 0.03 - 0.01, 1 - 0.09 - 0.02]
    want_vent = [1 + 0.15, 1 + 0.05 - 0.01, 1 + 0.15 - 0.02]
    np.testing.assert_allclose(pred[:, 0], want_hip, atol=0.015)
    np.testing.assert_allclose(pred[:, 1], want_vent, atol=0.015)
    assert all(0 < svrs.cv_mae[r] < 0.02 for r in svrs.regions)
    assert list(svrs.summary().columns) == ["region", "cv_mae"]


def test_ratio_table_layout_and_state_round_trip():
    svrs = fit_regional_svrs(_table())
    table = svrs.ratio_table(6, 3)
    assert table.shape == (2, 6, 6, 3)
    assert np.all(table[:, np.arange(6), np.arange(6)] == 1)
    np.testing.assert_allclose(table[:, 1, 4], table[:, 4, 1])
    np.testing.assert_allclose(table[0, 1, 4, 2], svrs.predict([1], [4], [2])[0, 0], rtol=1e-6)
    again = RegionalSVRs.from_state(svrs.to_state())
    np.testing.assert_allclose(again.ratio_table(6, 3), table)
    with pytest.raises(ModelFileError):
        RegionalSVRs.from_state({**svrs.to_state(), "models": b"garbage"})


def test_no_pairs_is_a_clear_error():
    with pytest.raises(DaniNetError, match="longitudinal"):
        fit_regional_svrs(_table().iloc[:0])


def test_pairs_table_measures_the_true_ratio(tiny_store):
    cfg = TrainConfig(image_size=32, n_bins=4, age_min=63, age_max=83,
                      regions=("Left_Hippocampus", "Right_Lateral_Ventricle", "Left_Thalamus_Proper"))
    masks = region_slice_masks(tiny_store.volume_shape, tiny_store.affine, tiny_store.slice_indices, cfg)
    assert masks.shape == (len(tiny_store.slice_indices), 3, 32, 32)
    assert masks.sum(axis=(0, 2, 3)).min() > 5  # every region is on the grid
    table = regional_pairs_table(tiny_store, masks, cfg)
    # the fixture darkens every brain voxel by 1 % a year: 65 -> 72 -> 80 in groups 0, 1, 3
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
