"""Stopping a run (issue 12, item 8): SIGTERM (``docker stop``, a job manager, ``kill``)
and SIGINT (Ctrl-C) stop the worker processes and end the app within seconds with one
line and the conventional exit code (143, 130); the MultiProc workers end by themselves
when their parent dies, even by SIGKILL (``PR_SET_PDEATHSIG``). With the batch plugins
(SLURM, SGE, ...) the jobs the run submitted are cancelled (:mod:`.batch`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor

from nipype.pipeline.plugins.multiproc import MultiProcPlugin as _NipypeMultiProc
from nipype.pipeline.plugins.multiproc import process_initializer

LOG = logging.getLogger("daninet")

_PR_SET_PDEATHSIG = 1
SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


class Stopped(BaseException):
    """Raised in the main thread by a SIGTERM or SIGINT (a BaseException, so that no
    ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def install_handlers() -> dict:
    """SIGTERM and SIGINT raise :class:`Stopped` in the main thread; returns the handlers
    they had (for :func:`restore_handlers`)."""
    previous = {}
    for signum in SIGNAL_NAMES:
        previous[signum] = signal.signal(signum, _raise_stopped)
    return previous


def restore_handlers(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _worker_initializer(cwd: str, parent: int) -> None:
    """A MultiProc worker: dies with its parent (SIGKILL from the kernel when the parent
    ends, however it ends); SIGTERM ends it at once; SIGINT (Ctrl-C reaches the whole
    process group) is left to the parent, which stops the workers."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's handler still stops us
        pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)
    from .execution import WORKER_LOG_ENV, log_nipype_to_file

    if os.environ.get(WORKER_LOG_ENV):
        log_nipype_to_file(os.environ[WORKER_LOG_ENV])
    process_initializer(cwd)


#: How MultiProc workers start unless ``--plugin-args '{"mp_context": ...}'`` says
#: otherwise: ``spawn`` gives each worker a fresh interpreter. A worker forked from a
#: process that has already run torch (the demo, a test session, a lab's script that
#: embeds the workflows) can hang in its first torch call: the OpenMP thread pool does
#: not survive fork (seen here: deepbet and training nodes idle forever).
DEFAULT_MP_CONTEXT = "spawn"


class MultiProcPlugin(_NipypeMultiProc):
    """Nipype's MultiProc whose workers die with their parent (:func:`_worker_initializer`)
    and start with :data:`DEFAULT_MP_CONTEXT`, and whose scheduler does not stall on the
    garbage collector.

    Nipype runs ``gc.collect()`` in the scheduling process before it hands out ready
    nodes and after each node it runs itself. With nipype, pybids and niworkflows loaded
    (about 270,000 objects) each full collection took 0.2-0.5 s here, during which no
    worker got a new node: in a rerun of the participant level, 98 collections were a
    third of its time. The objects that exist when the run starts are moved to the
    collector's permanent generation (``gc.freeze``), so those collections only walk
    what the run itself makes; they are handed back when it ends.
    """

    def run(self, graph, config, updatehash=False):
        import gc

        gc.collect()
        gc.freeze()
        try:
            return super().run(graph, config, updatehash=updatehash)
        finally:
            gc.unfreeze()

    def __init__(self, plugin_args=None):
        super().__init__(plugin_args=plugin_args)
        self.pool.shutdown(wait=False)  # no worker was started yet: replace the pool
        self.pool = ProcessPoolExecutor(
            max_workers=self.processors, initializer=_worker_initializer,
            initargs=(self._cwd, os.getpid()),
            mp_context=mp.get_context(self.plugin_args.get("mp_context") or DEFAULT_MP_CONTEXT))


def plugin_for(name: str, plugin_args: dict):
    """What ``Workflow.run(plugin=...)`` takes: our MultiProc, a batch plugin that cancels
    its jobs when the run stops (:mod:`.batch`), or Nipype's plugin by name (Linear)."""
    from .batch import BATCH_PLUGINS

    if name == "MultiProc":
        return MultiProcPlugin(plugin_args=plugin_args)
    if name in BATCH_PLUGINS:
        return BATCH_PLUGINS[name](plugin_args=plugin_args)
    return name


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has ended). The ended worker is not reaped
    here: its ``ProcessPoolExecutor`` reaps it, and a worker reaped behind its back
    looks alive to it for ever (``Popen.poll`` takes the ECHILD for "not started yet"),
    so its manager thread never ended and the app hung at exit."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def stop_children(timeout: float = 5.0) -> int:
    """SIGTERM every process below this one, SIGKILL those left after ``timeout`` s;
    returns how many there were."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)  # noqa: SLF001
    # multiprocessing's resource tracker (spawned workers) ends by itself when we exit and
    # cleans up; killed, it prints a traceback over our one line
    pids = [pid for pid in _descendants(os.getpid()) if pid != tracker]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _running(pid)]
        time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)
