"""Simulation at the participant level: target ages, names, sidecars, counterfactuals."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.bids.derivatives import sha256_of
from daninet_pipeline.bids.naming import model_label, simulation_desc
from daninet_pipeline.errors import DaniNetError
from daninet_pipeline.training.sessions import gather_sessions
from daninet_pipeline.simulation.subject import simulate_subject, target_ages_for
from daninet_pipeline.workflows.group import model_dir_of


def test_simulation_labels_are_bids_alphanumeric_and_name_the_model():
    assert simulation_desc("demo", 72.46) == "simdemoAge72p5"
    assert simulation_desc("full-residual", 80, "AD") == "simfullresidualAge80p0AD"
    assert model_label("P") == "p" and model_label("/cfg/my_model.v2.json") == "mymodelv2"
    with pytest.raises(ValueError):
        model_label("--")


def test_target_ages_default_to_the_real_follow_ups():
    rows = pd.DataFrame({"age": [70.2, 71.2, 75.0]})
    assert target_ages_for(rows) == [71.2, 75.0]
    assert target_ages_for(rows, years_ahead=[1, 5]) == [71.2, 75.2]
    assert target_ages_for(rows, target_ages=[80]) == [80.0]
    with pytest.raises(DaniNetError, match="no follow-up"):
        target_ages_for(rows.iloc[:1])


def _simulate_through_the_workflow(bids_dir, out, model, sub, tmp_path, **options):
    from daninet_pipeline.workflows.simulation import init_simulation_wf

    table, _ = gather_sessions(bids_dir, out)
    sessions_tsv = tmp_path / "sessions.tsv"
    table.to_csv(sessions_tsv, sep="\t", index=False, na_rep="n/a")
    if options.get("native"):  # the transforms, as the participant level writes them
        from daninet_pipeline.bids.naming import derivative_path
        from daninet_pipeline.preprocessing.transforms import write_itk_affine

        truth = bids_dir / "derivatives" / "ground_truth"
        for t1w in table.loc[table["subject"] == sub, "t1w"]:
            rel = Path(t1w).relative_to(bids_dir)
            xfm = truth / rel.parent / Path(t1w).name.replace("_T1w.nii.gz", "_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.txt")
            target = derivative_path(tmp_path / "sim", t1w, "xfm")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_itk_affine(np.loadtxt(xfm), target)
    wf = init_simulation_wf(subject=sub, model_file=model, bids_dir=bids_dir, output_dir=tmp_path / "sim",
                            **options)
    wf.inputs.inputnode.sessions_tsv = str(sessions_tsv)
    wf.base_dir = str(tmp_path / "work")
    wf.config["execution"]["crashdump_dir"] = str(tmp_path / "crash")
    return table, wf.run(plugin="Linear")


def test_simulated_derivatives_have_names_and_sidecars(trained_group, tmp_path):
    bids_dir, out, config = trained_group
    model = model_dir_of(out, config) / "model.pt"
    table, _ = gather_sessions(bids_dir, out)
    sub = table["subject"].iloc[0]
    rows = table[table["subject"] == sub].sort_values("age")
    ages = target_ages_for(rows)
    _simulate_through_the_workflow(bids_dir, out, model, sub, tmp_path, native=True)
    written = sorted((tmp_path / "sim").rglob("*_space-*_desc-sim*_T1w.nii.gz"))
    assert len(written) == len(ages)
    base = nib.load(rows["preproc"].iloc[0])
    stem = Path(rows["t1w"].iloc[0]).name.replace("_T1w.nii.gz", "")
    for path, age in zip(written, sorted(ages)):
        assert path.name == f"{stem}_space-MNI152NLin2009aSym_desc-{simulation_desc('tiny', age)}_T1w.nii.gz"
        img = nib.load(path)
        assert img.shape == base.shape and np.allclose(img.affine, base.affine)
        side = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert side["Synthetic"] is True and side["SimulatedAge"] == pytest.approx(age)
        assert side["Model"] == {"Name": "tiny", "Label": "tiny", "File": "model.pt", "SHA256": sha256_of(model)}
        assert side["Sources"][0].startswith("bids:raw:sub-")
        assert side["SimulationMode"] == "change"
        native = path.with_name(path.name.replace("_space-MNI152NLin2009aSym", ""))
        raw = nib.load(rows["t1w"].iloc[0])
        assert nib.load(native).shape == raw.shape
        assert (int(nib.load(native).header["sform_code"]), int(nib.load(native).header["qform_code"])) == (
            int(raw.header["sform_code"]), int(raw.header["qform_code"]))
    assert not list((tmp_path / "sim").rglob(".daninet-staging-*"))


def test_change_mode_keeps_the_baseline_and_direct_mode_is_the_generators_image(trained_group):
    bids_dir, out, config = trained_group
    model = model_dir_of(out, config) / "model.pt"
    table, _ = gather_sessions(bids_dir, out)
    rows = table[table["subject"] == table["subject"].iloc[0]].sort_values("age")
    base = np.asarray(nib.load(rows["preproc"].iloc[0]).dataobj, np.float32)
    own_age = [float(rows["age"].iloc[0])]
    change = np.asarray(simulate_subject(model, rows, own_age, mode="change")[0]["image"].dataobj)
    direct = simulate_subject(model, rows, own_age, mode="direct")[0]
    assert direct["mode"] == "direct"
    # at the baseline's own age the generated change is zero: the baseline comes back
    np.testing.assert_allclose(change, base, atol=1e-4)
    assert np.abs(np.asarray(direct["image"].dataobj) - base).max() > 0.05


def test_counterfactual_diagnosis_and_transfer(trained_group):
    bids_dir, out, config = trained_group
    model = model_dir_of(out, config) / "model.pt"
    table, _ = gather_sessions(bids_dir, out)
    rows = table[table["subject"] == table["subject"].iloc[0]].sort_values("age")
    own = next(d for d in rows["diagnosis"] if isinstance(d, str))
    other = "AD" if own != "AD" else "CN"
    res = simulate_subject(model, rows, [rows["age"].iloc[0] + 3], diagnosis=other, transfer=True)
    assert res[0]["diagnosis"] == other and res[0]["counterfactual"]
    same = simulate_subject(model, rows, [rows["age"].iloc[0] + 3])
    assert not same[0]["counterfactual"]
    a = np.asarray(res[0]["image"].dataobj)
    b = np.asarray(same[0]["image"].dataobj)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_simulation_workflow_writes_one_image_per_year_ahead(trained_group, tmp_path):
    bids_dir, out, config = trained_group
    model = model_dir_of(out, config) / "model.pt"
    sub = sorted(p.name[4:] for p in bids_dir.glob("sub-*"))[-1]
    table, result = _simulate_through_the_workflow(bids_dir, out, model, sub, tmp_path, years_ahead=[1, 2.5])
    files = sorted((tmp_path / "sim").rglob("*_T1w.nii.gz"))
    base_age = table[table["subject"] == sub]["age"].min()
    assert [f.name.split("desc-")[1] for f in files] == sorted(
        f"{simulation_desc('tiny', base_age + y)}_T1w.nii.gz" for y in (1, 2.5))
    assert sorted(n.name for n in result.nodes() if not n.name.startswith("_")) == [
        "ds_simulated", "simulate"]


def test_native_output_lands_on_the_subjects_brain(demo_bids, tmp_path):
    """A template-space image mapped back with the session's transform covers the true
    native brain mask (the transform written as the participant level writes it)."""
    from daninet_pipeline.preprocessing.transforms import write_itk_affine
    from daninet_pipeline.simulation.subject import to_native

    truth = demo_bids / "derivatives" / "ground_truth"
    xfm_txt = sorted(truth.glob("sub-*/ses-*/anat/*_xfm.txt"))[0]
    stem = xfm_txt.name.split("_from-")[0]
    sub, ses = stem.split("_")
    itk = write_itk_affine(np.loadtxt(xfm_txt), tmp_path / "xfm.txt")
    tpl_mask = nib.load(xfm_txt.with_name(f"{stem}_space-MNI152NLin2009aSym_desc-brain_mask.nii.gz"))
    raw = demo_bids / sub / ses / "anat" / f"{stem}_T1w.nii.gz"
    moved = to_native(nib.Nifti1Image(np.asarray(tpl_mask.dataobj, np.float32), tpl_mask.affine), itk, raw)
    ref = np.asarray(nib.load(xfm_txt.with_name(f"{stem}_desc-brain_mask.nii.gz")).dataobj) > 0
    assert moved.shape == nib.load(raw).shape
    got = np.asarray(moved.dataobj) > 0.5
    assert 2 * (got & ref).sum() / (got.sum() + ref.sum()) > 0.95
