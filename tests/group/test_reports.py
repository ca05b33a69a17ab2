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


def test_regional_trajectories_chain_the_real_change_and_place_each_prediction():
    import pytest

    from daninet_pipeline.reports.progression import regional_trajectories, regional_trajectory_figure

    rows = pd.DataFrame([
        {"subject": "01", "measurement": "tbm", "start_session": "M000", "followup_session": "M012",
         "start_age": 70.0, "years_ahead": 1.0, "method": m, "change_Hip": c, "true_Hip": -0.02}
        for m, c in (("oracle", -0.018), ("identity", 0.0), ("population-mean", -0.01))] + [
        {"subject": "01", "measurement": "tbm", "start_session": "M012", "followup_session": "M036",
         "start_age": 71.0, "years_ahead": 2.0, "method": m, "change_Hip": c, "true_Hip": -0.05}
        for m, c in (("oracle", -0.05), ("identity", 0.0), ("population-mean", -0.03))])
    traj = regional_trajectories(rows, "01")
    real = traj[traj["method"] == "real"].set_index("age")["volume"]
    assert real.to_dict() == pytest.approx({70.0: 1.0, 71.0: 0.98, 73.0: 0.98 * 0.95})
    pm = traj[traj["method"] == "population-mean"].set_index("age")["volume"]
    assert pm.to_dict() == pytest.approx({71.0: 0.99, 73.0: 0.98 * 0.97})
    assert "oracle" not in set(traj["method"])
    fig = regional_trajectory_figure(traj)
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "Hip"


def test_subject_report_draws_the_evaluations_regional_trajectories(tmp_path, monkeypatch):
    from daninet_pipeline.reports import progression

    drawn = []
    figure = progression.regional_trajectory_figure
    monkeypatch.setattr(progression, "regional_trajectory_figure",
                        lambda traj, methods, **kw: drawn.append(methods) or figure(traj, methods, **kw))
    rows = pd.DataFrame([
        {"subject": "01", "measurement": "tbm", "start_session": "M000", "followup_session": "M012",
         "start_age": 70.0, "years_ahead": 1.0, "method": m, "change_Hip": c, "true_Hip": -0.02}
        for m, c in (("oracle", -0.018), ("identity", 0.0), ("population-mean", -0.01),
                     ("daninet", -0.015), ("daninet-change", -0.012))])
    model_dir = tmp_path / "models" / "demo"
    model_dir.mkdir(parents=True)
    rows.to_csv(model_dir / "group_eval.tsv", sep="\t", index=False)
    text = write_subject_report(tmp_path, "01").read_text()
    assert "Regional volumes against age (model demo)" in text and text.count("data:image/png;base64,") == 1
    assert drawn == [("identity", "population-mean", "daninet-change")]
    other = write_subject_report(tmp_path, "02").read_text()
    assert "Regional volumes against age" not in other and "data:image/png;base64," not in other
