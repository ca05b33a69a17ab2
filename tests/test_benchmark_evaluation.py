"""The evaluation benchmark's stages (benchmarks/evaluation.py): resumable, and re-run
when what they were made from changed."""

import importlib.util
import json
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "evaluation.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("evaluation_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_edited_preset_is_trained_and_evaluated_again_instead_of_skipped(tmp_path, monkeypatch):
    bench = _benchmark()
    (tmp_path / "configs").mkdir()
    preset = tmp_path / "configs" / "bench-full.json"
    preset.write_text(json.dumps({"extends": "full", "age_max": 90.0}))
    monkeypatch.setattr(bench, "HERE", tmp_path)
    ran = []
    monkeypatch.setattr(bench, "stage_train", lambda root, name, opts: ran.append(f"train-{name}"))
    monkeypatch.setattr(bench, "stage_evaluate", lambda root, opts: ran.append("evaluate"))
    args = [str(tmp_path / "run"), "--configs", "full", "--stages", "train", "evaluate", "--measurements", "tbm"]
    bench.main(args)
    bench.main(args)
    assert ran == ["train-full", "evaluate"]  # the second call resumed: nothing to do
    preset.write_text(json.dumps({"extends": "full", "age_max": 96.0}))
    bench.main(args)
    print("stages run:", ran)
    assert ran == ["train-full", "evaluate", "train-full", "evaluate"]
    bench.main(args)
    assert len(ran) == 4
