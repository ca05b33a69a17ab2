"""A stopped run leaves no process behind (issue 12, item 8): the participant level on 2
processes, signalled once its MultiProc workers run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from daninet_pipeline.cli.signals import _descendants


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(demo_bids, tmp_path):
    subject = sorted(p.name for p in demo_bids.glob("sub-*"))[0]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "daninet_pipeline.cli.run", str(demo_bids), str(tmp_path / "out"), "participant",
         "--participant-label", subject, "--skip-bids-validation", "--nprocs", "2", "--omp-nthreads", "1",
         "-w", str(tmp_path / "work")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    workers = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _descendants(proc.pid)
        if len(workers) >= 2:  # both MultiProc workers are up (and working)
            break
        time.sleep(0.2)
    assert len(workers) >= 2, "the workers never started"
    time.sleep(3)
    return proc, _descendants(proc.pid)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_stop_the_workers_and_exit_in_one_line(demo_bids, tmp_path, signum, code):
    proc, workers = _start(demo_bids, tmp_path)
    proc.send_signal(signum)
    t0 = time.monotonic()
    try:
        _, err = proc.communicate(timeout=30)
    finally:  # a hung app must not outlive its test
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - t0 < 10
    assert proc.returncode == code, err[-2000:]
    assert err.strip().splitlines()[-1].startswith(f"daninet: stopped by {signal.Signals(signum).name}")
    assert "Traceback" not in err
    # multiprocessing's resource tracker (spawned workers) ends by itself once its parent
    # has gone: give it the moment it needs
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in workers if _alive(p)] == []


def test_sigkill_of_the_parent_takes_the_workers_with_it(demo_bids, tmp_path):
    proc, workers = _start(demo_bids, tmp_path)
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in workers if _alive(p)] == []


def _frozen() -> int:
    import gc

    return gc.get_freeze_count()


def test_multiproc_scheduler_collections_skip_the_objects_that_existed_before_the_run(tmp_path):
    """Nipype's MultiProc runs gc.collect() before handing out nodes and after each node it
    runs itself; the objects alive when the run starts (nipype, pybids, niworkflows...) are
    frozen so those collections do not walk them again and again; unfrozen at the end."""
    import gc

    import nipype.pipeline.engine as pe
    from nipype.interfaces.utility import Function

    from daninet_pipeline.cli.signals import MultiProcPlugin

    wf = pe.Workflow(name="gc_wf", base_dir=str(tmp_path))
    wf.add_nodes([pe.Node(Function(function=_frozen, input_names=[], output_names=["n"]),
                          name="frozen", run_without_submitting=True)])
    graph = wf.run(plugin=MultiProcPlugin(plugin_args={"n_procs": 1}))
    node = next(iter(graph.nodes()))
    assert node.result.outputs.n > 10_000
    assert gc.get_freeze_count() == 0


def _sleep_long():
    time.sleep(60)


def test_stopped_workers_are_left_for_their_pool_to_reap():
    """stop_children ends the workers but does not reap them: multiprocessing reaps its own
    children, and one reaped behind its back looks alive to it for ever (the pool's
    manager thread then spun and the app hung at exit, seen under load)."""
    import multiprocessing as mp

    from daninet_pipeline.cli.signals import stop_children

    proc = mp.get_context("spawn").Process(target=_sleep_long)
    proc.start()
    assert stop_children() >= 1
    proc.join(timeout=10)
    assert not proc.is_alive()
    assert proc.exitcode == -signal.SIGTERM


def _say_hello() -> str:
    from nipype import logging as nipype_logging

    nipype_logging.getLogger("nipype.workflow").info("hello from a worker")
    return "done"


def test_spawned_workers_write_nipypes_lines_to_the_log_not_the_terminal(tmp_path, capfd):
    """A spawned worker imports nipype afresh, whose handler prints to stdout: without -v
    its lines go to the run's log file (in a participant run: 420 INFO lines on the
    terminal before)."""
    import nipype.pipeline.engine as pe
    from nipype.interfaces.utility import Function

    from daninet_pipeline.cli.execution import nipype_log_to
    from daninet_pipeline.cli.signals import MultiProcPlugin

    wf = pe.Workflow(name="log_wf", base_dir=str(tmp_path))
    wf.add_nodes([pe.Node(Function(function=_say_hello, input_names=[], output_names=["out"]), name="hello")])
    with nipype_log_to(tmp_path / "logs" / "log_wf.log") as log:
        wf.run(plugin=MultiProcPlugin(plugin_args={"n_procs": 1}))
    out, err = capfd.readouterr()
    assert "hello from a worker" not in out + err
    assert "hello from a worker" in log.read_text()
