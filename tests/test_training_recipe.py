"""The SLURM training recipe's choice of processes and batch readers
(workflows/slurm/train_group.sbatch), run by bash with a stand-in ``torchrun`` on PATH, on
nodes with and without GPUs. (The real cluster runs the whole recipe in
tests/deployment/test_slurm_recipes.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import write_tool

RECIPE = Path(__file__).resolve().parents[1] / "workflows" / "slurm" / "train_group.sbatch"


def _run_recipe(tmp_path: Path, gpus: int | None, **env_extra) -> subprocess.CompletedProcess:
    """Run the recipe outside SLURM; ``gpus`` None: no nvidia-smi on PATH at all."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # the stand-in training records its arguments and writes the model file
    write_tool(bin_dir, "torchrun", f'echo "torchrun $*" > {tmp_path}/args; touch "$OUT/model.pt"\n')
    if gpus is not None:
        lines = "".join(f"echo 'GPU {i}: NVIDIA H100 (UUID: GPU-{i})'\n" for i in range(gpus))
        write_tool(bin_dir, "nvidia-smi", lines if gpus else "echo 'No devices were found'; exit 6\n")
    # bash and coreutils only, so that a real nvidia-smi of this machine is not found
    for tool in ("bash", "mkdir", "wc", "date", "hostname", "nproc", "cat", "env", "touch", "grep"):
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            os.symlink(found, bin_dir / tool)
    env = {"PATH": str(bin_dir), "STORE": str(tmp_path / "store"), "OUT": str(tmp_path / "out"),
           "SLURM_CPUS_PER_TASK": "8", **env_extra}
    return subprocess.run([str(bin_dir / "bash"), str(RECIPE)], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("gpus", [None, 0])
def test_a_node_without_gpus_runs_one_process_without_batch_readers(tmp_path, gpus):
    proc = _run_recipe(tmp_path, gpus)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # no shell error on the way (e.g. "integer expression expected")
    args = (tmp_path / "args").read_text()
    assert "--nproc_per_node=1 " in args and "--workers 0" in args, args
    assert "0 GPU(s), OMP_NUM_THREADS=8" in proc.stdout, proc.stdout


def test_a_node_with_gpus_runs_one_process_per_gpu(tmp_path):
    proc = _run_recipe(tmp_path, 4)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    args = (tmp_path / "args").read_text()
    assert "--nproc_per_node=4 " in args and "--workers 4" in args, args
    assert "4 GPU(s), OMP_NUM_THREADS=2" in proc.stdout, proc.stdout


def test_slurm_gpu_count_wins_over_nvidia_smi(tmp_path):
    proc = _run_recipe(tmp_path, 4, SLURM_GPUS_ON_NODE="2")
    assert proc.returncode == 0, proc.stderr
    assert "--nproc_per_node=2 " in (tmp_path / "args").read_text()
