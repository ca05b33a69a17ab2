"""Group and per-subject HTML reports."""

from __future__ import annotations

from daninet_pipeline.group import gather_sessions
from daninet_pipeline.reports.progression import write_group_report, write_subject_report
from daninet_pipeline.simulation import simulate_subject
from daninet_pipeline.workflows.group import model_dir_of


def test_group_report_shows_curves_regional_errors_and_evaluation(trained_group):
    _, out, config = trained_group
    report = write_group_report(model_dir_of(out, config))
    text = report.read_text()
    assert "Training curves" in text and "data:image/png;base64," in text
    assert "Regional model (rates)" in text and "Configuration" in text
    assert ("identity" in text) == (model_dir_of(out, config) / "group_eval.tsv").is_file()


def test_subject_report_puts_simulated_beside_real(trained_group, tmp_path):
    bids_dir, out, config = trained_group
    model = model_dir_of(out, config) / "model.pt"
    table, _ = gather_sessions(bids_dir, out)
    rows = table[table["subject"] == table["subject"].iloc[0]].sort_values("age")
    ages = list(rows["age"].iloc[1:])
    results = simulate_subject(model, rows, ages)
    files = []
    for i, res in enumerate(results):
        files.append(tmp_path / f"sim{i}.nii.gz")
        res["image"].to_filename(files[-1])
    report = write_subject_report(rows["subject"].iloc[0], rows["preproc"].iloc[0], rows["age"].iloc[0],
                                  dict(zip(ages, map(str, files))), tmp_path / "report.html",
                                  followups=dict(zip(ages, rows["preproc"].iloc[1:])),
                                  trajectory={a: r["image"].get_fdata() for a, r in zip(ages, results)})
    text = report.read_text()
    assert "synthetic" in text and text.count("data:image/png;base64,") == 2


def test_regional_trajectories_chain_the_real_change_and_place_each_prediction():
    import pandas as pd
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
