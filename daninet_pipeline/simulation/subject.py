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

from ..errors import DaniNetError
from ..model.config import DEFAULT_SIMULATION_MODE

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
                     mode: str = DEFAULT_SIMULATION_MODE, start_session: str | None = None) -> list[dict]:
    """Simulate one subject's starting scan at ``ages``.

    ``sessions``: rows with ``session``, ``age``, ``diagnosis``, ``preproc`` (the
    pre-processed T1w on the template grid). The starting scan is ``start_session``
    (default: the first session by age, the baseline). ``diagnosis`` overrides the
    subject's own (counterfactual trajectories). With ``transfer`` a copy of the model
    is first fine-tuned on the subject's scans up to the starting one, never a later one
    (the paper's "T", :func:`~daninet_pipeline.model.transfer.transfer`). ``mode``:
    ``change`` (the scan plus the generated change from its own age) or ``direct`` (the
    generator's image), as :meth:`~daninet_pipeline.model.simulate.Simulator.simulate`.
    The data must be like the model's training data (grid, template, normalisation,
    pre-processing), else :class:`DaniNetError`; ages outside the model's age groups are
    said in one warning and simulated at the nearest group.

    Returns one dict per age: ``image`` (nibabel), ``age``, ``diagnosis``, ``source``,
    ``source_age``, ``model_age``/``model_source_age`` (the ages the model used),
    ``age_groups``/``age_weights`` (the age groups mixed for ``age``), ``mode``.
    """
    from ..bids.derivatives import preproc_provenance
    from ..model.simulate import Simulator

    rows = sessions.sort_values("age").reset_index(drop=True)
    if start_session is None:
        base = rows.iloc[0]
    else:
        match = rows[rows["session"] == start_session]
        if match.empty:
            raise DaniNetError(f"no session {start_session!r} to start the simulation from")
        base = match.iloc[0]
    own_dx = next((d for d in rows["diagnosis"] if isinstance(d, str) and d), None)
    dx = diagnosis or own_dx
    if dx is None:
        raise DaniNetError("the subject has no diagnosis in any session: give --diagnosis")
    sim = Simulator.load(model_file)
    base_img = nib.load(base["preproc"])
    sim.check_data(base_img, preproc_provenance(base["preproc"]), name=Path(base["preproc"]).name)
    start_age = float(base["age"])
    outside = [a for a in [start_age, *ages] if sim.age_use(a)["outside"]]
    if outside:
        lo, hi = sim.age_span
        LOG.warning("%s: age%s %s outside the model's age groups (%.1f-%.1f years): simulated at the nearest "
                    "group (the sidecar records the age used)", Path(base["preproc"]).name,
                    "s" if len(outside) > 1 else "", ", ".join(f"{a:.1f}" for a in outside), lo, hi)
    if transfer:
        from ..model.transfer import scans_up_to
        from ..model.transfer import transfer as fine_tune

        scans = [{"image": nib.load(r["preproc"]), "age": float(r["age"]),
                  "diagnosis": r["diagnosis"] if isinstance(r["diagnosis"], str) and r["diagnosis"] else dx}
                 for r in scans_up_to(rows, start_age).to_dict("records")]
        sim = fine_tune(sim, scans, steps=transfer_steps)
    images = sim.simulate(base_img, start_age, dx, ages, mode=mode)
    results = []
    for img, a in zip(images, ages):
        use = sim.age_use(a)
        results.append({"image": img, "age": float(a), "diagnosis": dx, "source": base["preproc"],
                        "source_age": start_age, "counterfactual": diagnosis is not None and diagnosis != own_dx,
                        "mode": mode, "model_age": use["model_age"],
                        "model_source_age": sim.age_use(start_age)["model_age"], "age_groups": use["age_groups"],
                        "age_weights": use["weights"]})
    return results


def to_native(img: nib.Nifti1Image, xfm_file, reference) -> nib.Nifti1Image:
    """A template-space image on the grid of the subject's raw T1w (``reference``), through
    the inverse of the participant level's native-to-template transform (ITK text file)."""
    from ..preprocessing.resampling import resample_affine
    from ..preprocessing.transforms import read_itk_affine

    native_to_template = read_itk_affine(xfm_file)
    ref = nib.load(reference) if isinstance(reference, (str, Path)) else reference
    # a native world point is sampled at its template point: target_to_source = native_to_template
    moved = resample_affine(img, native_to_template, (ref.shape[:3], ref.affine), order=1)
    # the raw T1w's header (qform/sform codes, pixdim), so ITK tools take both together
    header = ref.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    return nib.Nifti1Image(np.asarray(moved.dataobj, np.float32), None, header)
