"""Group and per-subject HTML reports."""

from __future__ import annotations

import shutil

import pandas as pd

from daninet_pipeline.training.sessions import gather_sessions
from daninet_pipeline.reports.progression import write_group_report
from daninet_pipeline.reports.subject import simulated_images, write_steps, write_subject_report
from daninet_pipeline.workflows.group import model_dir_of


def test_group_report_shows_curves_regional_errors_and_evaluation(trained_group):
    _, out, config = trained_group
    report = write_group_report(model_dir_of(out, config))
    text = report.read_text()
    assert "Training curves" in text and "data:image/png;base64," in text
    assert "Regional model (rates)" in text and "Configuration" in text and "Subject split" in text
    assert ("identity" in text) == (model_dir_of(out, config) / "group_eval.tsv").is_file()
    assert "Quality control of every session" not in text and "Excluded sessions" not in text


def test_group_report_takes_a_qc_table_with_outliers_first_and_the_excluded_sessions(trained_group, tmp_path):
    _, out, config = trained_group
    qc = pd.DataFrame({"subject": ["01", "02"], "session": ["M000", "M006"], "brain_volume_ml": [1210.0, 480.0],
                       "outlier": [False, True]})
    excluded = pd.DataFrame({"subject": ["02"], "session": ["M006"], "reason": ["brain volume outlier"]})
    text = write_group_report(model_dir_of(out, config), tmp_path / "r.html", qc=qc, excluded=excluded).read_text()
    section = text.split("Quality control of every session", 1)[1]
    assert section.index("480") < section.index("1210")
    assert "Excluded sessions" in text and "brain volume outlier" in text


def test_subject_report_shows_qc_steps_errors_and_simulated_beside_real(trained_group, tmp_path):
    from daninet_pipeline.workflows.simulation import init_simulation_wf

    bids_dir, out, config = trained_group
    model = model_dir_of(out, config) / "model.pt"
    sub = sorted(p.name[4:] for p in bids_dir.glob("sub-*"))[0]
    mine = tmp_path / "out"
    shutil.copytree(out / f"sub-{sub}", mine / f"sub-{sub}")
    figures = mine / f"sub-{sub}" / "figures"
    figures.mkdir()
    (figures / f"sub-{sub}_ses-M000_space-X_desc-preproc_T1w.svg").write_text(
        "<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'><rect width='5' height='5'/></svg>")
    write_steps(mine, sub, [
        {"session": "ses-M000", "step": "n4", "status": "done", "seconds": 2.5, "detail": ""},
        {"session": "ses-M006", "step": "validate", "status": "failed", "seconds": 0.1,
         "detail": "ImageError: 4D image with 2 volumes (crash file: x.txt)"}])
    table, _ = gather_sessions(bids_dir, mine)
    table = table[table["subject"] == sub]
    table.to_csv(tmp_path / "sessions.tsv", sep="\t", index=False, na_rep="n/a")
    wf = init_simulation_wf(subject=sub, model_file=model, bids_dir=bids_dir, output_dir=mine)
    wf.inputs.inputnode.sessions_tsv = str(tmp_path / "sessions.tsv")
    wf.base_dir = str(tmp_path / "work")
    wf.run(plugin="Linear")
    sims = simulated_images(mine, sub)
    assert len(sims) == len(table) - 1 and (sims["model"] == "tiny").all()

    text = write_subject_report(mine, sub, sessions=table).read_text()
    assert "data:image/svg+xml;base64," in text  # the QC figure, embedded
    assert "4D image with 2 volumes" in text and "Steps of the last participant-level run" in text
    assert "synthetic" in text and "Simulated images" in text
    assert text.count("data:image/png;base64,") == (2 if len(sims) > 1 else 1)
