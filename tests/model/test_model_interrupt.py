"""A training run stopped by a signal (a job's time limit, ``docker stop``) writes a
checkpoint at the step it reached and resumes to the same losses; batches read ahead
by worker processes are the batches of a plain run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from daninet_pipeline.model.config import WeightSchedule
from daninet_pipeline.model.daninet import LOG_LOSSES
from daninet_pipeline.model.data import SliceSource, step_loader
from daninet_pipeline.model.train import EXIT_INTERRUPTED, train


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_worker_processes_read_the_batches_of_a_plain_run(tiny_cfg, tiny_store):
    src = SliceSource.from_store(tiny_store, tiny_cfg)
    for rank, world in ((0, 1), (1, 2)):
        plain = list(step_loader(src, range(3, 9), 4, 7, 8, rank=rank, world=world, workers=0))
        ahead = list(step_loader(src, range(3, 9), 4, 7, 8, rank=rank, world=world, workers=2))
        assert len(plain) == len(ahead) == 6
        for (b0, z0), (b1, z1) in zip(plain, ahead):
            assert set(b0) == set(b1) and torch.equal(z0, z1)
            for k in b0:
                assert torch.equal(b0[k], b1[k]), k
    # and a process's share is its slice of the global batch
    (full, zf), = list(step_loader(src, [5], 8, 7, 8))
    (half, zh), = list(step_loader(src, [5], 4, 7, 8, rank=1, world=2))
    assert torch.equal(half["x"], full["x"][4:]) and torch.equal(zh, zf[4:])


def test_sigterm_checkpoints_and_the_resumed_run_ends_with_the_same_losses(tiny_cfg, tiny_store, tmp_path):
    cfg = tiny_cfg.replace(steps=200, checkpoint_every=10_000, weight_reg=WeightSchedule(0.0))
    cfg.save(tmp_path / "cfg.json")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "daninet_pipeline.model.train", "--config", str(tmp_path / "cfg.json"),
           "--store", str(tiny_store.root), "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "losses.tsv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.is_file() or len(log.read_text().splitlines()) < 30):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
    assert "checkpoint at step" in err
    stopped = len(_log(log))
    assert 29 <= stopped < cfg.steps and not (out / "model.pt").exists()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["model"]["step"] == stopped

    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    torch.set_num_threads(1)
    train(cfg, tiny_store, tmp_path / "plain", progress=False)
    a, b = _log(tmp_path / "plain" / "losses.tsv"), _log(log)
    assert [r["step"] for r in b] == [str(s) for s in range(cfg.steps)]
    for ra, rb in zip(a, b):
        for k in LOG_LOSSES:
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-5, abs=1e-7, nan_ok=True), (ra["step"], k)
