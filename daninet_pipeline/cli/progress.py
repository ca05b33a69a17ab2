"""Progress of a level's workflow, from Nipype's status callback (no log parsing).

:class:`StepProgress` is given to Nipype as the ``status_callback`` plugin argument
(MultiProc, Linear): Nipype calls it with each node and ``"start"``, ``"end"`` or
``"exception"``. It counts the finished steps of the whole graph (a cached step counts as
finished, a failed one too), measures each step's time, and estimates the time left from
the measured times of steps of the same name (``n4``, ``register``, ...) divided over
the workers. On a terminal it keeps one live line (tqdm) on stderr; elsewhere (a SLURM
log) it logs a line every minute or every 10% of the steps, whichever comes first.

The steps are known when the graph is built (:func:`graph_steps`), and so are the
session each one belongs to (``groups``: a workflow's hierarchy prefix -> a label such
as ``"sub-01 ses-M000"``): nothing is parsed back from node names.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

LOG = logging.getLogger("daninet")

#: without a terminal: a progress line at least this often (seconds) ...
LOG_EVERY_SECONDS = 60.0
#: ... and at every this fraction of the steps
LOG_EVERY_FRACTION = 0.1


def graph_steps(wf) -> list[str]:
    """Full names of the nodes of ``wf`` that run (its flattened graph without the
    identity nodes, which Nipype removes before running)."""
    from nipype.interfaces.utility import IdentityInterface
    from nipype.pipeline.engine import JoinNode

    flat = wf._create_flat_graph()
    return sorted(n.fullname for n in flat.nodes()
                  if not (isinstance(n.interface, IdentityInterface) and not isinstance(n, JoinNode)))


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class StepRecord:
    """One step of one run: ``status`` is ``done``, ``cached`` or ``failed``; ``seconds``
    is None where it was not measured (a cached step; a trivial step that MultiProc runs
    in its own process without a ``"start"`` event)."""

    name: str
    status: str
    seconds: float | None


@dataclass
class StepProgress:
    """Nipype status callback counting finished steps, with an ETA (see the module)."""

    what: str
    steps: list[str]
    workers: int = 1
    groups: dict[str, str] = field(default_factory=dict)  # hierarchy prefix -> label
    stream: object = None
    live: bool | None = None  # None: a live line when ``stream`` is a terminal
    clock: object = time.monotonic
    records: dict[str, StepRecord] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # label -> node full name

    def __post_init__(self):
        self.stream = self.stream if self.stream is not None else sys.stderr
        if self.live is None:
            self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._known = set(self.steps)
        self._started: dict[str, float] = {}
        self._t0 = self.clock()
        self._last_line = self._t0
        self._last_fraction = 0.0
        self._bar = None
        self._lock = threading.RLock()
        self._thread = None

    # Nipype pickles every MapNode with the plugin arguments it ran with (``use_plugin``),
    # this callback among them: the pickled copy keeps the records, not the stream,
    # lock and thread of the live one.
    _UNPICKLED = ("stream", "_lock", "_thread", "_stop", "_bar")

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._UNPICKLED}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.stream, self._thread, self._bar = None, None, None
        self._lock = threading.RLock()

    # ---- what the callback gathers
    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def finished(self) -> int:
        return len(self.records)

    def group_of(self, fullname: str) -> str | None:
        """The label of the group (session) whose workflow holds ``fullname``."""
        best = None
        for prefix, label in self.groups.items():
            if fullname.startswith(prefix + ".") and (best is None or len(prefix) > len(best[0])):
                best = (prefix, label)
        return best[1] if best else None

    def by_group(self) -> dict[str, list[StepRecord]]:
        """Each group's step records, in the order they finished."""
        out = defaultdict(list)
        for fullname, rec in self.records.items():
            label = self.group_of(fullname)
            if label is not None:
                out[label].append(rec)
        return dict(out)

    def eta(self) -> float | None:
        """Seconds left: the mean measured time of each unfinished step's name (all steps'
        mean for a name not measured yet), summed and divided over the workers; None
        before any step was measured."""
        measured = [r for r in self.records.values() if r.status == "done" and r.seconds is not None]
        if not measured:
            return None
        by_name = defaultdict(list)
        for rec in measured:
            by_name[rec.name].append(rec.seconds)
        overall = sum(r.seconds for r in measured) / len(measured)
        left = 0.0
        for fullname in self.steps:
            if fullname in self.records:
                continue
            times = by_name.get(fullname.rsplit(".", 1)[-1])
            estimate = sum(times) / len(times) if times else overall
            if fullname in self._started:  # already running: what it has left of it
                estimate = max(0.0, estimate - (self.clock() - self._started[fullname]))
            left += estimate
        return left / max(1, self.workers)

    def line(self) -> str:
        """``<what>: <finished>/<total> steps (<pct>%), <elapsed> elapsed, ETA <left>``."""
        elapsed = self.clock() - self._t0
        pct = 100.0 * self.finished / self.total if self.total else 100.0
        eta = self.eta()
        text = (f"{self.what}: {self.finished}/{self.total} steps ({pct:.0f}%), "
                f"{_duration(elapsed)} elapsed, ETA {'unknown' if eta is None else _duration(eta)}")
        if self.failed:
            text += f", {len(self.failed)} failed"
        return text

    # ---- the callback
    def __call__(self, node, status: str) -> None:
        with self._lock:
            self._event(node.fullname, status, bool(getattr(node, "run_without_submitting", False)))

    def _event(self, fullname: str, status: str, in_main: bool = False) -> None:
        if fullname not in self._known:  # a MapNode's sub-node: its MapNode counts
            return
        now = self.clock()
        if status == "start":
            self._started[fullname] = now
            return
        name = fullname.rsplit(".", 1)[-1]
        start = self._started.pop(fullname, None)
        if status == "exception":
            self.records[fullname] = StepRecord(name, "failed", None if start is None else now - start)
            label = self.group_of(fullname)
            if label is not None:
                self.failed.setdefault(label, fullname)
        elif status == "end" and fullname not in self.records:
            if start is not None:
                self.records[fullname] = StepRecord(name, "done", now - start)
            else:  # MultiProc sends no "start" for a cached step, nor for one run in its own process
                self.records[fullname] = StepRecord(name, "done" if in_main else "cached", None)
        else:
            return
        self._report(now)

    def _report(self, now: float) -> None:
        if self.live:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=self.total, file=self.stream, bar_format="{desc}", leave=True)
            self._bar.set_description_str(self.line(), refresh=True)
            return
        fraction = self.finished / self.total if self.total else 1.0
        if (now - self._last_line >= LOG_EVERY_SECONDS
                or fraction - self._last_fraction >= LOG_EVERY_FRACTION - 1e-9
                or self.finished == self.total):
            self._last_line, self._last_fraction = now, fraction
            LOG.info(self.line())

    def tick(self) -> None:
        """Between events: refresh the live line, or log a line when a minute passed
        without one (a long step, e.g. the training, sends no event for hours)."""
        with self._lock:
            if self.live:
                if self._bar is not None:
                    self._bar.set_description_str(self.line(), refresh=True)
            elif self.clock() - self._last_line >= LOG_EVERY_SECONDS:
                self._last_line = self.clock()
                LOG.info(self.line())

    def start(self, interval: float = 5.0) -> "StepProgress":
        """Call :meth:`tick` every ``interval`` seconds from a daemon thread until
        :meth:`close`."""
        self._stop = threading.Event()

        def loop():
            while not self._stop.wait(interval):
                self.tick()

        self._thread = threading.Thread(target=loop, name="daninet-progress", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the ticker; end the live line (the next output starts on a new line)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5.0)  # a tick takes milliseconds; never hold up a stopping run
            self._thread = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
