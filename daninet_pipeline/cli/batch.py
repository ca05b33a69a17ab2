"""Nipype's batch plugins (SLURM, SLURMGraph, SGE, SGEGraph, PBS, LSF), each able to
cancel the jobs its run submitted when the run is stopped (issue 12, item 8).

A run's jobs are known two ways, and both are cancelled:

* the ids the plugin read back from ``sbatch``/``qsub``/``bsub`` (the one-job-per-node
  plugins);
* the scheduler's own list of this user's jobs, kept where the job's script lies in one
  of the run's batch folders (``<base_dir>/<workflow>/batch``, where Nipype writes every
  script). The graph plugins submit through a shell script whose ids Nipype never reads
  back, and a job submitted while the signal arrived may not have printed its id yet:
  this finds those, and never another run's job (another work folder).

SLURM lists each job's script with ``squeue -o %o``; SGE with ``qstat -j ID``
(``script_file``); PBS and LSF are cancelled by the ids read back only.
"""

from __future__ import annotations

import getpass
import logging
import os
import subprocess

from nipype.pipeline.plugins import (LSFPlugin as _LSF, PBSPlugin as _PBS, SGEGraphPlugin as _SGEGraph,
                                     SGEPlugin as _SGE, SLURMGraphPlugin as _SLURMGraph,
                                     SLURMPlugin as _SLURM)

LOG = logging.getLogger("daninet")

#: the batch plugins of this run that are running now (their ``run`` has not returned)
RUNNING: list = []

#: seconds each scheduler command may take before it is given up
COMMAND_TIMEOUT = 20.0


def _command(args: list[str]) -> str:
    """stdout of a scheduler command ('' when it fails or is missing)."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout


def _user() -> str:
    return os.environ.get("LOGNAME") or getpass.getuser()


def _inside(path: str, folders: set[str]) -> bool:
    path = os.path.abspath(path.strip())
    return any(path.startswith(folder + os.sep) for folder in folders)


def _slurm_jobs(batch_dirs: set[str]) -> set[str]:
    out = _command(["squeue", "-h", "-u", _user(), "-o", "%A|%o"])
    jobs = set()
    for line in out.splitlines():
        job, _, script = line.partition("|")
        if job.strip() and _inside(script, batch_dirs):
            jobs.add(job.strip())
    return jobs


def _sge_jobs(batch_dirs: set[str]) -> set[str]:
    lines = _command(["qstat", "-u", _user()]).splitlines()
    ids = [line.split()[0] for line in lines[2:] if line.split() and line.split()[0].isdigit()]
    jobs = set()
    for job in ids:
        for line in _command(["qstat", "-j", job]).splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "script_file" and _inside(value, batch_dirs):
                jobs.add(job)
    return jobs


class _CancelsItsJobs:
    """Mixin for a Nipype batch plugin: remembers the ids it submitted and its batch
    folders while it runs; :meth:`cancel` cancels what is still queued or running."""

    scheduler = ""  # "slurm", "sge", "pbs" or "lsf"
    cancel_command = ""

    def run(self, graph, config, updatehash=False):
        self.submitted: set[str] = set()
        self.batch_dirs = {
            os.path.abspath(os.path.join(node.base_dir, node._hierarchy.split(".")[0], "batch")
                            if node._hierarchy else os.path.join(node.base_dir, "batch"))
            for node in graph.nodes()}
        RUNNING.append(self)
        try:
            result = super().run(graph, config, updatehash=updatehash)
        except Exception:
            RUNNING.remove(self)
            raise
        # a stop (a BaseException: cli.signals.Stopped) leaves the plugin listed, for
        # cancel_submitted_jobs
        RUNNING.remove(self)
        return result

    def _submit_batchtask(self, scriptfile, node):
        taskid = super()._submit_batchtask(scriptfile, node)
        self.submitted.add(str(taskid))
        return taskid

    def jobs(self) -> set[str]:
        """This run's job ids: those read back, and those the scheduler lists with a
        script in one of the run's batch folders."""
        found = set(getattr(self, "submitted", set()))
        if self.scheduler == "slurm":
            found |= _slurm_jobs(self.batch_dirs)
        elif self.scheduler == "sge":
            found |= _sge_jobs(self.batch_dirs)
        return found

    def cancel(self) -> list[str]:
        """Cancel this run's jobs; returns their ids (finished ones included: the
        scheduler ignores those)."""
        jobs = sorted(self.jobs(), key=lambda j: (len(j), j))
        if jobs:
            _command([self.cancel_command, *jobs])
        return jobs


class SLURMPlugin(_CancelsItsJobs, _SLURM):
    scheduler, cancel_command = "slurm", "scancel"


class SLURMGraphPlugin(_CancelsItsJobs, _SLURMGraph):
    scheduler, cancel_command = "slurm", "scancel"


class SGEPlugin(_CancelsItsJobs, _SGE):
    scheduler, cancel_command = "sge", "qdel"


class SGEGraphPlugin(_CancelsItsJobs, _SGEGraph):
    scheduler, cancel_command = "sge", "qdel"


class PBSPlugin(_CancelsItsJobs, _PBS):
    scheduler, cancel_command = "pbs", "qdel"


class LSFPlugin(_CancelsItsJobs, _LSF):
    scheduler, cancel_command = "lsf", "bkill"


#: the plugins above by the name ``--plugin`` takes
BATCH_PLUGINS = {cls.__name__[: -len("Plugin")]: cls
                 for cls in (SLURMPlugin, SLURMGraphPlugin, SGEPlugin, SGEGraphPlugin, PBSPlugin, LSFPlugin)}


def cancel_submitted_jobs() -> list[str]:
    """Cancel the jobs of every batch plugin still running in this process; returns the
    ids cancelled."""
    cancelled = []
    for plugin in list(RUNNING):
        jobs = plugin.cancel()
        if jobs:
            LOG.info("%s: cancelled jobs %s", plugin.cancel_command, " ".join(jobs))
        cancelled += jobs
    return cancelled
