"""Simulation at the participant level (``--model``): a subject's baseline at other ages
and diagnoses, as plain functions. The Nipype side is
:func:`daninet_pipeline.workflows.simulation.init_simulation_wf`; names and sidecars of
the written images come from :mod:`daninet_pipeline.bids.naming` and
:mod:`daninet_pipeline.bids.derivatives` (sinks in ``init_ds_simulation_wf``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .errors import DaniNetError

LOG = logging.getLogger("daninet.simulation")


def target_ages_for(sessions: pd.DataFrame, *, target_ages=None, years_ahead=None) -> list[float]:
    """The ages to simulate for one subject (rows sorted by age, first = baseline).

    Explicit ``target_ages``; or the baseline age plus ``years_ahead``; or by default
    the ages of the subject's real follow-ups.
    """
    base_age = float(sessions["age"].iloc[0])
    if target_ages:
        return [float(a) for a in target_ages]
    if years_ahead:
        return [round(base_age + float(y), 1) for y in years_ahead]
    ages = [float(a) for a in sessions["age"].iloc[1:]]
    if not ages:
        raise DaniNetError("the subject has no follow-up session: give --target-ages or --years-ahead")
    return ages


def simulate_subject(model_file, sessions: pd.DataFrame, ages: list[float], *, diagnosis: str | None = None,
                     transfer: bool = False, transfer_steps: int | None = None,
                     mode: str = "change") -> list[dict]:
    """Simulate the baseline (first session by age) of one subject at ``ages``.

    ``sessions``: rows with ``session``, ``age``, ``diagnosis``, ``preproc`` (the
    pre-processed T1w on the template grid). ``diagnosis`` overrides the subject's own
    (counterfactual trajectories). With ``transfer`` a copy of the model is first
    fine-tuned on the subject's scans up to the baseline (the paper's "T"). ``mode``:
    ``change`` (the baseline plus the generated change from its own age) or ``direct``
    (the generator's image), as :meth:`~daninet_pipeline.model.simulate.Simulator.simulate`.
    Returns one dict per age: ``image`` (nibabel), ``age``, ``diagnosis``, ``source``.
    """
    from .model.simulate import Simulator

    rows = sessions.sort_values("age").reset_index(drop=True)
    base = rows.iloc[0]
    own_dx = next((d for d in rows["diagnosis"] if isinstance(d, str) and d), None)
    dx = diagnosis or own_dx
    if dx is None:
        raise DaniNetError("the subject has no diagnosis in any session: give --diagnosis")
    sim = Simulator.load(model_file)
    if transfer:
        from .model.transfer import transfer as fine_tune

        scans = [{"image": nib.load(base["preproc"]), "age": float(base["age"]), "diagnosis": own_dx or dx}]
        sim = fine_tune(sim, scans, steps=transfer_steps)
    images = sim.simulate(base["preproc"], float(base["age"]), dx, ages, mode=mode)
    return [{"image": img, "age": float(a), "diagnosis": dx, "source": base["preproc"],
             "source_age": float(base["age"]), "counterfactual": diagnosis is not None and diagnosis != own_dx,
             "mode": mode}
            for img, a in zip(images, ages)]


def to_native(img: nib.Nifti1Image, xfm_file, reference) -> nib.Nifti1Image:
    """A template-space image on the grid of the subject's raw T1w (``reference``), through
    the inverse of the participant level's native-to-template transform (ITK text file)."""
    from .preprocessing.resampling import resample_affine
    from .preprocessing.transforms import read_itk_affine

    native_to_template = read_itk_affine(xfm_file)
    ref = nib.load(reference) if isinstance(reference, (str, Path)) else reference
    # a native world point is sampled at its template point: target_to_source = native_to_template
    moved = resample_affine(img, native_to_template, (ref.shape[:3], ref.affine), order=1)
    # the raw T1w's header (qform/sform codes, pixdim), so ITK tools take both together
    header = ref.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    return nib.Nifti1Image(np.asarray(moved.dataobj, np.float32), None, header)
