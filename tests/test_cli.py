"""The ``daninet`` command line: BIDS-App arguments, version, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from daninet_pipeline import __version__
from daninet_pipeline.cli.parser import parse_args
from daninet_pipeline.cli.run import main


def test_version_is_printed_by_the_installed_command():
    out = subprocess.run([sys.executable, "-m", "daninet_pipeline.cli.run", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"daninet {__version__}"


def test_labels_lose_their_prefixes_and_paths_are_absolute(tmp_path):
    opts = parse_args([str(tmp_path / "bids"), "out", "participant", "--participant-label",
                       "sub-01", "02", "--session-label", "ses-M000", "--nprocs", "2",
                       "--plugin", "SLURM", "--plugin-args", '{"sbatch_args": "-p short"}'])
    assert opts.participant_label == ["01", "02"]
    assert opts.session_label == ["M000"]
    assert opts.output_dir.is_absolute() and opts.work_dir == opts.output_dir.parent / "work"
    assert opts.plugin_args == {"sbatch_args": "-p short"}


def test_unknown_analysis_level_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args([str(tmp_path), "out", "everything"])
    assert exc.value.code == 2


def test_bids_filter_file_must_be_json(tmp_path, capsys):
    bad = tmp_path / "filter.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit):
        parse_args([str(tmp_path), "out", "participant", "--bids-filter-file", str(bad)])
    assert "not valid JSON" in capsys.readouterr().err


def test_missing_dataset_exits_non_zero_with_one_line(tmp_path, capsys):
    code = main([str(tmp_path / "nothing"), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "not a directory" in err[0]


def test_invalid_dataset_is_stopped_by_the_validator(tmp_path, capsys):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset_description.json").write_text('{"Name": "x"}')
    (tmp_path / "ds" / "sub-01").mkdir()
    (tmp_path / "ds" / "sub-01" / "notbids.txt").write_text("x")
    code = main([str(tmp_path / "ds"), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert code == 1 and "BIDS validator found" in err and "--skip-bids-validation" in err


def test_simulation_with_a_missing_model_file_is_one_line(demo_bids, tmp_path, capsys):
    code = main([str(demo_bids), str(tmp_path / "out"), "participant", "--model",
                 str(tmp_path / "nope.pt"), "--skip-bids-validation"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"daninet: error: {tmp_path / 'nope.pt'}: model file not found"]


def test_logname_falls_back_to_the_uid_without_a_passwd_entry(monkeypatch):
    import getpass
    import os

    from daninet_pipeline.cli import run

    monkeypatch.delenv("LOGNAME", raising=False)

    def no_user():
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr(getpass, "getuser", no_user)
    run._ensure_logname()
    assert os.environ["LOGNAME"] == str(os.getuid())


def test_nipype_lines_are_logged_once(tmp_path):
    import subprocess
    import sys

    code = ("import logging; from daninet_pipeline.cli.run import _setup_logging; _setup_logging(0); "
            "import nipype.pipeline.engine; "  # as a run does, after setting up logging
            "logging.getLogger('nipype.workflow').info('hello from nipype')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (out.stdout + out.stderr).count("hello from nipype") == 1


def _model_file_cases(path):
    import torch

    from daninet_pipeline.model.modelfile import MODEL_FORMAT, MODEL_FORMAT_VERSION

    yield "garbage", b"\x00not a model" * 100, "not a readable DaniNet model file"
    torch.save({"weights": [1, 2]}, path)
    yield "other", path.read_bytes(), "not a DaniNet model file"
    torch.save({"format": MODEL_FORMAT, "format_version": 99, "package_version": "9.9"}, path)
    yield "version", path.read_bytes(), "format 99"
    torch.save({"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "config": {"no_such_field": 1},
                "nets": {}}, path)
    yield "config", path.read_bytes(), "configuration is not valid for this version"


def test_a_bad_model_file_is_one_line_before_any_node_runs(demo_bids, tmp_path, capsys):
    """Issue 12, item 7: the model file is read and checked before the workflow is built."""
    from .group.conftest import fake_derivatives

    out, work = tmp_path / "out", tmp_path / "work"
    fake_derivatives(demo_bids, out)
    for name, payload, reason in _model_file_cases(tmp_path / "scratch.pt"):
        model = tmp_path / f"{name}.pt"
        model.write_bytes(payload)
        code = main([str(demo_bids), str(out), "participant", "--model", str(model),
                     "--skip-bids-validation", "-w", str(work)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1, err
        assert err[0].startswith(f"daninet: error: {model}: ") and reason in err[0], err[0]
        assert not (work / "daninet_simulation_wf").exists()
        assert not list(out.rglob("crash-*"))
