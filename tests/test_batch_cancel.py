"""Which jobs a stopped run cancels (issue 12, item 8), with stand-in scheduler commands
on PATH: the ids the plugin read back, and the queued jobs whose script lies in the run's
batch folders; never another run's job. (The real SLURM cluster runs the whole stop in
tests/deployment/test_slurm_recipes.py::test_stopped_app_cancels_the_jobs_it_submitted.)"""

from __future__ import annotations

import os

import pytest

from daninet_pipeline.cli import batch

from .conftest import write_tool


@pytest.fixture
def scheduler(tmp_path, monkeypatch):
    """A folder of stand-in scheduler commands first on PATH; ``calls`` records the
    cancelling command's arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LOGNAME", "alice")
    return bin_dir, tmp_path / "calls"


def _plugin(cls, tmp_path, submitted=()):
    plugin = cls(plugin_args={})
    plugin.batch_dirs = {str(tmp_path / "work" / "wf" / "batch")}
    plugin.submitted = set(submitted)
    return plugin


def test_slurm_cancels_read_back_ids_and_queued_jobs_of_its_batch_folder_only(scheduler, tmp_path):
    bin_dir, calls = scheduler
    mine, other = tmp_path / "work" / "wf" / "batch", tmp_path / "work2" / "wf" / "batch"
    write_tool(bin_dir, "squeue", f'[ "$3" = alice ] || exit 1\necho "17|{mine}/batchscript_a.sh"\n'
                                  f'echo "18|{other}/batchscript_a.sh"\necho "19|{mine}/batchscript_b.sh"\n')
    write_tool(bin_dir, "scancel", f'echo "$@" >> {calls}\n')
    plugin = _plugin(batch.SLURMGraphPlugin, tmp_path, submitted={"12"})
    assert plugin.cancel() == ["12", "17", "19"]
    assert calls.read_text().split() == ["12", "17", "19"]


def test_sge_cancels_queued_jobs_whose_script_is_in_its_batch_folder(scheduler, tmp_path):
    bin_dir, calls = scheduler
    mine, other = tmp_path / "work" / "wf" / "batch", tmp_path / "elsewhere"
    write_tool(bin_dir, "qstat", f"""if [ "$1" = -j ]; then
  case "$2" in
    301) echo "job_number: 301"; echo "script_file:    {mine}/batchscript_x.sh" ;;
    302) echo "job_number: 302"; echo "script_file:    {other}/run.sh" ;;
  esac
  exit 0
fi
echo "job-ID  prior   name       user         state submit/start at"
echo "-----------------------------------------------------------------"
echo "    301 0.55500 j0_x       alice        qw    11/30/2026 10:00:00"
echo "    302 0.55500 j0_y       alice        qw    11/30/2026 10:00:01"
""")
    write_tool(bin_dir, "qdel", f'echo "$@" >> {calls}\n')
    plugin = _plugin(batch.SGEGraphPlugin, tmp_path)
    assert plugin.cancel() == ["301"]
    assert calls.read_text().split() == ["301"]


def test_nothing_to_cancel_runs_no_command(scheduler, tmp_path):
    bin_dir, calls = scheduler
    write_tool(bin_dir, "squeue", "exit 0\n")
    write_tool(bin_dir, "scancel", f'echo "$@" >> {calls}\n')
    assert _plugin(batch.SLURMPlugin, tmp_path).cancel() == []
    assert not calls.exists()


def test_a_missing_scheduler_command_is_not_an_error(scheduler, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(scheduler[0]))  # no squeue, no scancel
    assert _plugin(batch.SLURMPlugin, tmp_path, submitted={"5"}).cancel() == ["5"]


def test_every_batch_plugin_of_the_cli_cancels_its_jobs():
    from daninet_pipeline.cli.parser import NIPYPE_PLUGINS
    from daninet_pipeline.cli.signals import plugin_for

    for name in NIPYPE_PLUGINS:
        if name in ("MultiProc", "Linear"):
            continue
        if name == "SGE":  # Nipype's SGE plugin runs qstat when it is made
            assert batch.BATCH_PLUGINS[name].cancel_command == "qdel"
            continue
        plugin = plugin_for(name, {})
        assert isinstance(plugin, batch._CancelsItsJobs), name
        assert type(plugin).__name__ == f"{name}Plugin"  # Workflow.run names it by its class
