"""The group level through the CLI: missing derivatives, --resume and --evaluate."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from daninet_pipeline.cli.run import main

from .conftest import TINY_CONFIG, fake_derivatives


def _group(bids, out, work, *extra):
    """The group level through the CLI, its nodes in this process (``--plugin Linear``, where
    :func:`~tests.group.conftest.quick_tbm` applies; MultiProc's group level: tests/test_user_datasets.py)."""
    return main([str(bids), str(out), "group", "--work-dir", str(work), "--seed", "1", "--nprocs", "1",
                 "--plugin", "Linear", "--skip-bids-validation", *extra])


def _config(path, **changes):
    path.write_text(json.dumps({**TINY_CONFIG, **changes}))
    return str(path)


@pytest.fixture(scope="module")
def cli_group(demo_bids, tmp_path_factory):
    """Two tiny models trained through the CLI on the same derivatives and split."""
    tmp = tmp_path_factory.mktemp("cli_group")
    out = tmp / "out"
    fake_derivatives(demo_bids, out)
    first = _config(tmp / "tiny.json")
    assert _group(demo_bids, out, tmp / "work", "--config", first) == 0
    second = _config(tmp / "tinyres.json", residual=True, steps=4)
    assert _group(demo_bids, out, tmp / "work", "--config", second) == 0
    return demo_bids, out, tmp


@pytest.mark.parametrize("option", ["--session-label", "--bids-filter-file"])
def test_the_selection_restricts_the_sessions_trained_and_evaluated_on(demo_bids, tmp_path, option):
    """Issue 12, item 2: the CLI's selection reaches the group level."""
    from daninet_pipeline.model.modelfile import load_model_file

    out = tmp_path / "out"
    fake_derivatives(demo_bids, out)
    # the first session and every subject's last one: each subject keeps a follow-up (so
    # whichever subject the split tests has one to evaluate) and some sessions are left out
    sessions = {sub.name: sorted(p.name[4:] for p in sub.glob("ses-*")) for sub in demo_bids.glob("sub-*")}
    labels = sorted({"M000"} | {s[-1] for s in sessions.values()})
    assert all(len(set(s) & set(labels)) >= 2 for s in sessions.values())
    if option == "--session-label":
        selection = ["--session-label", *labels]
    else:
        (tmp_path / "filter.json").write_text(json.dumps({"t1w": {"session": labels}}))
        selection = ["--bids-filter-file", str(tmp_path / "filter.json")]
    kept = {f"ses-{label}" for label in labels}
    n_kept = sum(1 for p in demo_bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz") if p.parts[-3] in kept)
    assert 0 < n_kept < len(list(demo_bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz")))
    assert _group(demo_bids, out, tmp_path / "work", "--config", _config(tmp_path / "tiny.json"),
                  *selection) == 0
    model_dir = out / "models" / "tiny"
    split = pd.read_csv(model_dir / "split.tsv", sep="\t", dtype={"subject": str})
    assert split["sessions"].sum() == n_kept
    trained = load_model_file(model_dir / "model.pt")["training"]["n_volumes"]
    assert trained == split.loc[split["split"] == "train", "sessions"].sum()
    ev = pd.read_csv(model_dir / "group_eval.tsv", sep="\t", dtype={"subject": str})
    assert set(ev["followup_session"].astype(str)) <= set(labels) - {"M000"}


def test_missing_derivatives_are_made_by_the_participant_level_first(demo_bids, tmp_path, monkeypatch):
    import daninet_pipeline.levels as levels

    out = tmp_path / "out"
    first = sorted(p.name for p in demo_bids.glob("sub-*"))[0][4:]
    fake_derivatives(demo_bids, out, skip_subject=first)
    asked = []

    run_level = levels.run_level

    def fake_run_level(level, opts, table, run_dir=None, **kwargs):
        if level != "participant":
            return run_level(level, opts, table, run_dir, **kwargs)
        asked.append(sorted(table["subject"].unique()))  # stands in for the pre-processing
        fake_derivatives(demo_bids, out)
        return 0

    monkeypatch.setattr(levels, "run_level", fake_run_level)
    code = _group(demo_bids, out, tmp_path / "work", "--config", _config(tmp_path / "tiny.json"))
    assert code == 0 and asked == [[first]]
    assert (out / "models" / "tiny" / "model.pt").is_file()


def test_failed_participant_level_stops_the_group_level_in_one_line(demo_bids, tmp_path, monkeypatch, capsys):
    import daninet_pipeline.levels as levels

    out = tmp_path / "out"
    first = sorted(p.name for p in demo_bids.glob("sub-*"))[0][4:]
    fake_derivatives(demo_bids, out, skip_subject=first)
    run_level = levels.run_level
    monkeypatch.setattr(levels, "run_level", lambda level, opts, table, run_dir=None, **kw:
                        1 if level == "participant" else run_level(level, opts, table, run_dir, **kw))
    code = _group(demo_bids, out, tmp_path / "work", "--config", _config(tmp_path / "tiny.json"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "participant level failed" in err[0]
    assert not (out / "models" / "tiny" / "model.pt").exists()


def test_resume_continues_the_training_from_its_checkpoint(cli_group):
    bids, out, tmp = cli_group
    model_dir = out / "models" / "tiny"
    before = pd.read_csv(model_dir / "losses.tsv", sep="\t")
    assert before["step"].max() == 5
    longer = _config(tmp / "tiny.json", steps=9)  # same configuration, more steps
    assert _group(bids, out, tmp / "work", "--config", longer, "--resume") == 0
    after = pd.read_csv(model_dir / "losses.tsv", sep="\t")
    assert list(after["step"]) == list(range(9))
    pd.testing.assert_frame_equal(after.iloc[:6].drop(columns=["seconds"], errors="ignore"),
                                  before.drop(columns=["seconds"], errors="ignore"))
    assert "training steps: 9" in (model_dir / "model_card.md").read_text()


def test_evaluate_scores_every_trained_model_beside_identity(cli_group, capsys):
    bids, out, tmp = cli_group
    assert _group(bids, out, tmp / "work", "--evaluate") == 0
    ev = pd.read_csv(out / "models" / "group_eval.tsv", sep="\t", dtype={"subject": str})
    fixed = {"oracle", "identity", "population-mean", "tiny", "tiny-change", "tinyres", "tinyres-change"}
    assert fixed <= set(ev["method"]) <= fixed | {"linear"}
    split = pd.read_csv(out / "models" / "tiny" / "split.tsv", sep="\t", dtype={"subject": str})
    assert set(ev["subject"]) == set(split.loc[split["split"] == "test", "subject"])
    per_method = ev[ev["method"] != "linear"].groupby("method").size()
    assert per_method.nunique() == 1  # the same follow-ups for every method (linear: where 2+ scans)
    md = (out / "models" / "group_eval.md").read_text()
    assert "| tinyres |" in md and "tinyres-change vs population-mean" in md and "95% interval" in md
    assert md in capsys.readouterr().out


def test_evaluate_without_a_trained_model_is_one_line(demo_bids, tmp_path, capsys):
    out = tmp_path / "out"
    fake_derivatives(demo_bids, out)
    code = _group(demo_bids, out, tmp_path / "work", "--evaluate")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "no trained model" in err[0]


def _single_session_test_subject(demo_bids, root, seed=1):
    """A copy of the demo dataset whose test subject (the split of ``seed``) keeps only
    its first session; the other subjects keep their follow-ups (for training)."""
    import shutil

    from daninet_pipeline.evaluation.split import split_subjects
    from daninet_pipeline.training.sessions import gather_sessions

    shutil.copytree(demo_bids, root)
    table, _ = gather_sessions(root, root / "no-derivatives")
    split = split_subjects(table, seed=seed)
    test = list(split.loc[split["split"] == "test", "subject"])
    assert test
    for sub in test:
        tsv = root / f"sub-{sub}" / f"sub-{sub}_sessions.tsv"
        sessions = pd.read_csv(tsv, sep="\t", dtype=str)
        for ses in sessions["session_id"].iloc[1:]:
            shutil.rmtree(root / f"sub-{sub}" / ses)
            shutil.rmtree(root / "derivatives" / "ground_truth" / f"sub-{sub}" / ses, ignore_errors=True)
        sessions.iloc[:1].to_csv(tsv, sep="\t", index=False)
    return root, test


def test_no_test_follow_up_finishes_and_says_there_was_nothing_to_evaluate(demo_bids, tmp_path, capsys):
    """A test split whose subjects have a single session: the group level still writes
    the model, its card and its report, and says in one line that nothing was evaluated."""
    bids, test = _single_session_test_subject(demo_bids, tmp_path / "bids")
    out = tmp_path / "out"
    fake_derivatives(bids, out)
    code = _group(bids, out, tmp_path / "work", "--config", _config(tmp_path / "tiny.json"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    model_dir = out / "models" / "tiny"
    for name in ("model.pt", "model_card.md", "report.html", "group_eval.tsv", "group_eval.md"):
        assert (model_dir / name).is_file(), name
    said = [line for line in captured.out.splitlines() if "nothing to evaluate" in line.lower()]
    assert len(said) == 1 and f"sub-{test[0]}" in said[0], captured.out
    assert "nothing to evaluate" in (model_dir / "group_eval.md").read_text().lower()
    assert "nothing to evaluate" in (model_dir / "model_card.md").read_text().lower()
    assert "nothing to evaluate" in (model_dir / "report.html").read_text().lower()
    assert pd.read_csv(model_dir / "group_eval.tsv", sep="\t").empty
