"""Fixtures of the pre-processing tests: sessions of the small demo dataset with truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest


@dataclass
class Session:
    subject: str
    session: str
    t1w: Path
    true_mask: Path
    true_xfm: np.ndarray  # native -> template, RAS


def demo_sessions(bids: Path) -> list[Session]:
    out = []
    for t1w in sorted(bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz")):
        stem = t1w.name.replace("_T1w.nii.gz", "")
        sub, ses = stem.split("_")[:2]
        truth = bids / "derivatives" / "ground_truth" / sub / ses / "anat"
        out.append(Session(sub[4:], ses[4:], t1w, truth / f"{stem}_desc-brain_mask.nii.gz",
                           np.loadtxt(truth / f"{stem}_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.txt")))
    return out


@pytest.fixture(scope="session")
def demo_session(demo_bids) -> Session:
    """The first session of the small demo dataset."""
    return demo_sessions(demo_bids)[0]


def dice(a, b) -> float:
    a = np.asarray(a.dataobj if hasattr(a, "dataobj") else a) > 0
    b = np.asarray(b.dataobj if hasattr(b, "dataobj") else b) > 0
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def oblique_image(data: np.ndarray, zooms=(1.1, 1.0, 1.2), angle_deg: float = 10.0,
                  flip_x: bool = True) -> nib.Nifti1Image:
    """``data`` on an oblique, non-isotropic, LPS-stored grid."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(zooms) @ np.diag([-1 if flip_x else 1, 1, 1])
    affine[:3, 3] = -affine[:3, :3] @ (np.array(data.shape) / 2)
    return nib.Nifti1Image(data.astype(np.float32), affine)
