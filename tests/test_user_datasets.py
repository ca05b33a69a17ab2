"""The app on datasets shaped like labs' own (issue 12): Clinica's OASIS-3 (``run-01``,
``sessions.tsv`` with ``age``/``cdr`` and no ``diagnosis``), ``acq-``/``rec-`` entities,
two runs in one session; participant, group and simulation through the command line;
then ``rm -rf OUTPUT_DIR`` and the same commands with the same work folder."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time

import re

import pandas as pd
import pytest

from daninet_pipeline.bids import run_validator
from daninet_pipeline.cli.run import main

from .conftest import oasis_like
from .group.conftest import TINY_CONFIG

TPL = "MNI152NLin2009aSym"


def _files(root):
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
            and "logs" not in p.relative_to(root).parts}


def _results(work):
    return {str(p): p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")}


@pytest.fixture(scope="module")
def oasis(demo_bids, tmp_path_factory):
    """Participant, group (tiny model) and simulation on an OASIS-3-shaped dataset, timed."""
    tmp = tmp_path_factory.mktemp("oasis")
    subjects = sorted(p.name[4:] for p in demo_bids.glob("sub-*"))
    bids = oasis_like(demo_bids, tmp / "bids", second_run=subjects[0], acq_rec=subjects[1])
    config = tmp / "tiny-oasis.json"
    config.write_text(json.dumps(TINY_CONFIG))
    out, work = tmp / "out", tmp / "work"
    common = ["--work-dir", str(work), "--nprocs", "2", "--omp-nthreads", "1", "--seed", "1"]
    commands = {
        "participant": [str(bids), str(out), "participant", *common],
        "group": [str(bids), str(out), "group", "--config", str(config), *common],
        "simulation": [str(bids), str(out), "participant", "--model",
                       str(out / "models" / "tiny-oasis" / "model.pt"), *common],
    }
    seconds, printed = {}, {}
    for level, argv in commands.items():
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            code = main(argv)
        printed[level] = stdout.getvalue()
        print(printed[level])
        assert code == 0, level
        seconds[level] = time.perf_counter() - t0
    return {"bids": bids, "out": out, "work": work, "subjects": subjects, "commands": commands,
            "seconds": seconds, "config": config, "printed": printed}


def test_oasis_shaped_dataset_runs_every_level_with_valid_names(oasis):
    bids, out, (two_runs, acq_rec, plain) = oasis["bids"], oasis["out"], oasis["subjects"]
    assert run_validator(bids)["errors"] == []
    # every T1w pre-processed under its own name (run-, acq-, rec- kept)
    raw = sorted(bids.rglob("*_T1w.nii.gz"))
    assert len(raw) == 8
    for t1w in raw:
        stem = t1w.name.replace("_T1w.nii.gz", "")
        anat = out / t1w.relative_to(bids).parent
        for name in (f"{stem}_space-{TPL}_desc-preproc_T1w.nii.gz", f"{stem}_desc-brain_mask.nii.gz",
                     f"{stem}_space-{TPL}_desc-brain_mask.nii.gz",
                     f"{stem}_from-T1w_to-{TPL}_mode-image_xfm.txt"):
            assert (anat / name).is_file(), name
        assert (out / t1w.parts[-4] / "figures" / f"{stem}_space-{TPL}_desc-preproc_T1w.svg").is_file()
    # the group level trained on every T1w of the training subjects (both runs counted)
    model_dir = out / "models" / "tiny-oasis"
    split = pd.read_csv(model_dir / "split.tsv", sep="\t", dtype={"subject": str})
    assert split.loc[split["subject"] == two_runs, "sessions"].item() == 3
    assert split.loc[split["subject"] == acq_rec, "sessions"].item() == 3
    from daninet_pipeline.model.modelfile import load_model_file

    trained = load_model_file(model_dir / "model.pt")["training"]["n_volumes"]
    assert trained == split.loc[split["split"] == "train", "sessions"].sum()
    # one simulated image per subject (its follow-up's age), from the first run of its baseline
    sims = sorted(out.rglob("*_desc-sim*_T1w.nii.gz"))
    assert len(sims) == 3
    for sim in sims:
        assert "_desc-simtinyoasisAge" in sim.name and f"space-{TPL}" in sim.name
        side = json.loads(sim.with_name(sim.name.replace(".nii.gz", ".json")).read_text())
        assert side["Synthetic"] is True and side["Model"]["Name"] == "tiny-oasis"
        assert side["Model"]["Label"] == "tinyoasis"
        assert side["Sources"][0].startswith("bids:raw:") and "_run-01_T1w.nii.gz" in side["Sources"][0]
    assert any(f"sub-{two_runs}_ses-M000_run-01_space" in s.name for s in sims)
    assert any(f"sub-{acq_rec}_ses-M000_acq-mprage_rec-norm_run-01_space" in s.name for s in sims)
    assert any(f"sub-{plain}_ses-M000_run-01_space" in s.name for s in sims)
    result = run_validator(out)
    assert result["errors"] == [], result["errors"][:3]


def test_every_level_writes_its_report_and_lists_it_in_its_last_lines(oasis):
    """Issue 13, item 1: `daninet` alone writes the reports: participant, sub-X.html (QC
    figures of every session, the steps and their times); group, the model's report;
    simulation, sub-X.html again with the simulated images. Each is self-contained."""
    out, subjects, printed = oasis["out"], oasis["subjects"], oasis["printed"]
    tail = printed["participant"].strip().splitlines()[-(len(subjects) + 1):]
    assert tail[:-1] == [f"report: {out / f'sub-{s}.html'}" for s in subjects]
    assert printed["group"].strip().splitlines()[-1] == f"report: {out / 'models' / 'tiny-oasis' / 'report.html'}"
    sim_tail = printed["simulation"].strip().splitlines()[-(len(subjects) + 1):]
    assert sim_tail[:-1] == tail[:-1]
    for sub in subjects:
        text = (out / f"sub-{sub}.html").read_text()
        n_t1w = len(list((out / f"sub-{sub}" / "figures").glob("*.svg")))
        assert text.count("data:image/svg+xml;base64,") == n_t1w >= 2
        assert "Steps of the last participant-level run" in text and "<td>n4</td>" in text
        assert "Simulated images" in text and "Model tiny-oasis" in text
        assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # nothing outside the file
    group = (out / "models" / "tiny-oasis" / "report.html").read_text()
    assert "Training curves" in group and "Subject split" in group and "Configuration" in group
    assert not re.search(r"""(src|href)=["'](?!data:)""", group)


def test_reports_open_in_headless_chromium_without_console_errors(oasis, tmp_path):
    """Each report as headless Chromium draws it: no console error (a failing resource, a
    script error), every image decoded. Fails, not skips, without Chromium."""
    from .rating.helpers import start_chromium, stop_chromium

    out = oasis["out"]
    driver = start_chromium(tmp_path)
    try:
        probe = tmp_path / "probe.html"  # the console is read: an error is seen
        probe.write_text("<!DOCTYPE html><script>console.error('probe error')</script>")
        driver.get(probe.as_uri())
        assert any("probe error" in e["message"] for e in driver.get_log("browser"))
        reports = [out / f"sub-{s}.html" for s in oasis["subjects"]] + [out / "models" / "tiny-oasis" / "report.html"]
        for report in reports:
            driver.get(report.as_uri())
            errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
            assert errors == [], (report, errors)
            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            assert images and all(done and width > 0 for done, width in images), report
            assert driver.save_screenshot(str(tmp_path / f"{report.stem}.png"))
    finally:
        stop_chromium(driver)


def test_every_run_records_its_options_and_replay_runs_them_again(oasis):
    """Issue 13, item 2: logs/<run id>/config.toml (options, seeds, the model's configuration
    at the group level) and `daninet --replay-run` of it; logs/CITATION.md of the last run."""
    import tomllib

    out = oasis["out"]
    runs = {p.parent.name.split("_")[0]: tomllib.loads(p.read_text())
            for p in sorted((out / "logs").glob("*/config.toml"))}
    assert set(runs) == {"participant", "group", "simulation"}
    assert runs["group"]["seeds"]["seed"] == 1 and runs["group"]["model"]["image_size"] == 32
    assert runs["participant"]["options"]["nprocs"] == 2
    participant = next((out / "logs").glob("participant_*/config.toml"))
    before = _files(out)
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(["--replay-run", str(participant)]) == 0
    assert "participant level: 8/8 T1w images pre-processed" in stdout.getvalue()
    assert _files(out) == before
    assert len(list((out / "logs").glob("participant_*/config.toml"))) == 2
    citation = (out / "logs" / "CITATION.md").read_text()
    assert citation.startswith("# Methods (participant level)") and "N4 (SimpleITK" in citation


def test_deleting_the_outputs_and_rerunning_restores_every_file_from_the_cache(oasis):
    """Every file comes back and no computing node runs again (the rerun's share of the
    first run's time is printed: speed belongs in benchmarks, not in an assertion).
    (Before the tests that simulate other selections: a node keeps one cached result.)"""
    out, work = oasis["out"], oasis["work"]
    before = _files(out)
    results = _results(work)
    shutil.rmtree(out)
    seconds = {}
    for level, argv in oasis["commands"].items():
        t0 = time.perf_counter()
        assert main(argv) == 0, level
        seconds[level] = time.perf_counter() - t0
    assert _files(out) == before
    # no computing node ran again (pre-processing, training, evaluation, simulation): they
    # came from the work folder's cache; the sinks (and list merges after them) ran
    computing = [p for p in results if "/preproc_" in p or "/simulate/" in p or any(
        f"/group_wf/{n}/" in p for n in ("split", "slice_store", "train", "evaluate", "model_card"))]
    assert len(computing) >= 8 * 10 + 5 + 3
    after = _results(work)
    assert [p for p in computing if after[p] != results[p]] == []
    rerun = {p for p, mtime in after.items() if results.get(p) != mtime}
    assert any("/ds_t1w/" in p for p in rerun) and any("/export_model_file/" in p for p in rerun)
    ratio = sum(seconds.values()) / sum(oasis["seconds"].values())
    print(f"rerun {sum(seconds.values()):.1f} s / first run {sum(oasis['seconds'].values()):.1f} s "
          f"= {ratio:.2f}")


def test_a_filter_chooses_the_run_the_simulation_starts_from(oasis, tmp_path):
    bids, out, work = oasis["bids"], oasis["out"], oasis["work"]
    two_runs = oasis["subjects"][0]
    run2 = tmp_path / "run2.json"
    run2.write_text(json.dumps({"t1w": {"run": 2}}))
    model = out / "models" / "tiny-oasis" / "model.pt"
    assert main([str(bids), str(out), "participant", "--model", str(model), "--participant-label", two_runs,
                 "--bids-filter-file", str(run2), "--target-ages", "83", "--work-dir", str(work),
                 "--nprocs", "1"]) == 0
    sim = out / f"sub-{two_runs}" / "ses-M000" / "anat" / (
        f"sub-{two_runs}_ses-M000_run-02_space-{TPL}_desc-simtinyoasisAge83p0_T1w.json")
    assert json.loads(sim.read_text())["Sources"][0].endswith("_run-02_T1w.nii.gz")
    sim.unlink()
    sim.with_name(sim.name.replace(".json", ".nii.gz")).unlink()


def test_session_label_chooses_the_baseline_of_the_simulation(oasis):
    bids, out, work = oasis["bids"], oasis["out"], oasis["work"]
    plain = oasis["subjects"][2]
    followup = sorted(p.name[4:] for p in (bids / f"sub-{plain}").glob("ses-*"))[-1]
    model = out / "models" / "tiny-oasis" / "model.pt"
    assert main([str(bids), str(out), "participant", "--model", str(model), "--participant-label", plain,
                 "--session-label", followup, "--target-ages", "90", "--work-dir", str(work),
                 "--nprocs", "1"]) == 0
    sims = sorted((out / f"sub-{plain}" / f"ses-{followup}" / "anat").glob("*desc-simtinyoasisAge90p0*.json"))
    assert len(sims) == 1
    assert f"ses-{followup}" in json.loads(sims[0].read_text())["Sources"][0]
    for path in (sims[0], sims[0].with_name(sims[0].name.replace(".json", ".nii.gz"))):
        path.unlink()


def test_a_dataset_without_sessions_is_preprocessed_and_a_longitudinal_preset_says_so(demo_bids, tmp_path,
                                                                                       capsys):
    """No session level: each subject's single T1w in ``sub-X/anat``, its age in
    participants.tsv. Pre-processed; ``group --config P`` (regional constraint: needs
    longitudinal pairs) stops with one line naming a preset that does not."""
    bids = tmp_path / "bids"
    src = sorted(demo_bids.glob("sub-*/ses-M000/anat/*_T1w.nii.gz"))[0]
    sub = src.parts[-4]
    (bids / sub / "anat").mkdir(parents=True)
    shutil.copy(src, bids / sub / "anat" / f"{sub}_T1w.nii.gz")
    shutil.copy(demo_bids / "dataset_description.json", bids)
    (bids / "participants.tsv").write_text(f"participant_id\tage\tdiagnosis\n{sub}\t71.5\tCN\n")
    out, work = tmp_path / "out", tmp_path / "work"
    assert main([str(bids), str(out), "participant", "--work-dir", str(work), "--nprocs", "2"]) == 0
    anat = out / sub / "anat"
    assert (anat / f"{sub}_space-{TPL}_desc-preproc_T1w.nii.gz").is_file()
    assert (anat / f"{sub}_desc-brain_mask.nii.gz").is_file()
    assert run_validator(out)["errors"] == []
    capsys.readouterr()
    assert main([str(bids), str(out), "group", "--config", "P", "--work-dir", str(work),
                 "--skip-bids-validation"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "longitudinal pairs" in err[0] and "--config base" in err[0], err
