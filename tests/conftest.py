"""Shared fixtures: small synthetic BIDS datasets, made once per test session.

With pytest-xdist every worker asks for the same dataset; a file lock makes the first
worker generate it and the others reuse it.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from filelock import FileLock

from daninet_pipeline.data.synthetic import write_dataset

DEMO_SUBJECTS = 3
DEMO_SEED = 3


def _shared_dataset(tmp_path_factory, name: str, **kwargs) -> Path:
    root = tmp_path_factory.getbasetemp().parent  # shared by all xdist workers
    out = root / name
    with FileLock(str(out) + ".lock"):
        if not (out / "dataset_description.json").is_file():
            write_dataset(out, **kwargs)
    return out


@pytest.fixture(scope="session")
def demo_bids(tmp_path_factory) -> Path:
    """Small-shape demo dataset: 3 subjects, seed 3 (read-only: copy before changing)."""
    return _shared_dataset(tmp_path_factory, "demo_small_s3", n_subjects=DEMO_SUBJECTS,
                           seed=DEMO_SEED, shape="small")


def make_bids_tree(root: Path, subjects: dict, participants: str | None = None,
                   sessions_tsv: dict | None = None) -> Path:
    """A tiny BIDS tree: ``subjects`` maps 'sub-X' to a list of session labels (or [None]).

    Each T1w is a 4 x 4 x 4 image. ``participants`` is the text of participants.tsv;
    ``sessions_tsv`` maps 'sub-X' to the text of its sessions.tsv.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "tiny", "BIDSVersion": "1.10.0", "DatasetType": "raw"}))
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4))
    for sub, sessions in subjects.items():
        for ses in sessions:
            anat = root / sub / (ses or "") / "anat"
            anat.mkdir(parents=True, exist_ok=True)
            name = f"{sub}_{ses}_T1w.nii.gz" if ses else f"{sub}_T1w.nii.gz"
            nib.save(img, anat / name)
    if participants is not None:
        (root / "participants.tsv").write_text(participants)
    for sub, text in (sessions_tsv or {}).items():
        (root / sub / f"{sub}_sessions.tsv").write_text(text)
    return root
