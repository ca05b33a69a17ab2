"""The progress line (issue 13, item 3): Nipype's status callback counts finished steps
of every session, estimates the time left from measured step times, and without a
terminal logs a line every minute or every 10% of the steps, whichever comes first.
A fake clock drives it: nothing here depends on real time."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest

from daninet_pipeline.cli.progress import StepProgress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _node(fullname, in_main=False):
    return SimpleNamespace(fullname=fullname, run_without_submitting=in_main)


STEPS = [f"top.sub_01_wf.preproc_ses_{s}_wf.{n}" for s in ("A", "B") for n in ("n4", "register")] + \
    ["top.sub_01_wf.ds_ses_A_wf.ds_t1w", "top.sub_01_wf.ds_ses_B_wf.ds_t1w"]
GROUPS = {f"top.sub_01_wf.{k}_ses_{s}_wf": f"sub-01 ses-{s}" for s in ("A", "B") for k in ("preproc", "ds")}


def _progress(clock, workers=1, **kw):
    return StepProgress("participant level", STEPS, workers=workers, groups=GROUPS, stream=io.StringIO(),
                        live=False, clock=clock, **kw)


def _run(progress, clock, name, seconds):
    progress(_node(name), "start")
    clock.now += seconds
    progress(_node(name), "end")


def test_finished_steps_are_counted_and_the_eta_comes_from_the_same_steps_measured_times():
    clock = Clock()
    progress = _progress(clock, workers=2)
    assert progress.eta() is None and progress.line().endswith("ETA unknown")
    _run(progress, clock, STEPS[0], 10.0)  # n4 of A: 10 s
    _run(progress, clock, STEPS[1], 30.0)  # register of A: 30 s
    # left: n4 (10 s) + register (30 s) of B, two sinks at the mean of all (20 s): 80 s over 2 workers
    assert progress.finished == 2 and progress.total == 6
    assert progress.eta() == pytest.approx(40.0)
    assert progress.line() == "participant level: 2/6 steps (33%), 40 s elapsed, ETA 40 s"


def test_a_running_step_counts_only_what_it_has_left():
    clock = Clock()
    progress = _progress(clock)
    _run(progress, clock, STEPS[0], 10.0)
    progress(_node(STEPS[2]), "start")  # n4 of B, running for 4 s
    clock.now += 4.0
    assert progress.eta() == pytest.approx(6.0 + 4 * 10.0)  # + 4 steps not started, 10 s each


def test_cached_failed_and_main_process_steps_and_the_sessions_they_belong_to():
    clock = Clock()
    progress = _progress(clock)
    progress(_node(STEPS[0]), "end")  # no start: cached
    progress(_node(STEPS[4], in_main=True), "end")  # no start, run in the scheduler's process
    progress(_node(STEPS[2]), "start")
    progress(_node(STEPS[2]), "exception")
    progress(_node("top.sub_01_wf.preproc_ses_A_wf.n4.mapflow._n40"), "end")  # not a step of the graph
    assert progress.finished == 3
    groups = progress.by_group()
    assert [(r.name, r.status) for r in groups["sub-01 ses-A"]] == [("n4", "cached"), ("ds_t1w", "done")]
    assert [(r.name, r.status) for r in groups["sub-01 ses-B"]] == [("n4", "failed")]
    assert progress.failed == {"sub-01 ses-B": STEPS[2]}
    assert progress.line().endswith(", 1 failed")


def test_without_a_terminal_a_line_every_ten_percent_or_every_minute(caplog):
    clock = Clock()
    steps = [f"top.s{i}" for i in range(40)]
    progress = StepProgress("group level", steps, stream=io.StringIO(), clock=clock)
    assert progress.live is False  # a StringIO is no terminal
    with caplog.at_level(logging.INFO, logger="daninet"):
        for i in range(3):  # 7.5%: no line yet
            _run(progress, clock, steps[i], 1.0)
        assert caplog.records == []
        _run(progress, clock, steps[3], 1.0)  # 10%
        assert [r.getMessage().split(",")[0] for r in caplog.records] == ["group level: 4/40 steps (10%)"]
        progress(_node(steps[4]), "start")  # a long step: no event for a minute
        clock.now += 59.0
        progress.tick()
        assert len(caplog.records) == 1
        clock.now += 1.0
        progress.tick()
        assert len(caplog.records) == 2 and "4/40 steps" in caplog.records[-1].getMessage()
        clock.now += 1.0
        progress(_node(steps[4]), "end")  # 12.5%, a second after the last line: none
        assert len(caplog.records) == 2


def test_on_a_terminal_one_live_line_is_redrawn():
    clock = Clock()
    stream = io.StringIO()
    progress = StepProgress("simulation", STEPS, stream=stream, live=True, clock=clock)
    _run(progress, clock, STEPS[0], 2.0)
    _run(progress, clock, STEPS[1], 2.0)
    progress.close()
    text = stream.getvalue()
    assert "simulation: 1/6 steps" in text and "simulation: 2/6 steps" in text
    assert "\r" in text and text.count("\n") == 1  # redrawn in place, one line in the end


def test_the_level_workflows_steps_are_known_before_running(tmp_path):
    """The steps counted are the graph's nodes that run (identity nodes removed), and each
    session's steps map to its label, from the graph as it was built."""
    import pandas as pd

    from daninet_pipeline.cli.progress import graph_steps
    from daninet_pipeline.workflows.base import init_daninet_participant_wf

    t1w = []
    for ses in ("M000", "M006"):
        path = tmp_path / f"sub-01_ses-{ses}_run-02_T1w.nii.gz"
        path.write_bytes(b"")
        t1w.append(str(path))
    table = pd.DataFrame({"subject": ["01", "01"], "session": ["M000", "M006"], "t1w": t1w})
    wf = init_daninet_participant_wf(table, output_dir=tmp_path / "out", work_dir=tmp_path / "work")
    steps = graph_steps(wf)
    assert not any(s.endswith(("inputnode", "outputnode")) for s in steps)
    progress = StepProgress("p", steps, groups=wf.daninet_groups, stream=io.StringIO())
    labels = {progress.group_of(s) for s in steps}
    assert labels == {"sub-01 ses-M000_run-02", "sub-01 ses-M006_run-02", None}
    assert sum(progress.group_of(s) == "sub-01 ses-M000_run-02" for s in steps) >= 10


def test_the_callback_pickles_as_nipype_pickles_it_with_every_map_node():
    """Nipype saves each MapNode with its plugin arguments (``use_plugin``), so the
    callback is pickled mid-run: with its thread running and a stream that is not
    picklable (pytest's capture, a terminal)."""
    import pickle

    clock = Clock()

    class Unpicklable(io.StringIO):
        def __reduce__(self):
            raise TypeError("cannot pickle this stream")

    progress = StepProgress("simulation", STEPS, stream=Unpicklable(), live=False, clock=clock).start(interval=3600)
    try:
        _run(progress, clock, STEPS[0], 3.0)
        copy = pickle.loads(pickle.dumps(progress))
    finally:
        progress.close()
    assert copy.records == progress.records and copy.total == 6 and copy.stream is None
