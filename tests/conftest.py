"""Shared fixtures: small synthetic BIDS datasets, made once per test session.

With pytest-xdist every worker asks for the same dataset; a file lock makes the first
worker generate it and the others reuse it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from filelock import FileLock

from daninet_pipeline.data.synthetic import DATA_MODEL_VERSION, write_dataset

DEMO_SUBJECTS = 3
DEMO_SEED = 3


def _shared_dataset(tmp_path_factory, name: str, **kwargs) -> Path:
    root = tmp_path_factory.getbasetemp().parent  # shared by all xdist workers
    # the folder outlives the test session (and is shared by checkouts of other versions
    # on this machine): its name carries the data model, so an older generator's dataset
    # is never taken for this one's
    out = root / f"{name}_dm{DATA_MODEL_VERSION}"
    with FileLock(str(out) + ".lock"):
        if not (out / "dataset_description.json").is_file():
            write_dataset(out, **kwargs)
    return out


def session_folder(tmp_path_factory, name: str) -> Path:
    """A folder of this test session that every xdist worker sees under the same name (the
    workers' common base folder; without xdist, the session's own): make it under a
    :class:`FileLock` on ``str(folder) + '.lock'``."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name


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


def oasis_like(demo_bids: Path, root: Path, *, sessions_per_subject: int = 2,
               second_run: str | None = None, acq_rec: str | None = None) -> Path:
    """The demo dataset reshaped as Clinica's OASIS-3 converter writes it: every T1w
    ``..._run-01_T1w.nii.gz``, ``sessions.tsv`` with ``age`` (whole years), ``cdr`` and
    ``dx1`` and no ``diagnosis`` column; the first ``sessions_per_subject`` sessions.

    ``second_run``: a subject (label) whose baseline session also has a ``run-02`` (a copy
    of run-01 with 1% more signal). ``acq_rec``: a subject whose T1w are
    ``acq-mprage_rec-norm_run-01``, its baseline also with an ``acq-spgr_rec-norm_run-01``
    (differing from the first only by ``acq-``).
    """
    import shutil

    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    for name in ("dataset_description.json", "participants.tsv", "participants.json", "README"):
        if (demo_bids / name).is_file():
            shutil.copy(demo_bids / name, root / name)
    for sub_dir in sorted(demo_bids.glob("sub-*")):
        sub = sub_dir.name
        table = pd.read_csv(sub_dir / f"{sub}_sessions.tsv", sep="\t", dtype=str)
        # the first sessions and the last (whole-year ages stay distinct)
        table = pd.concat([table.iloc[:sessions_per_subject - 1], table.iloc[[-1]]])
        for ses in table["session_id"]:
            src = next((sub_dir / ses / "anat").glob("*_T1w.nii.gz"))
            anat = root / sub / ses / "anat"
            anat.mkdir(parents=True, exist_ok=True)
            extra = "_acq-mprage_rec-norm" if sub[4:] == acq_rec else ""
            shutil.copy(src, anat / f"{sub}_{ses}{extra}_run-01_T1w.nii.gz")
            baseline = ses == table["session_id"].iloc[0]
            img = nib.load(src)
            if baseline and sub[4:] == second_run:
                data = np.asarray(img.dataobj, np.float32) * 1.01
                nib.save(nib.Nifti1Image(data, img.affine), anat / f"{sub}_{ses}_run-02_T1w.nii.gz")
            if baseline and sub[4:] == acq_rec:
                data = np.asarray(img.dataobj, np.float32) * 0.99
                nib.save(nib.Nifti1Image(data, img.affine),
                         anat / f"{sub}_{ses}_acq-spgr_rec-norm_run-01_T1w.nii.gz")
        oasis = pd.DataFrame({"session_id": table["session_id"],
                              "age": table["age"].astype(float).round().astype(int),
                              "cdr": table["cdr_global"], "dx1": "Cognitively normal"})
        oasis.to_csv(root / sub / f"{sub}_sessions.tsv", sep="\t", index=False)
    return root


def write_tool(folder: Path, name: str, text: str) -> Path:
    """An executable ``/bin/sh`` script ``folder/name`` with body ``text``: a stand-in
    command (sbatch, squeue, scancel, nvidia-smi, torchrun) put first on PATH."""
    path = Path(folder) / name
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path
