"""Data-parallel training with torch.distributed: 2 CPU processes (gloo) under torchrun
train exactly as one process with the same global batch."""

import csv
import os
import subprocess
import sys

import pytest
import torch

from daninet_pipeline.model.config import WeightSchedule
from daninet_pipeline.model.daninet import LOG_LOSSES
from daninet_pipeline.model.modelfile import load_model_file
from daninet_pipeline.model.train import train


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_two_gloo_processes_equal_one_process(tiny_cfg, tiny_store, tmp_path):
    cfg = tiny_cfg.replace(steps=4, batch_size=3, weight_reg=WeightSchedule(0.0),
                           weight_vox=WeightSchedule(1.0), checkpoint_every=2)
    cfg.save(tmp_path / "cfg.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "daninet_pipeline.model.train", "--config", str(tmp_path / "cfg.json"),
           "--store", str(tiny_store.root), "--out", str(tmp_path / "ddp"), "--no-progress"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("model.pt")
    state = load_model_file(tmp_path / "ddp" / "model.pt")
    assert state["training"]["processes"] == 2

    # one process with the same global batch (2 x 3 slices)
    train(cfg.replace(batch_size=6), tiny_store, tmp_path / "one", progress=False)
    ddp, one = _log(tmp_path / "ddp" / "losses.tsv"), _log(tmp_path / "one" / "losses.tsv")
    assert len(ddp) == len(one) == 4
    for a, b in zip(ddp, one):
        for k in LOG_LOSSES:
            if k == "loss_reg":
                continue
            assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-4, abs=1e-6), (a["step"], k)
    # Adam moves a weight by about lr * sign(g) when g is ~0, so the summation order of
    # the all-reduce can move such a weight by up to lr per step: allow 2 * steps * lr
    w_one = load_model_file(tmp_path / "one" / "model.pt")["nets"]
    tol = 2 * cfg.steps * cfg.lr
    n_close = n_total = 0
    for net in ("E", "G", "Dz", "Db"):
        for k, v in state["nets"][net].items():
            torch.testing.assert_close(v, w_one[net][k], rtol=0, atol=tol)
            n_close += int(torch.isclose(v, w_one[net][k], rtol=1e-4, atol=1e-6).sum())
            n_total += v.numel()
    assert n_close > 0.99 * n_total  # and nearly every weight agrees to float precision
