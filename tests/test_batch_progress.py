"""Progress and step records with Nipype's job-by-job batch plugins (issue 13): the
SLURM plugin reports each node's submission and end to the status callback, as MultiProc
does, so the progress line and the steps table of the report fill in. Stand-in ``sbatch``
(runs the job script at once) and ``squeue`` (an empty queue) on PATH: no cluster needed.
(The real one-node cluster runs the app with ``--plugin SLURM`` in
tests/deployment/test_slurm_recipes.py.)"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

from nipype.interfaces.utility import Function
from nipype.pipeline import engine as pe

from daninet_pipeline.cli.execution import run_workflow

from .conftest import write_tool


def _double(x):
    return 2 * x


def _workflow(base_dir):
    wf = pe.Workflow("batch_wf", base_dir=str(base_dir))
    first = pe.Node(Function(["x"], ["out"], _double), name="first")
    first.inputs.x = 1
    second = pe.Node(Function(["x"], ["out"], _double), name="second")
    wf.connect(first, "out", second, "x")
    wf.daninet_groups = {"batch_wf": "sub-01 ses-A"}
    return wf


def test_slurm_plugin_reports_every_step_to_the_progress(tmp_path, monkeypatch, caplog):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # sbatch's last argument is the job script: run it, then answer as sbatch does
    write_tool(bin_dir, "sbatch", 'for last; do :; done\nsh "$last" > /dev/null 2>&1\necho "Submitted batch job 7"\n')
    write_tool(bin_dir, "squeue", "exit 0\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LOGNAME", "alice")
    opts = SimpleNamespace(output_dir=tmp_path / "out", plugin="SLURM", verbose=0, stop_on_first_crash=False,
                           plugin_args={"sbatch_args": "--time=00:05:00"}, nprocs=None, mem_gb=None)
    with caplog.at_level(logging.INFO, logger="daninet"):
        progress, crashed = run_workflow(_workflow(tmp_path / "work"), opts, what="participant level",
                                         run_dir=tmp_path / "logs")
    assert not crashed
    records = progress.by_group().get("sub-01 ses-A", [])
    print(f"steps recorded: {[(r.name, r.status) for r in records]}; {progress.finished}/{progress.total} finished")
    assert [(r.name, r.status) for r in records] == [("first", "done"), ("second", "done")]
    assert progress.finished == progress.total == 2
    assert any("participant level: 2/2 steps (100%)" in r.getMessage() for r in caplog.records), caplog.text


def test_which_plugins_report_each_step():
    from daninet_pipeline.cli.execution import reports_each_step

    assert [p for p in ("Linear", "MultiProc", "SLURM", "SGE", "PBS", "LSF", "SLURMGraph", "SGEGraph")
            if reports_each_step(p)] == ["Linear", "MultiProc", "SLURM", "SGE", "PBS", "LSF"]
