"""Citable and reproducible output (issue 13, item 2): GeneratedBy's CodeURL and Container,
the image definitions that set DANINET_CONTAINER, every run's logs/<run id>/config.toml and
its replay (--replay-run), and the methods paragraph."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from daninet_pipeline.cli.parser import build_parser, parse_args
from daninet_pipeline.cli.replay import read_replay_argv, to_toml, write_run_config
from daninet_pipeline.cli.run import main
from daninet_pipeline.interfaces.bids import write_dataset_description

REPO = Path(__file__).resolve().parents[1]


def test_generated_by_has_code_url_and_container_when_known(tmp_path, monkeypatch):
    monkeypatch.setenv("DANINET_CONTAINER", "docker:daninet:0.1.0")
    monkeypatch.setenv("DANINET_CODE_URL", "https://example.org/lab/daninet_pipeline.git")
    path = write_dataset_description(tmp_path / "out")
    generated = json.loads(path.read_text())["GeneratedBy"][0]
    assert generated["Container"] == {"Type": "docker", "Tag": "daninet:0.1.0"}
    assert generated["CodeURL"] == "https://example.org/lab/daninet_pipeline.git"


def test_generated_by_has_neither_outside_the_image(tmp_path, monkeypatch):
    monkeypatch.delenv("DANINET_CONTAINER", raising=False)
    monkeypatch.setenv("DANINET_CODE_URL", "unknown")  # the image's value when its build had no git remote
    generated = json.loads(write_dataset_description(tmp_path / "out").read_text())["GeneratedBy"][0]
    assert "Container" not in generated
    assert "CodeURL" not in generated or generated["CodeURL"].startswith("http")


def test_both_image_definitions_set_the_container_variable():
    docker = (REPO / "containers" / "Dockerfile").read_text()
    assert re.search(r'^ENV DANINET_CONTAINER="docker:daninet:\$\{VERSION\}"', docker, re.M)
    assert 'DANINET_CODE_URL="${SOURCE_URL}"' in docker
    apptainer = (REPO / "containers" / "apptainer.def").read_text()
    env = apptainer.split("%environment", 1)[1].split("%", 1)[0]
    version = re.search(r'__version__ = "(.*)"', (REPO / "daninet_pipeline" / "__init__.py").read_text()).group(1)
    assert f'export DANINET_CONTAINER="apptainer:daninet-{version}.sif"' in env


def test_toml_written_by_hand_reads_back_with_tomllib():
    tables = {"options": {"path": 'C:\\dir "quoted"', "ages": [70.0, 75.5], "n": 3, "on": True, "off": None,
                          "weird key": "x"},
              "model": {"weight_reg": {"value": 1.0, "kind": "linear"}, "regions": ["Left Hippocampus"]}}
    back = tomllib.loads(to_toml(tables, header="a comment\nsecond line"))
    assert back["options"] == {"path": 'C:\\dir "quoted"', "ages": [70.0, 75.5], "n": 3, "on": True,
                               "weird key": "x"}
    assert back["model"] == tables["model"]


def test_config_toml_replays_the_same_options(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    filt = tmp_path / "filter.json"
    filt.write_text(json.dumps({"t1w": {"run": 2}}))
    argv = [str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "02",
            "--bids-filter-file", str(filt), "--nprocs", "2", "-vv", "--seed", "7", "--target-ages", "80",
            "--plugin-args", '{"sbatch_args": "-p short"}', "--model", str(tmp_path / "m.pt"), "--native"]
    opts = parse_args(argv)
    path = write_run_config(tmp_path / "logs" / "run1" / "config.toml", opts, build_parser(), run_id="run1",
                            model={"seed": 3, "steps": 10})
    data = tomllib.loads(path.read_text())
    assert data["seeds"] == {"seed": 7, "model_seed": 3} and data["model"]["steps"] == 10
    assert data["options"]["participant_label"] == ["01", "02"]
    replayed = parse_args(["--replay-run", str(path)])
    assert vars(replayed) == {**vars(opts), "replay_run": None}
    # options given besides the file override it
    assert parse_args(["--replay-run", str(path), "--nprocs", "1"]).nprocs == 1


def test_replay_given_a_model_preset_says_so_in_one_line(tmp_path, capsys):
    preset = tmp_path / "tiny.json"
    preset.write_text(json.dumps({"extends": "demo", "steps": 2}))
    for given, expected in ((str(preset), "is a model preset (a training configuration, given with --config)"),
                            ("full", "full is a model preset name (give it to --config)"),
                            (str(tmp_path / "none.toml"), "no such file")):
        assert main(["--replay-run", given]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("daninet: error: ") and expected in err[0], err
    broken = tmp_path / "broken.toml"
    broken.write_text("[run]\nid = 'x'\n")
    with pytest.raises(ValueError, match=r"no \[command\] argv"):
        read_replay_argv(broken)


def test_a_bad_preset_name_fails_in_one_line_before_any_node_runs(demo_bids, tmp_path, capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    code = main([str(demo_bids), str(out), "group", "--config", "nosuch", "--skip-bids-validation", "-w", str(work)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "'nosuch' is neither a file nor a preset" in err[0], err
    assert not work.exists() and not (out / "logs").exists()


def test_the_methods_paragraph_names_tools_versions_template_and_model():
    from daninet_pipeline.model.config import TrainConfig
    from daninet_pipeline.reports.citation import citation_text
    from daninet_pipeline.workflows.group import init_group_wf

    wf = init_group_wf(output_dir="out", config="demo")
    text = citation_text(level="group", workflow=wf, model_name="demo",
                         model_config=TrainConfig.from_file("demo").to_dict())
    cfg = TrainConfig.from_file("demo")
    assert "daninet_pipeline" in text and "nipype" in text and "torch" in text
    assert "MNI152NLin2009aSym" in text and "conditional adversarial autoencoder" in text
    assert f"The model configuration `demo` used {cfg.image_size} x {cfg.image_size} px" in text
    assert f"{cfg.steps} steps" in text


def test_the_group_paragraph_describes_the_evaluation_only_when_it_runs():
    from daninet_pipeline.evaluation.measure import QUICK_SYN_VOXEL_MM
    from daninet_pipeline.reports.citation import citation_text
    from daninet_pipeline.workflows.group import init_group_wf

    with_eval = citation_text(level="group", workflow=init_group_wf(output_dir="out", config="demo"))
    without = citation_text(level="group", workflow=init_group_wf(output_dir="out", config="demo", evaluate=False))
    for words in ("last scan before it", "identity", "population mean", "tensor-based morphometry",
                  f"grid of {QUICK_SYN_VOXEL_MM:g} mm", "bootstrap 95% intervals resampling test subjects"):
        assert words in with_eval and words not in without, words
