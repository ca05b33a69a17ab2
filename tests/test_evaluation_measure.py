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


def _phantom(gyrus_r, vent_r, rng, shape=(40, 40, 40)):
    """A white-matter ball (1.0) with a grey-matter 'gyrus' (0.6) in a CSF pocket (0.12)
    and a CSF 'ventricle'; partial-volume edges, Rician-like noise."""
    idx = np.indices(shape).astype(np.float32)
    brain = _soft_ball(idx, (20, 20, 20), 17)
    pocket = _soft_ball(idx, (28, 20, 20), 8)
    gyrus = _soft_ball(idx, (28, 20, 20), gyrus_r)
    vent = _soft_ball(idx, (12, 20, 20), vent_r)
    img = brain * 1.0
    img = img * (1 - pocket) + pocket * 0.12
    img = img * (1 - gyrus) + gyrus * 0.6
    img = img * (1 - vent) + vent * 0.12
    img = img + rng.normal(0, 0.02, shape).astype(np.float32)
    return img.astype(np.float32), brain > 0.5, float(gyrus.sum()), float(vent.sum())


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    a, mask, ga, va = _phantom(6.0, 5.0, rng)
    b, _, gb, vb = _phantom(5.75, 5.35, rng)
    idx = np.indices(a.shape).astype(np.float32)
    labels = np.zeros(a.shape, np.int16)
    labels[_soft_ball(idx, (28, 20, 20), 6.5) > 0.5] = 1
    labels[_soft_ball(idx, (12, 20, 20), 7.0) > 0.5] = 2
    regions = {"Gyrus": [1], "Left_Ventricle": [2]}
    truth = {"Gyrus": gb / ga - 1, "Left_Ventricle": vb / va - 1}
    return a, b, mask, labels, regions, truth


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
