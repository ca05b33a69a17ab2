"""Fixtures of the model tests: a tiny template-grid dataset and slice store.

The volumes are nilearn's MNI152NLin2009aSym template resampled to 4 mm (50 x 59 x 48),
darkened with age inside the brain (so the sequence of a subject is monotone) plus a
little noise; slices are 32 x 32 and the nets are 4 channels wide.
"""

from __future__ import annotations

import numpy as np
import nibabel as nib
import pytest

from daninet_pipeline.model.config import TrainConfig
from daninet_pipeline.model.data import SliceStore

AGES = (65.0, 72.0, 80.0)
DIAGNOSES = ("CN", "EMCI", "AD")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The nets here are tiny: one thread each is faster than two, and with pytest-xdist
    on 2 cores two threads per worker oversubscribe the CPU (OpenMP spin-waits)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def grid_volume():
    """(array, affine) of the template on a 4 mm grid, intensities in [0, ~1]."""
    from nibabel.processing import resample_to_output

    from daninet_pipeline.data.resources import load_template

    img = resample_to_output(load_template(), voxel_sizes=(4, 4, 4), order=1)
    vol = np.clip(np.asarray(img.dataobj, np.float32), 0, None)
    vol[vol < 0.02] = 0
    return vol, img.affine


def make_records(vol, affine, n_subjects=4, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for s in range(n_subjects):
        for k, age in enumerate(AGES):
            v = vol * (1 - 0.01 * (age - AGES[0])) + rng.normal(0, 0.01, vol.shape) * (vol > 0)
            recs.append({"image": nib.Nifti1Image(np.clip(v, 0, None).astype(np.float32), affine),
                         "subject": f"s{s:02d}", "session": f"M{k:02d}", "age": age,
                         "diagnosis": DIAGNOSES[s % 3]})
    return recs


@pytest.fixture(scope="session")
def tiny_store(grid_volume, tmp_path_factory):
    vol, aff = grid_volume
    return SliceStore.build(tmp_path_factory.mktemp("store") / "store", make_records(vol, aff), image_size=32)


@pytest.fixture
def tiny_cfg():
    """A tiny full configuration (L_vox and L_reg on, diagnosis conditioning)."""
    return TrainConfig.from_file("demo").replace(
        image_size=32, width=4, z_dim=8, batch_size=4, steps=6, checkpoint_every=3, n_bins=4,
        age_min=63.0, age_max=83.0)
