"""Before a long training the app says the device, the time and the memory; without a GPU
a GPU-sized preset asks for --allow-cpu or a smaller --config (issue 12, item 6)."""

from __future__ import annotations

import json

import pytest

from daninet_pipeline.cli.run import main

from .conftest import TINY_CONFIG, fake_derivatives


def test_a_gpu_sized_default_without_a_gpu_stops_before_it_starts(demo_bids, tmp_path, capsys, monkeypatch):
    import daninet_pipeline.cli.plan as plan

    monkeypatch.setattr(plan, "gpu_available", lambda: False)  # as on this 2-core machine
    out, work = tmp_path / "out", tmp_path / "work"
    fake_derivatives(demo_bids, out)
    code = main([str(demo_bids), str(out), "group", "--work-dir", str(work), "--skip-bids-validation"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "configuration full" in err[0] and "no GPU" in err[0]
    assert "--allow-cpu" in err[0] and "--config" in err[0]
    assert not (work / "group_wf").exists() and not (out / "models").exists()


def test_the_demo_preset_and_smaller_ones_start_without_a_plan():
    from daninet_pipeline.cli.plan import check_training_plan, demo_multiples
    from daninet_pipeline.model.config import TrainConfig

    assert demo_multiples(TrainConfig.from_file("demo")) == pytest.approx(1.0)
    assert demo_multiples(TrainConfig.from_file("full")) > 1000
    assert check_training_plan("demo") is None


def test_a_longer_training_is_timed_and_its_plan_said(tmp_path):
    from daninet_pipeline.cli.plan import check_training_plan, demo_multiples
    from daninet_pipeline.model.config import TrainConfig

    config = tmp_path / "longer.json"
    config.write_text(json.dumps({**TINY_CONFIG, "steps": 40000}))  # tiny nets, many steps
    assert 1.0 < demo_multiples(TrainConfig.from_file(str(config))) < 50
    line = check_training_plan(str(config))
    assert line.startswith("training plan: configuration longer.json (32 px, width 8, batch 8")
    assert "on CPU, " in line and "s a step (timed)" in line and "peak memory about" in line
    per_step = float(line.split(": ")[2].split(" s a step")[0])
    assert 0 < per_step < 10
