"""Regional volume change measured by TBM (ANTsPy SyN Jacobian) and Atropos on a phantom
whose change is known: each measurement recovers it within the error stated in
docs/group_and_simulation.md."""

from __future__ import annotations

import numpy as np
import pytest

from daninet_pipeline.evaluation import measure

ZOOMS = (2.0, 2.0, 2.0)
#: stated errors on this phantom (absolute, fractional change), as in the docs
TBM_ERROR = 0.04
ATROPOS_ERROR = 0.05


def _soft_ball(idx, centre, radius):
    d = np.sqrt(((idx - np.array(centre, np.float32)[:, None, None, None]) ** 2).sum(0))
    return np.clip(radius + 0.5 - d, 0.0, 1.0)


def _phantom(gyrus_r, vent_r, rng, shape=(40, 40, 40), scale=1):
    """A white-matter ball (1.0) with a grey-matter 'gyrus' (0.6) in a CSF pocket (0.12)
    and a CSF 'ventricle'; partial-volume edges, Rician-like noise. ``scale``: voxels per
    2 mm (2: the same anatomy on a 1 mm grid)."""
    idx = np.indices(tuple(s * scale for s in shape)).astype(np.float32)
    brain = _soft_ball(idx, (20 * scale,) * 3, 17 * scale)
    pocket = _soft_ball(idx, (28 * scale, 20 * scale, 20 * scale), 8 * scale)
    gyrus = _soft_ball(idx, (28 * scale, 20 * scale, 20 * scale), gyrus_r * scale)
    vent = _soft_ball(idx, (12 * scale, 20 * scale, 20 * scale), vent_r * scale)
    img = brain * 1.0
    img = img * (1 - pocket) + pocket * 0.12
    img = img * (1 - gyrus) + gyrus * 0.6
    img = img * (1 - vent) + vent * 0.12
    img = img + rng.normal(0, 0.02, img.shape).astype(np.float32)
    return img.astype(np.float32), brain > 0.5, float(gyrus.sum()), float(vent.sum())


def _pair(scale=1):
    rng = np.random.default_rng(0)
    a, mask, ga, va = _phantom(6.0, 5.0, rng, scale=scale)
    b, _, gb, vb = _phantom(5.75, 5.35, rng, scale=scale)
    idx = np.indices(a.shape).astype(np.float32)
    labels = np.zeros(a.shape, np.int16)
    labels[_soft_ball(idx, (28 * scale, 20 * scale, 20 * scale), 6.5 * scale) > 0.5] = 1
    labels[_soft_ball(idx, (12 * scale, 20 * scale, 20 * scale), 7.0 * scale) > 0.5] = 2
    regions = {"Gyrus": [1], "Left_Ventricle": [2]}
    truth = {"Gyrus": gb / ga - 1, "Left_Ventricle": vb / va - 1}
    return a, b, mask, labels, regions, truth


@pytest.fixture(scope="module")
def pair():
    return _pair()


def test_phantom_changes_are_those_of_a_real_cohort(pair):
    truth = pair[-1]
    assert -0.14 < truth["Gyrus"] < -0.10 and 0.18 < truth["Left_Ventricle"] < 0.26


@pytest.mark.parametrize("iterations", [measure.SYN_ITERATIONS, measure.QUICK_SYN_ITERATIONS],
                         ids=["benchmark", "group-level-quick"])
def test_tbm_recovers_a_known_change(pair, iterations):
    a, b, mask, labels, regions, truth = pair
    post = measure.tissue_posteriors(a, measure.dilated(mask), ZOOMS)
    got = measure.tbm_change(a, b, labels, regions, ZOOMS, start_posteriors=post, iterations=iterations)
    for name, value in truth.items():
        assert got[name] == pytest.approx(value, abs=TBM_ERROR), name


def test_the_group_levels_quick_tbm_registers_1_mm_images_on_2_mm_and_recovers_the_change(monkeypatch):
    """The quick setting on the phantom drawn on a 1 mm grid: registered on the 2 mm
    block means (as the 2 mm phantom above), within the same stated error."""
    a, b, mask, labels, regions, truth = _pair(scale=2)
    zooms = (1.0, 1.0, 1.0)
    grids, register = [], measure.jacobian_determinant

    def spy(start, other, zooms, **kwargs):
        grids.append((start.shape, tuple(zooms)))
        return register(start, other, zooms, **kwargs)

    monkeypatch.setattr(measure, "jacobian_determinant", spy)
    post = measure.tissue_posteriors(a, measure.dilated(mask), zooms, voxel_mm=measure.QUICK_SYN_VOXEL_MM)
    assert post.shape == (3, *a.shape)
    got = measure.tbm_change(a, b, labels, regions, zooms, mask=mask, start_posteriors=post,
                             iterations=measure.QUICK_SYN_ITERATIONS, voxel_mm=measure.QUICK_SYN_VOXEL_MM)
    box = measure.bounding_box(mask)
    fine = tuple(s.stop - s.start for s in box)
    assert grids == [(fine, zooms), (tuple(-(-n // 2) for n in fine), (2.0, 2.0, 2.0))]
    for name, value in truth.items():
        assert got[name] == pytest.approx(value, abs=TBM_ERROR), name


def test_block_means_keep_the_mean_and_cover_the_grid():
    a = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)
    coarse = measure.block_mean(a, 2)
    assert coarse.shape == (3, 2, 2) and coarse[0, 0, 0] == pytest.approx(a[:2, :2, :2].mean())
    assert measure.block_mean(a, 1) is a


def test_atropos_recovers_a_known_change(pair):
    a, b, mask, labels, regions, truth = pair
    got = measure.atropos_change(a, b, mask, labels, regions, ZOOMS)
    for name, value in truth.items():
        assert got[name] == pytest.approx(value, abs=ATROPOS_ERROR), name


def test_an_image_against_itself_has_no_change(pair):
    a, _, mask, labels, regions, _ = pair
    for method in measure.MEASUREMENTS:
        assert measure.measure_change(method, a, a.copy(), mask, labels, regions, ZOOMS) == {
            "Gyrus": 0.0, "Left_Ventricle": 0.0}
    with pytest.raises(ValueError, match="unknown measurement"):
        measure.measure_change("threshold", a, a, mask, labels, regions, ZOOMS)
    with pytest.raises(ValueError, match="shapes differ"):
        measure.tbm_change(a, a[1:], labels, regions, ZOOMS)


def test_an_image_atropos_cannot_segment_is_not_measured_rather_than_an_error(pair, monkeypatch):
    a, b, mask, labels, regions, _ = pair
    post = measure.tissue_posteriors(a, measure.dilated(mask), ZOOMS)

    def failing(*args, **kwargs):
        raise measure.MeasurementError("Atropos failed: exit 1")

    monkeypatch.setattr(measure, "tissue_posteriors", failing)
    got = measure.atropos_change(a, b, mask, labels, regions, ZOOMS, start_posteriors=post)
    assert set(got) == set(regions) and all(np.isnan(v) for v in got.values())


def test_measurements_leave_no_ants_file_behind(pair, tmp_path, monkeypatch):
    """ANTsPy writes each registration's transforms and Atropos' posteriors to the temp
    folder and leaves them: at ADNI's scale, tens of gigabytes in /tmp."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    start, follow, *_ = pair
    measure.jacobian_determinant(start, follow, ZOOMS, iterations=(2,))
    measure.tissue_posteriors(start, start > 0.3, ZOOMS, iterations=2)
    left = sorted(p.name for p in tmp_path.iterdir())
    print(f"files left in the temp folder: {len(left)} {left[:6]}")
    assert left == []
    assert tempfile.gettempdir() == str(tmp_path)


def test_each_measurement_gives_the_same_numbers_on_every_call(pair):
    """Atropos starts its k-means from random centres: unseeded, the starting scan's tissue
    weights (TBM's and Atropos') differed from one call to the next, so two runs of the
    evaluation scored the same follow-up differently."""
    a, b, mask, labels, regions, _ = pair
    posteriors = [measure.tissue_posteriors(a, measure.dilated(mask), ZOOMS) for _ in range(3)]
    gaps = [float(np.abs(p - posteriors[0]).max()) for p in posteriors[1:]]
    print(f"largest posterior difference between calls: {gaps}")
    assert gaps == [0.0, 0.0]
    for method in measure.MEASUREMENTS:
        first, again = (measure.measure_change(method, a, b, mask, labels, regions, ZOOMS) for _ in range(2))
        assert first == again, method
