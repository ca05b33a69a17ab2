"""``make demo`` (``python -m daninet_pipeline.demo``) on a one-subject small dataset."""

from __future__ import annotations

from daninet_pipeline.demo import run_demo


def test_demo_generates_validates_and_reports_paths(tmp_path, capsys):
    assert run_demo(tmp_path / "demo", subjects=1, seed=2, shape="small", nprocs=1) == 0
    out = capsys.readouterr().out
    assert "BIDS validator on the raw dataset: 0 errors" in out
    assert "BIDS validator on the ground truth: 0 errors" in out
    assert f"[demo] dataset: {tmp_path / 'demo' / 'bids'}" in out
    assert (tmp_path / "demo" / "preview.png").stat().st_size > 10_000
    # a second run reuses the dataset instead of generating it again
    assert run_demo(tmp_path / "demo", subjects=1, seed=2, shape="small", nprocs=1) == 0
    assert "reusing the demo dataset" in capsys.readouterr().out
