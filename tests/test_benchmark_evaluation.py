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


def test_the_select_stage_chooses_a_step_on_the_validation_split_and_the_evaluate_stage_scores_it(
        tmp_path, monkeypatch):
    import pandas as pd

    from daninet_pipeline.evaluation import evaluate
    from daninet_pipeline.training import sessions

    bench = _benchmark()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "bench-full.json").write_text(json.dumps({"extends": "full", "steps": 300}))
    monkeypatch.setattr(bench, "HERE", tmp_path)
    root = tmp_path / "run"
    models = root / "out" / "models" / "bench-full"
    (models / "steps").mkdir(parents=True)
    for name in ("model.pt", "steps/model_step-000100.pt", "steps/model_step-000200.pt"):
        (models / name).write_bytes(b"")
    pd.DataFrame({"subject": ["001", "002", "003"], "split": ["train", "validation", "test"]}).to_csv(
        models / "split.tsv", sep="\t", index=False)

    class Candidate:
        def __init__(self, name, model_file, modes=("direct", "change")):
            self.name, self.model_file, self.modes = name, model_file, modes

    asked = {}

    def choose(candidates, table, split, **kwargs):
        asked["candidates"] = {c.name: Path(c.model_file).name for c in candidates}
        asked["modes"] = {c.modes for c in candidates}
        asked["split"] = dict(zip(split["subject"], split["split"]))
        return "step200", pd.Series({"step100": 0.05, "step200": 0.04, "step300": 0.06})

    monkeypatch.setattr(evaluate, "ModelPredictor", Candidate)
    monkeypatch.setattr(evaluate, "choose_on_validation", choose)
    monkeypatch.setattr(evaluate, "ground_truth_volumes", lambda bids: None)
    monkeypatch.setattr(sessions, "gather_sessions", lambda bids, out: (pd.DataFrame(), []))
    scored = []
    monkeypatch.setattr(bench, "stage_evaluate",
                        lambda root, opts: scored.append(bench.model_to_score(root, "full").name))
    args = [str(root), "--configs", "full", "--stages", "select", "evaluate", "--measurements", "tbm"]
    bench.main(args)
    assert asked["candidates"] == {"step100": "model_step-000100.pt", "step200": "model_step-000200.pt",
                                   "step300": "model.pt"}
    assert asked["modes"] == {("change",)}  # the choice is on change mode, the primary comparison's
    assert asked["split"] == {"001": "train", "002": "validation", "003": "test"}  # labels kept as text
    chosen = json.loads((models / "chosen.json").read_text())
    assert chosen["step"] == 200 and chosen["validation_error"]["step200"] == 0.04
    assert scored == ["model_step-000200.pt"]
    bench.main(args)  # resumed: nothing to do
    assert scored == ["model_step-000200.pt"]
    # another choice (the select stage run again) is scored again
    (models / "chosen.json").write_text(json.dumps({**chosen, "step": 300, "model_file": str(models / "model.pt")}))
    bench.main(args)
    assert scored == ["model_step-000200.pt", "model.pt"]
