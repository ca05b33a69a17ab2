"""Group-level fixtures: stand-in participant derivatives and one tiny trained model."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from filelock import FileLock

from daninet_pipeline.bids.naming import derivative_path
from daninet_pipeline.training.sessions import gather_sessions
from daninet_pipeline.workflows.group import init_group_wf

from ..conftest import session_folder

TPL = "MNI152NLin2009aSym"


@pytest.fixture(autouse=True, scope="module")
def quick_tbm():
    """SyN of one iteration in the group-level tests: they check which follow-ups, methods
    and rows the group level scores, not what TBM measures (its accuracy at the group
    level's quick setting is tested in tests/test_evaluation_measure.py). It reaches the
    nodes that run in the test's process: the workflow run with ``plugin="Linear"``, the
    CLI with ``--plugin Linear`` (MultiProc's workers are fresh interpreters)."""
    from daninet_pipeline.evaluation import measure

    saved = measure.SYN_ITERATIONS, measure.QUICK_SYN_ITERATIONS
    measure.SYN_ITERATIONS = measure.QUICK_SYN_ITERATIONS = (1,)
    yield
    measure.SYN_ITERATIONS, measure.QUICK_SYN_ITERATIONS = saved


def fake_derivatives(bids_dir, out_dir, skip_subject=None):
    """Participant derivatives stood in for by the ground truth (noise-free, skull-stripped)."""
    truth = bids_dir / "derivatives" / "ground_truth"
    for img_path in sorted(truth.glob(f"sub-*/ses-*/anat/*_space-{TPL}_desc-noisefree_T1w.nii.gz")):
        sub, ses = img_path.name.split("_")[:2]
        if sub[4:] == skip_subject:
            continue
        mask_path = img_path.with_name(img_path.name.replace("desc-noisefree_T1w", "desc-brain_mask"))
        img, mask = nib.load(img_path), nib.load(mask_path)
        raw = next((bids_dir / sub / ses / "anat").glob("*_T1w.nii.gz"))
        preproc = derivative_path(out_dir, raw, "preproc")
        out_mask = derivative_path(out_dir, raw, "mask_std")
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



TINY_CONFIG = {"extends": "demo", "image_size": 32, "width": 8, "z_dim": 16, "batch_size": 8,
               "steps": 6, "checkpoint_every": 3, "transfer_steps": 2,
               # 2-year age groups: every demo subject spans two groups
               "age_min": 50.0, "age_max": 96.0, "n_bins": 23,
               "weight_vox": {"value": 1.0}, "weight_reg": {"value": 1.0}}


@pytest.fixture(scope="session")
def trained_group(demo_bids, tmp_path_factory):
    """(bids_dir, output_dir, config path) after running the group workflow once per test
    session (the xdist workers share it: the first makes it under a file lock, the others
    wait and reuse it; read-only, write elsewhere)."""
    tmp = session_folder(tmp_path_factory, "trained_group")
    config = tmp / "tiny.json"
    with FileLock(str(tmp) + ".lock"):
        if not (tmp / "finished").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            _train_group(demo_bids, tmp, config)
            (tmp / "finished").touch()
    return demo_bids, tmp / "out", str(config)


def _train_group(demo_bids, tmp, config):
    config.write_text(json.dumps(TINY_CONFIG))
    out = tmp / "out"
    fake_derivatives(demo_bids, out)
    table, missing = gather_sessions(demo_bids, out)
    assert not missing
    table.to_csv(tmp / "sessions.tsv", sep="\t", index=False, na_rep="n/a")
    wf = init_group_wf(bids_dir=demo_bids, output_dir=out, config=str(config), seed=1)
    wf.inputs.inputnode.sessions_tsv = str(tmp / "sessions.tsv")
    wf.base_dir = str(tmp / "work")
    wf.config["execution"]["crashdump_dir"] = str(tmp / "crash")
    wf.run(plugin="Linear")
