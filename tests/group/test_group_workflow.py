"""Group level: gather -> split -> slice store -> SVRs + training -> evaluation -> card.

The participant-level derivatives are stood in for by the demo dataset's ground truth
(noise-free template-space images, skull-stripped with the true mask), so this test
checks the group level alone.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.errors import BIDSInputError
from daninet_pipeline.group import derivative_paths, gather_sessions, training_records
from daninet_pipeline.workflows.group import init_group_wf, model_dir_of

TPL = "MNI152NLin2009aSym"


def _fake_derivatives(bids_dir, out_dir, skip_subject=None):
    truth = bids_dir / "derivatives" / "ground_truth"
    for img_path in sorted(truth.glob(f"sub-*/ses-*/anat/*_space-{TPL}_desc-noisefree_T1w.nii.gz")):
        sub, ses = img_path.name.split("_")[:2]
        if sub[4:] == skip_subject:
            continue
        mask_path = img_path.with_name(img_path.name.replace("desc-noisefree_T1w", "desc-brain_mask"))
        img, mask = nib.load(img_path), nib.load(mask_path)
        preproc, out_mask = derivative_paths(out_dir, sub[4:], ses[4:])
        preproc.parent.mkdir(parents=True, exist_ok=True)
        data = np.asarray(img.dataobj, np.float32) * (np.asarray(mask.dataobj) > 0)
        nib.save(nib.Nifti1Image(data, img.affine), preproc)
        shutil.copy(mask_path, out_mask)


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"extends": "demo", "image_size": 32, "width": 8, "z_dim": 16,
                                "batch_size": 8, "steps": 6, "checkpoint_every": 3,
                                # 2-year age groups: every demo subject spans two groups
                                "age_min": 50.0, "age_max": 96.0, "n_bins": 23,
                                "weight_vox": {"value": 1.0}, "weight_reg": {"value": 1.0}}))
    return str(path)


def test_gather_names_subjects_without_derivatives(demo_bids, tmp_path):
    out = tmp_path / "out"
    first = sorted(p.name for p in demo_bids.glob("sub-*"))[0][4:]
    _fake_derivatives(demo_bids, out, skip_subject=first)
    table, missing = gather_sessions(demo_bids, out)
    assert missing == [first]
    split = pd.DataFrame({"subject": table["subject"].unique(), "split": "train", "sessions": 1})
    with pytest.raises(BIDSInputError, match=f"sub-{first}: run the participant level first"):
        training_records(table, split)


def test_group_workflow_trains_evaluates_and_writes_a_card(demo_bids, tmp_path, tiny_config):
    out = tmp_path / "out"
    _fake_derivatives(demo_bids, out)
    wf = init_group_wf(bids_dir=demo_bids, output_dir=out, config=tiny_config, seed=1)
    wf.base_dir = str(tmp_path / "work")
    wf.config["execution"]["crashdump_dir"] = str(tmp_path / "crash")
    wf.run(plugin="Linear")
    model_dir = model_dir_of(out, tiny_config)
    split = pd.read_csv(model_dir / "split.tsv", sep="\t")
    assert set(split["split"]) <= {"train", "validation", "test"} and split["subject"].is_unique
    assert (model_dir / "model.pt").is_file()
    losses = pd.read_csv(model_dir / "losses.tsv", sep="\t")
    assert losses["step"].max() == 5 and {"loss_def", "loss_vox", "loss_reg"} <= set(losses.columns)
    card = (model_dir / "model_card.md").read_text()
    assert "training steps: 6" in card and "split (subjects / sessions)" in card
    if (split["split"] == "test").any():
        ev = pd.read_csv(model_dir / "group_eval.tsv", sep="\t")
        assert set(ev["method"]) == {"identity", "daninet"}
        assert ev["ssim"].between(-1, 1).all()
        assert "| identity |" in card
