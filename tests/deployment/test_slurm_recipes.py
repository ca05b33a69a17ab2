"""The SLURM recipes of workflows/ on a real one-node SLURM cluster started here.

Runs only under ``make slurm-test`` (root, slurm-wlm and munge; see conftest.py). The
cluster (workflows/slurm/local_cluster.sh) is started once for the module and stopped,
by process id, at its end. What runs on it:

* the participant array recipe (workflows/slurm/submit_participant_array.sh) on a small
  synthetic dataset, cut into two chained arrays and throttled, then its rerun of the
  subjects whose derivatives are missing;
* Nipype's SLURM and SLURMGraph plugins with the shipped settings
  (workflows/nipype/slurm.json, slurmgraph.json) on a small workflow;
* the app itself with ``--plugin SLURMGraph`` (each Nipype node a SLURM job);
* the training recipe (workflows/slurm/train_group.sbatch) with two gloo processes, and a
  training job stopped by its time limit that resubmits itself and ends with the losses
  of an uninterrupted run.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.deployment

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "workflows"
BIN = Path(sys.executable).parent
JOB_TIMEOUT = float(os.environ.get("DANINET_SLURM_TIMEOUT", "1200"))


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)


def _queue_settled(*selection: str) -> bool:
    """True when no selected job is queued or running. Jobs that can never start (a
    dependency failed) are cancelled, so a failure ends the wait at once."""
    proc = _run(["squeue", "-h", "-o", "%i %r", *selection], check=False)
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:  # a job long gone is settled
        return False  # the controller did not answer (busy): not known to be settled
    out = proc.stdout.split("\n")
    jobs = [line.split(" ", 1) for line in out if line.strip()]
    stuck = [job for job, reason in jobs if reason == "DependencyNeverSatisfied"]
    if stuck:
        _run(["scancel", *stuck], check=False)
    return len(stuck) == len(jobs)


def _wait_for(job_ids: list[str], timeout: float = JOB_TIMEOUT) -> float:
    """Wait until none of the jobs is queued or running; return the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _queue_settled("-j", ",".join(job_ids)):
            return time.monotonic() - t0
        time.sleep(2)
    raise TimeoutError(f"jobs {job_ids} still queued after {timeout:.0f} s")


def _wait_for_user_jobs(timeout: float = JOB_TIMEOUT) -> None:
    """Wait until this user has no job queued or running."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _queue_settled("-u", getpass.getuser()):
            return
        time.sleep(2)
    raise TimeoutError(f"jobs still queued after {timeout:.0f} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root")
    root = tmp_path_factory.mktemp("slurm")
    t0 = time.monotonic()
    out = _run(["bash", RECIPES / "slurm" / "local_cluster.sh", "start", root / "cluster"])
    conf = out.stdout.strip().split("SLURM_CONF=", 1)[1]
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    # Nipype's SLURM plugin reads os.environ["LOGNAME"], which a CI job may not have.
    os.environ.setdefault("LOGNAME", getpass.getuser())
    print(f"[slurm] cluster started in {time.monotonic() - t0:.1f} s: {out.stderr.strip()}")
    try:
        yield root
    finally:
        _run(["bash", RECIPES / "slurm" / "local_cluster.sh", "stop", root / "cluster"], check=False)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


@pytest.fixture(scope="module")
def bids(tmp_path_factory) -> Path:
    from daninet_pipeline.data.synthetic import write_dataset

    out = tmp_path_factory.mktemp("bids_slurm") / "bids"
    write_dataset(out, n_subjects=2, seed=4, shape="small")  # 2 sessions each
    return out


def _subjects(bids_dir: Path) -> list[str]:
    return sorted(p.name for p in bids_dir.glob("sub-*") if p.is_dir())


def _submit(bids_dir: Path, out_dir: Path, run_dir: Path, *extra: str,
            max_array: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, DANINET=str(BIN / "daninet"), DANINET_PYTHON=sys.executable,
               PATH=f"{BIN}:{os.environ['PATH']}")
    proc = _run(["bash", RECIPES / "slurm" / "submit_participant_array.sh", bids_dir, out_dir,
                 "--run-dir", run_dir, "--throttle", "2", "--max-array", str(max_array),
                 "--sbatch-args", "--cpus-per-task=1 --mem=3G", *extra,
                 "--", "--stop-on-first-crash"], env=env)
    print(proc.stderr)
    return proc


@pytest.fixture(scope="module")
def array_run(cluster, bids):
    """The participant array over the whole dataset, waited for."""
    out_dir, run_dir = cluster / "derivatives" / "daninet", cluster / "daninet_slurm"
    t0 = time.monotonic()
    jobs = _submit(bids, out_dir, run_dir).stdout.split()
    waited = _wait_for(jobs)
    print(f"[slurm] array of {len(_subjects(bids))} subjects ({len(jobs)} arrays) done in "
          f"{time.monotonic() - t0:.0f} s (waited {waited:.0f} s)")
    logs = {p.name: p.read_text() for p in (run_dir / "logs").glob("*.out")}
    summary = _run(["bash", RECIPES / "slurm" / "summarise_status.sh", run_dir], check=False)
    print(summary.stdout)
    return {"jobs": jobs, "out": out_dir, "run": run_dir, "logs": logs}


def test_array_runs_one_task_per_subject(array_run, bids):
    subjects = _subjects(bids)
    # 2 subjects, arrays of at most 2 subjects: one array, both tasks at once
    assert len(array_run["jobs"]) == 1
    assert len(array_run["logs"]) == len(subjects)
    status = {}
    for path in (array_run["run"] / "status").glob("*.tsv"):
        label, job_task, rc, seconds, maxrss, node, date = path.read_text().rstrip("\n").split("\t")
        status[label] = int(rc)
        assert int(seconds) >= 0 and node
    assert sorted(status) == subjects
    assert set(status.values()) == {0}, status


def test_array_writes_the_derivatives(array_run, bids):
    proc = _run([sys.executable, RECIPES / "check_derivatives.py", bids, array_run["out"]],
                check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rerun_submits_only_incomplete_subjects(array_run, bids):
    subjects = _subjects(bids)
    # lose one subject's derivatives: only it is run again, and comes back
    victim = subjects[0]
    shutil.rmtree(array_run["out"] / victim)
    expected = [victim]
    jobs = _submit(bids, array_run["out"], array_run["run"], "--rerun-failed",
                   "--no-validate").stdout.split()
    assert jobs, "nothing was resubmitted"
    _wait_for(jobs)
    lists = sorted((array_run["run"] / "lists").glob("subjects_*.txt"))
    rerun = lists[-1].read_text().split()
    assert ["sub-" + label for label in rerun] == expected
    proc = _run([sys.executable, RECIPES / "check_derivatives.py", bids, array_run["out"]],
                check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_large_lists_are_cut_into_chained_arrays(bids, tmp_path):
    """--max-array 1 on 2 subjects: two sbatch commands, the second after the first."""
    proc = _submit(bids, tmp_path / "out", tmp_path / "run", "--dry-run", max_array=1)
    commands = [line for line in proc.stdout.splitlines() if " sbatch " in line]
    assert len(commands) == 2
    assert all("--array=1-1%2" in c for c in commands)
    assert "--dependency" not in commands[0] and "--dependency=afterany:" in commands[1]
    chunks = sorted((tmp_path / "run" / "lists").glob("chunk_*"))
    assert [c.read_text().split() for c in chunks] == [[s.removeprefix("sub-")] for s in _subjects(bids)]


def _square(x):
    return x * x


def _total(values):
    return sum(values)


def _add(a, b):
    import socket

    return a + b, socket.gethostname()


@pytest.mark.parametrize("plugin", ["SLURM", "SLURMGraph"])
def test_nipype_plugin_settings_run_on_slurm(cluster, plugin, tmp_path):
    import nipype.pipeline.engine as pe
    from nipype.interfaces.utility import Function

    settings = json.loads((RECIPES / "nipype" / f"{plugin.lower()}.json").read_text())
    wf = pe.Workflow(name=f"toy_{plugin.lower()}", base_dir=str(tmp_path))
    wf.config["execution"]["crashdump_dir"] = str(tmp_path / "crash")
    square = pe.MapNode(Function(input_names=["x"], output_names=["y"], function=_square),
                        iterfield=["x"], name="square")
    square.inputs.x = [1, 2, 3]
    add = pe.Node(Function(input_names=["a", "b"], output_names=["total", "host"],
                           function=_add), name="add")
    add.inputs.b = 10
    wf.connect([(square, add, [(("y", _total), "a")])])
    t0 = time.monotonic()
    wf.run(plugin=plugin, plugin_args=settings)
    if plugin.endswith("Graph"):
        # graph plugins submit every node with its dependencies and return at once
        _wait_for_user_jobs()
    from nipype.pipeline.engine.utils import load_resultfile

    result = load_resultfile(tmp_path / wf.name / "add" / "result_add.pklz")
    print(f"[slurm] Nipype {plugin}: done in {time.monotonic() - t0:.0f} s")
    assert result.outputs.total == 1 + 4 + 9 + 10
    # the nodes really went through sbatch: Nipype's batch scripts are there
    assert list(tmp_path.rglob("batch/*.sh")), "no SLURM batch script written"


def test_app_with_slurm_plugin(cluster, array_run, bids, tmp_path):
    subject = _subjects(bids)[-1]
    session = sorted(p.name for p in (bids / subject).glob("ses-*"))[0]
    settings = (RECIPES / "nipype" / "slurmgraph.json").read_text()
    out = tmp_path / "derivatives" / "daninet"
    t0 = time.monotonic()
    proc = _run([BIN / "daninet", bids, out, "participant", "--participant-label", subject,
                 "--session-label", session,
                 "--skip-bids-validation", "--work-dir", tmp_path / "work",
                 "--plugin", "SLURMGraph", "--plugin-args", settings],
                check=False, timeout=JOB_TIMEOUT)
    _wait_for_user_jobs()  # SLURMGraph returns once every node is submitted
    print(f"[slurm] daninet --plugin SLURMGraph, {subject}: exit {proc.returncode} in "
          f"{time.monotonic() - t0:.0f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = _run([sys.executable, RECIPES / "check_derivatives.py", bids, out,
                  "--participant-label", subject, "--session-label", session], check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def _tiny_store(root):
    import nibabel as nib
    import numpy as np
    from nibabel.processing import resample_to_output

    from daninet_pipeline.data.resources import load_template
    from daninet_pipeline.model.data import SliceStore

    img = resample_to_output(load_template(), voxel_sizes=(4, 4, 4), order=1)
    vol = np.clip(np.asarray(img.dataobj, np.float32), 0, None)
    rng = np.random.default_rng(0)
    records = []
    for s, dx in enumerate(("CN", "MCI", "AD", "CN")):
        for k, age in enumerate((65.0, 72.0, 80.0)):
            v = vol * (1 - 0.01 * (age - 65.0)) + rng.normal(0, 0.01, vol.shape) * (vol > 0.02)
            records.append({"image": nib.Nifti1Image(np.clip(v, 0, None).astype(np.float32), img.affine),
                            "subject": f"s{s:02d}", "session": f"M{k:02d}", "age": age, "diagnosis": dx})
    return SliceStore.build(root, records, image_size=32)


def _tiny_config(**changes):
    from daninet_pipeline.model.config import TrainConfig

    return TrainConfig.from_file("demo").replace(
        image_size=32, width=4, z_dim=8, batch_size=4, n_bins=4, age_min=63.0, age_max=83.0, **changes)


def test_training_job_runs_on_cpu(cluster, tmp_path):
    """workflows/slurm/train_group.sbatch with two CPU processes (gloo) on a tiny store."""
    from daninet_pipeline.model.modelfile import load_model_file

    store = _tiny_store(tmp_path / "store")
    cfg = _tiny_config(steps=4, checkpoint_every=2)
    cfg.save(tmp_path / "cfg.json")
    out = tmp_path / "model"
    env = dict(os.environ, STORE=str(store.root), OUT=str(out), CONFIG=str(tmp_path / "cfg.json"),
               NPROC="2", PATH=f"{BIN}:{os.environ['PATH']}")
    t0 = time.monotonic()
    job = _run(["sbatch", "--parsable", "--cpus-per-task=2", "--mem=4G", "--time=00:20:00",
                "--export=ALL", f"--output={tmp_path}/train_%j.out",
                RECIPES / "slurm" / "train_group.sbatch"], env=env).stdout.strip().split(";")[0]
    _wait_for([job])
    log = next(tmp_path.glob("train_*.out")).read_text()
    print(f"[slurm] training job (torchrun, 2 gloo processes) in {time.monotonic() - t0:.0f} s")
    assert (out / "model.pt").is_file(), log[-3000:]
    assert load_model_file(out / "model.pt")["training"]["processes"] == 2


def test_training_job_signalled_before_its_time_limit_resubmits_itself_and_resumes(cluster, tmp_path):
    """The batch shell gets SIGTERM while the training runs (what ``--signal=B:TERM@300``
    sends 300 s before the time limit; sent here by ``scancel --batch --signal=TERM`` once
    steps are logged, since SLURM's own timing of it is only to its 30-s check period and
    a signal before the training has started leaves no checkpoint to resume). The job
    checkpoints and submits its successor, which resumes: the chain ends with the losses of
    an uninterrupted run."""
    import csv

    import torch

    from daninet_pipeline.model.daninet import LOG_LOSSES
    from daninet_pipeline.model.train import train

    store = _tiny_store(tmp_path / "store")
    cfg = _tiny_config(steps=1500, checkpoint_every=100_000)  # no periodic checkpoint before the signal
    cfg.save(tmp_path / "cfg.json")
    out = tmp_path / "model"
    common = f"--cpus-per-task=1 --mem=3G --output={tmp_path}/train_%j.out --time=00:10:00"
    env = dict(os.environ, STORE=str(store.root), OUT=str(out), CONFIG=str(tmp_path / "cfg.json"), NPROC="1",
               PATH=f"{BIN}:{os.environ['PATH']}", DANINET_SBATCH_ARGS=common)
    t0 = time.monotonic()
    first = _run(["sbatch", "--parsable", *common.split(), "--export=ALL", RECIPES / "slurm" / "train_group.sbatch"],
                 env=env).stdout.strip().split(";")[0]
    logged = 0
    while time.monotonic() - t0 < JOB_TIMEOUT and logged < 20:  # 20 steps done: the training runs
        time.sleep(0.2)
        if (out / "losses.tsv").is_file():
            logged = max(0, len((out / "losses.tsv").read_text().splitlines()) - 1)
    assert 20 <= logged < cfg.steps - 1, f"{logged} steps logged: the training did not run, or ended unstopped"
    _run(["scancel", "--batch", "--signal=TERM", first])
    _wait_for_user_jobs()
    logs = {p.name: p.read_text() for p in sorted(tmp_path.glob("train_*.out"))}
    print(f"[slurm] signalled training chain in {time.monotonic() - t0:.0f} s: {len(logs)} jobs, "
          f"signal after {logged} steps")
    text = "\n".join(logs.values())
    every_log = "\n".join(f"--- {name}\n{log}" for name, log in logs.items())
    assert (out / "model.pt").is_file(), every_log[-4000:]
    assert len(logs) >= 2 and f"train_{first}.out" in logs, every_log[-4000:]
    assert "resubmitted as job" in logs[f"train_{first}.out"], every_log[-4000:]
    assert "resubmission 1" in text and "--resume" in text, every_log[-4000:]  # the next job resumed

    torch.set_num_threads(1)
    train(cfg, store, tmp_path / "plain", progress=False)

    def rows(path):
        with open(path) as f:
            return list(csv.DictReader(f, delimiter="\t"))

    a, b = rows(tmp_path / "plain" / "losses.tsv"), rows(out / "losses.tsv")
    assert [r["step"] for r in b] == [str(s) for s in range(cfg.steps)]
    for ra, rb in zip(a, b):
        for k in LOG_LOSSES:
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-5, abs=1e-7, nan_ok=True), (ra["step"], k)


def _run_jobs(work: Path) -> list[str]:
    """This user's queued or running jobs whose script lies under ``work``."""
    out = _run(["squeue", "-h", "-u", getpass.getuser(), "-o", "%A|%o"], check=False).stdout
    return [line.split("|")[0] for line in out.splitlines()
            if "|" in line and line.split("|", 1)[1].strip().startswith(str(work))]


@pytest.mark.parametrize("plugin, signum, code", [
    ("SLURM", "SIGTERM", 143), ("SLURM", "SIGINT", 130), ("SLURMGraph", "SIGTERM", 143)])
def test_stopped_app_cancels_the_jobs_it_submitted(cluster, bids, plugin, signum, code, tmp_path):
    """The app with a SLURM plugin, signalled once its first job is queued: it exits with
    the conventional code and one line, and no job of its run is left in the queue.

    Every job is held (``--begin=now+600``) by an ``sbatch`` first on PATH, which also
    takes a second per job so that a SLURMGraph run is still submitting when signalled
    (a graph run returns once all its jobs are submitted)."""
    import signal as signals

    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sbatch").write_text(f'#!/bin/sh\nsleep 1\nexec {shutil.which("sbatch")} --begin=now+600 "$@"\n')
    (shim / "sbatch").chmod(0o755)
    subject = _subjects(bids)[0]
    work = tmp_path / "work"
    env = dict(os.environ, PATH=f"{shim}:{BIN}:{os.environ['PATH']}")
    proc = subprocess.Popen(
        [str(BIN / "daninet"), str(bids), str(tmp_path / "out"), "participant", "--participant-label", subject,
         "--skip-bids-validation", "--work-dir", str(work), "--plugin", plugin,
         "--plugin-args", (RECIPES / "nipype" / f"{plugin.lower()}.json").read_text()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not _run_jobs(work) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    queued = _run_jobs(work)
    assert queued, f"no job of the run was queued: {proc.poll()}"
    proc.send_signal(getattr(signals, signum))
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=60)
    print(f"[slurm] {plugin} run stopped by {signum} with {len(queued)} job(s) queued: exit "
          f"{proc.returncode} in {time.monotonic() - t0:.1f} s; {err.strip().splitlines()[-1]}")
    deadline = time.monotonic() + 10
    while _run_jobs(work) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _run_jobs(work)
    _run(["scancel", *left], check=False)  # leave the cluster clean for the next test
    assert left == [], f"jobs {left} of the stopped run are still queued"
    assert proc.returncode == code, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"daninet: stopped by {signum}") and "batch job(s) cancelled" in last, last
    assert "Traceback" not in err
