"""The evaluation at scale (``workflows/evaluation.py: run_evaluation``, the benchmark's
``evaluate`` stage) resumes per subject: a second run of the same evaluation re-executes
no finished subject's node."""

from __future__ import annotations

import json

import pandas as pd

from daninet_pipeline.training.sessions import gather_sessions
from daninet_pipeline.workflows.evaluation import run_evaluation
from daninet_pipeline.workflows.group import init_group_wf

from .conftest import TINY_CONFIG, fake_derivatives


def test_a_second_run_re_executes_no_finished_subject(demo_bids, tmp_path):
    out = tmp_path / "out"
    fake_derivatives(demo_bids, out)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    # a model trained as the benchmark's train stage does (no evaluation in the group workflow)
    table, _ = gather_sessions(demo_bids, out)
    table.to_csv(tmp_path / "sessions.tsv", sep="\t", index=False, na_rep="n/a")
    wf = init_group_wf(bids_dir=demo_bids, output_dir=out, config=str(config), seed=1, evaluate=False)
    wf.inputs.inputnode.sessions_tsv = str(tmp_path / "sessions.tsv")
    wf.base_dir = str(tmp_path / "train_work")
    wf.run(plugin="Linear")
    evaluation = dict(bids_dir=demo_bids, output_dir=out, models={"tiny": out / "models" / "tiny" / "model.pt"},
                      out_dir=tmp_path / "evaluation", work_dir=tmp_path / "work", measurements=("tbm",),
                      plugin="Linear")
    run_evaluation(**evaluation)
    work = tmp_path / "work" / "evaluation_wf"
    results = sorted(work.glob("evaluate_subject/mapflow/_evaluate_subject*/result_*.pklz"))
    results += sorted(work.glob("population_mean/result_population_mean.pklz"))
    assert len(results) >= 2, results
    before = {p.name: p.stat().st_mtime_ns for p in results}
    rows = pd.read_csv(tmp_path / "evaluation" / "group_eval.tsv", sep="\t")

    run_evaluation(**evaluation)  # the stage restarted: everything it had finished is cached

    after = {p.name: p.stat().st_mtime_ns for p in results}
    rerun = sorted(name for name in before if after[name] != before[name])
    assert not rerun, f"re-executed on the second run: {rerun}"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "evaluation" / "group_eval.tsv", sep="\t"), rows)
