"""Rating fixtures: a tiny raw dataset and derivatives with two models' simulated images,
written with the agreed naming (``desc-sim<modellabel>Age<whole>p<tenth>``, sidecars with
``Synthetic``, ``SimulatedAge``, ``Sources`` and ``Model.Name``/``Label``)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from daninet_pipeline.bids.naming import derivative_path, model_label, simulation_desc
from daninet_pipeline.interfaces.bids import write_dataset_description

TPL = "MNI152NLin2009aSym"
SHAPE = (14, 16, 12)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _brain(rng, atrophy: float) -> np.ndarray:
    """An ellipsoid 'brain' with a ventricle that grows with ``atrophy`` (0..1)."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    r = x ** 2 / 0.8 + y ** 2 / 0.85 + z ** 2 / 0.75
    data = np.where(r < 1, 100.0 + 20 * np.cos(6 * x) * np.sin(5 * y), 0.0)
    data[(x ** 2 + y ** 2 / 2 + z ** 2) < 0.05 + 0.1 * atrophy] = 20.0
    return (data + rng.normal(0, 2, SHAPE) * (r < 1)).astype(np.float32)


def write_simulated(out: Path, bids: Path, *, subject: str, base_session: str, raw_t1w: Path,
                    model: str, age: float, source_age: float, data: np.ndarray) -> Path:
    """One simulated image and its sidecar, named and described as the simulation writes them."""
    preproc = derivative_path(out, raw_t1w, "preproc")
    path = derivative_path(out, raw_t1w, "simulated", desc=simulation_desc(model, age))
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    sidecar = {"Description": "SYNTHETIC image simulated by DaniNet: not an acquired scan",
               "Synthetic": True, "SkullStripped": True,
               "Sources": [f"bids:raw:{raw_t1w.relative_to(bids)}", f"bids::{preproc.relative_to(out)}"],
               "SpatialReference": TPL, "SourceAge": source_age, "SimulatedAge": age,
               "SimulatedDiagnosis": "CN", "CounterfactualDiagnosis": False, "TransferLearning": False,
               "SimulationMode": "change",
               "Model": {"Name": model, "Label": model_label(model), "File": "model.pt", "SHA256": "0" * 64}}
    path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar, indent=2))
    return path


def make_rating_derivatives(root: Path, *, n_subjects: int = 3, ages=(70.0, 72.0, 75.5),
                            models=("full-residual", "base"), seed: int = 0) -> tuple[Path, Path]:
    """(bids_dir, output_dir): ``n_subjects`` subjects with sessions at ``ages`` (+ the
    subject's index), pre-processed, each follow-up simulated by every model."""
    rng = np.random.default_rng(seed)
    bids, out = root / "bids", root / "out"
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": "rating test", "BIDSVersion": "1.9.0", "DatasetType": "raw"}))
    (bids / "participants.tsv").write_text("participant_id\tsex\n" + "".join(
        f"sub-{i:02d}\tF\n" for i in range(1, n_subjects + 1)))
    write_dataset_description(out, bids_dir=bids)
    for i in range(1, n_subjects + 1):
        sub = f"{i:02d}"
        sessions = [f"M{12 * k:03d}" for k in range(len(ages))]
        sub_ages = [round(a + i, 1) for a in ages]
        (bids / f"sub-{sub}").mkdir()
        (bids / f"sub-{sub}" / f"sub-{sub}_sessions.tsv").write_text(
            "session_id\tage\tdiagnosis\n" + "".join(f"ses-{s}\t{a}\tCN\n" for s, a in zip(sessions, sub_ages)))
        for k, (ses, age) in enumerate(zip(sessions, sub_ages)):
            anat = bids / f"sub-{sub}" / f"ses-{ses}" / "anat"
            anat.mkdir(parents=True)
            data = _brain(rng, atrophy=k / len(ages))
            nib.save(nib.Nifti1Image(data, AFFINE), anat / f"sub-{sub}_ses-{ses}_T1w.nii.gz")
            t1w = anat / f"sub-{sub}_ses-{ses}_T1w.nii.gz"
            preproc, mask = derivative_path(out, t1w, "preproc"), derivative_path(out, t1w, "mask_std")
            preproc.parent.mkdir(parents=True)
            nib.save(nib.Nifti1Image(data, AFFINE), preproc)
            nib.save(nib.Nifti1Image((data > 0).astype(np.uint8), AFFINE), mask)
        raw = bids / f"sub-{sub}" / f"ses-{sessions[0]}" / "anat" / f"sub-{sub}_ses-{sessions[0]}_T1w.nii.gz"
        for k, age in enumerate(sub_ages[1:], 1):
            for m, model in enumerate(models):
                write_simulated(out, bids, subject=sub, base_session=sessions[0], raw_t1w=raw, model=model,
                                age=age, source_age=sub_ages[0],
                                data=_brain(rng, atrophy=k / len(ages) * (0.5 + m / 2)))
    return bids, out


@pytest.fixture
def rating_derivatives(tmp_path) -> tuple[Path, Path]:
    """3 subjects x 2 follow-ups, two models (full-residual, base) + identity: 6 trials."""
    return make_rating_derivatives(tmp_path)
