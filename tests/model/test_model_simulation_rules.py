"""Smaller rules of the simulator and the data path (model-fidelity review)."""

from __future__ import annotations

import inspect
import logging

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from daninet_pipeline.model.config import TrainConfig
from daninet_pipeline.model.data import SliceStore
from daninet_pipeline.model.simulate import Simulator
from daninet_pipeline.model.daninet import DaniNetModel


def brain_volume(top=1.4):
    """A 32 x 32 x 12 'brain' on slices 2..10 with a one-voxel sliver on slice 1;
    intensities up to ``top`` (normalised scale: real scans reach ~1.5)."""
    vol = np.zeros((32, 32, 12), np.float32)
    vol[4:28, 4:28, 2:11] = np.linspace(0.3, top, 24)[:, None, None]
    vol[12, 12, 1] = 0.8
    return vol


def constant_generator_simulator(cfg, value=1.0):
    """A simulator whose generator outputs ``value`` (network range) everywhere."""
    model = DaniNetModel(cfg)

    def G(z, c, x=None):
        return torch.full((z.shape[0], 1, cfg.image_size, cfg.image_size), value, dtype=z.dtype, device=z.device)

    model.G.forward = G
    return Simulator(model)


def test_the_slice_store_keeps_the_normalised_range(tmp_path):
    cfg = TrainConfig()
    vol = brain_volume(top=1.4)
    store = SliceStore.build(tmp_path / "s", [{"image": vol, "subject": "a", "session": "b", "age": 70,
                                               "diagnosis": "CN"}], image_size=32, intensity_max=cfg.intensity_max)
    assert float(store.read(np.arange(len(store))).max()) * cfg.intensity_max == pytest.approx(1.4, abs=0.01)


def test_direct_mode_reaches_intensities_above_one():
    cfg = TrainConfig.from_file("demo").replace(image_size=32, width=4, z_dim=8)
    sim = constant_generator_simulator(cfg, value=1.0)  # the top of the network range
    out = sim.simulate(brain_volume(), 70.0, "CN", [75.0], mode="direct", blend_sigma=0)[0]
    assert out[12, 12, 6] == pytest.approx(cfg.intensity_max, abs=1e-3)
    assert cfg.intensity_max >= 1.5


def test_slices_outside_the_training_brain_fraction_are_not_generated():
    cfg = TrainConfig.from_file("demo").replace(image_size=32, width=4, z_dim=8)
    sim = constant_generator_simulator(cfg, value=-1.0)  # would turn a generated slice black
    vol = brain_volume()
    out = sim.simulate(vol, 70.0, "CN", [75.0], mode="direct", blend_sigma=0)[0]
    assert out[12, 12, 1] == pytest.approx(vol[12, 12, 1])  # the sliver slice is copied
    assert out[12, 12, 6] == pytest.approx(0.0)  # a brain slice is generated


def test_one_default_simulation_mode():
    from daninet_pipeline.cli.parser import build_parser
    from daninet_pipeline.interfaces.simulation import _SimulateInputSpec
    from daninet_pipeline.model.simulate import DEFAULT_SIMULATION_MODE
    from daninet_pipeline.simulation.subject import simulate_subject

    assert inspect.signature(Simulator.simulate).parameters["mode"].default == DEFAULT_SIMULATION_MODE
    assert inspect.signature(simulate_subject).parameters["mode"].default == DEFAULT_SIMULATION_MODE
    assert build_parser().get_default("simulation_mode") == DEFAULT_SIMULATION_MODE
    assert _SimulateInputSpec().mode == DEFAULT_SIMULATION_MODE


def test_diagnosis_labels_and_folding_have_one_definition():
    from daninet_pipeline import diagnoses
    from daninet_pipeline.bids import inputs
    from daninet_pipeline.data import synthetic

    cfg = TrainConfig()
    assert cfg.diagnoses is diagnoses.DIAGNOSES
    assert inputs.DIAGNOSES is diagnoses.DIAGNOSES and synthetic.DIAGNOSES is diagnoses.DIAGNOSES
    assert cfg.diagnosis_folding is diagnoses.FOLDING
    assert all(cfg.fold_diagnosis(src) == dst for src, dst in diagnoses.FOLDING)
    assert {k: v for k, v in inputs.DEFAULT_DIAGNOSIS_MAP.items()} == diagnoses.DATASET_LABELS


def test_an_age_outside_the_model_is_said_in_one_line_and_recorded(tmp_path, caplog):
    from daninet_pipeline.simulation.subject import simulate_subject

    cfg = TrainConfig.from_file("demo").replace(image_size=32, width=4, z_dim=8)  # ages 55-97
    model = DaniNetModel(cfg)
    model_file = model.save_model_file(tmp_path / "model.pt")
    img = tmp_path / "base.nii.gz"
    nib.save(nib.Nifti1Image(brain_volume(), np.eye(4)), img)
    rows = pd.DataFrame([{"session": "M000", "age": 43.0, "diagnosis": "CN", "preproc": str(img)}])
    with caplog.at_level(logging.WARNING):
        res = simulate_subject(model_file, rows, [48.0], mode="change")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "43" in lines[0] and "48" in lines[0] and f"{cfg.age_min:g}" in lines[0] and f"{cfg.age_max:g}" in lines[0]
    centre0 = float(cfg.bin_centres[0])
    assert res[0]["model_age"] == pytest.approx(centre0) and res[0]["model_source_age"] == pytest.approx(centre0)
    assert res[0]["age_groups"] == [0]


def test_data_unlike_the_training_data_is_refused_in_one_line(tmp_path):
    from daninet_pipeline.bids.derivatives import preproc_provenance
    from daninet_pipeline.errors import DaniNetError

    cfg = TrainConfig.from_file("demo").replace(image_size=32, width=4, z_dim=8)
    vol = brain_volume()
    trained = {"template": "MNI152NLin2009aSym", "intensity_normalization": "brain 99th percentile = 1",
               "preprocessing_backend": "embedded", "preprocessing_version": "1"}
    sim = Simulator(DaniNetModel(cfg), {"path": "m.pt", "grid": {"volume_shape": list(vol.shape),
                                                                  "affine": np.eye(4).tolist(),
                                                                  "provenance": trained}})
    img = tmp_path / "sub-01_ses-M000_space-MNI152NLin2009aSym_desc-preproc_T1w.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), img)
    sidecar = {"IntensityNormalization": "brain 99th percentile = 1", "PreprocessingBackend": "embedded",
               "PreprocessingVersion": "1"}
    img.with_name(img.name.replace(".nii.gz", ".json")).write_text(__import__("json").dumps(sidecar))
    sim.check_data(nib.load(img), preproc_provenance(img))  # the same: accepted
    cases = {
        "grid": (nib.Nifti1Image(vol[:, :, :10], np.eye(4)), preproc_provenance(img)),
        "template": (nib.load(img), {**preproc_provenance(img), "template": "MNI152NLin2009cAsym"}),
        "intensity normalization": (nib.load(img), {**preproc_provenance(img), "intensity_normalization": "z"}),
        "preprocessing version": (nib.load(img), {**preproc_provenance(img), "preprocessing_version": "0"}),
        "preprocessing backend": (nib.load(img), {**preproc_provenance(img), "preprocessing_backend": "fsl"}),
    }
    for what, (image, prov) in cases.items():
        with pytest.raises(DaniNetError, match=what) as err:
            sim.check_data(image, prov)
        assert "\n" not in str(err.value)


def test_transfer_in_the_simulation_learns_only_from_scans_up_to_the_start(tmp_path, monkeypatch):
    import daninet_pipeline.model.transfer as transfer_module
    from daninet_pipeline.simulation.subject import simulate_subject

    cfg = TrainConfig.from_file("demo").replace(image_size=32, width=4, z_dim=8)
    model_file = DaniNetModel(cfg).save_model_file(tmp_path / "model.pt")
    rows = []
    for k, age in enumerate((70.0, 71.0, 72.0, 74.0)):
        path = tmp_path / f"s{k}.nii.gz"
        nib.save(nib.Nifti1Image(brain_volume() * (1 - 0.01 * k), np.eye(4)), path)
        rows.append({"session": f"M0{k}", "age": age, "diagnosis": "MCI", "preproc": str(path)})
    seen = []

    def fake_transfer(sim, scans, steps=None):
        seen.extend(s["age"] for s in scans)
        return sim

    monkeypatch.setattr(transfer_module, "transfer", fake_transfer)
    simulate_subject(model_file, pd.DataFrame(rows[::-1]), [75.0], transfer=True, start_session="M01")
    assert seen == [70.0, 71.0]
