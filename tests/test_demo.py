"""``make demo`` (``python -m daninet_pipeline.demo``): the whole chain on tiny data."""

from __future__ import annotations

import json

from daninet_pipeline.demo import run_demo


def test_demo_data_stage_generates_validates_and_reuses(tmp_path, capsys):
    assert run_demo(tmp_path / "demo", subjects=1, seed=2, shape="small", nprocs=1, stages="data") == 0
    out = capsys.readouterr().out
    assert "BIDS validator on the raw dataset: 0 errors" in out
    assert "BIDS validator on the ground truth: 0 errors" in out
    assert (tmp_path / "demo" / "preview.png").stat().st_size > 10_000
    assert run_demo(tmp_path / "demo", subjects=1, seed=2, shape="small", nprocs=1, stages="data") == 0
    assert "reusing the demo dataset" in capsys.readouterr().out


def test_demo_chain_runs_participant_group_simulation_and_reports(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"extends": "demo", "image_size": 32, "width": 8, "z_dim": 16,
                                  "batch_size": 8, "steps": 4, "checkpoint_every": 2,
                                  "age_min": 50.0, "age_max": 96.0, "n_bins": 23}))
    # seed 0: 2 subjects of 2 and 3 sessions (seed 3's 3 and 4 sessions cost the suite about
    # 2 minutes more, the test subject's follow-ups each scored by 4-5 registrations)
    assert run_demo(tmp_path / "demo", subjects=2, seed=0, shape="small", config=str(config), nprocs=2) == 0
    out = capsys.readouterr().out
    assert "BIDS validator on the derivatives: 0 errors" in out
    assert "| identity |" in out and "| daninet |" in out
    assert "[demo] group report:" in out and "[demo] subject report:" in out
    sims = list((tmp_path / "demo" / "out").rglob("*_desc-simtinyAge*_T1w.nii.gz"))
    assert sims, "no simulated derivative written"
