"""Group level: gather -> split -> slice store -> SVRs + training -> evaluation -> card.

The participant-level derivatives are stood in for by the demo dataset's ground truth
(noise-free template-space images, skull-stripped with the true mask), so this test
checks the group level alone.
"""

from __future__ import annotations

import pandas as pd
import pytest

from daninet_pipeline.errors import BIDSInputError
from daninet_pipeline.training.sessions import gather_sessions, training_records
from daninet_pipeline.workflows.group import model_dir_of

from .conftest import fake_derivatives


def test_gather_names_subjects_without_derivatives(demo_bids, tmp_path):
    out = tmp_path / "out"
    first = sorted(p.name for p in demo_bids.glob("sub-*"))[0][4:]
    fake_derivatives(demo_bids, out, skip_subject=first)
    table, missing = gather_sessions(demo_bids, out)
    assert missing == [first]
    split = pd.DataFrame({"subject": table["subject"].unique(), "split": "train", "sessions": 1})
    with pytest.raises(BIDSInputError, match=f"sub-{first}: run the participant level first"):
        training_records(table, split)


def test_group_workflow_trains_evaluates_and_writes_a_card(trained_group):
    demo_bids, out, tiny_config = trained_group
    model_dir = model_dir_of(out, tiny_config)
    split = pd.read_csv(model_dir / "split.tsv", sep="\t")
    assert set(split["split"]) <= {"train", "validation", "test"} and split["subject"].is_unique
    assert (model_dir / "model.pt").is_file()
    losses = pd.read_csv(model_dir / "losses.tsv", sep="\t")
    assert losses["step"].max() == 5 and {"loss_def", "loss_vox", "loss_reg"} <= set(losses.columns)
    card = (model_dir / "model_card.md").read_text()
    assert "training steps: 6" in card and "split (subjects / sessions)" in card
    if (split["split"] == "test").any():
        ev = pd.read_csv(model_dir / "group_eval.tsv", sep="\t")
        fixed = {"oracle", "identity", "population-mean", "daninet", "daninet-change"}
        assert fixed <= set(ev["method"]) <= fixed | {"linear"}
        assert set(ev["measurement"]) == {"tbm"}
        assert ev["ssim"].between(-1, 1).all()
        assert "| identity |" in card
        # the group level's quick evaluation says its cuts (the tiny model has 2 transfer steps)
        text = (model_dir / "group_eval.md").read_text()
        assert "without** the model's transfer step (`daninet`: 2 steps configured)" in text
        assert "SyN iterations 5 per level" in text


def test_the_training_node_alone_takes_its_plugin_arguments():
    from daninet_pipeline.cli.parser import build_parser
    from daninet_pipeline.workflows.group import init_group_wf

    opts = build_parser().parse_args(["bids", "out", "group", "--train-plugin-args",
                                      '{"sbatch_args": "--partition=gpu --gpus=1"}'])
    wf = init_group_wf(bids_dir=".", output_dir="out", config="demo", train_plugin_args=opts.train_plugin_args)
    assert wf.get_node("train").plugin_args == {"sbatch_args": "--partition=gpu --gpus=1", "overwrite": True}
    others = [n for n in wf.list_node_names() if n != "train"]
    assert others and all(not wf.get_node(n).plugin_args for n in others)
