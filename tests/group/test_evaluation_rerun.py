"""The evaluation at scale (``workflows/evaluation.py: run_evaluation``, the benchmark's
``evaluate`` stage) resumes per subject: a second run of the same evaluation re-executes
no finished subject's node."""

from __future__ import annotations

import numpy as np
import pandas as pd

from daninet_pipeline.evaluation import measure
from daninet_pipeline.workflows.evaluation import run_evaluation
from daninet_pipeline.workflows.group import model_dir_of


def test_a_second_run_re_executes_no_finished_subject(trained_group, tmp_path, monkeypatch):
    bids, out, config = trained_group
    # what is measured does not matter here (tests/test_evaluation*.py): no registration,
    # so the test times the caching, not SyN (the nodes run in this process: Linear)
    monkeypatch.setattr(measure, "jacobian_determinant",
                        lambda start, other, zooms, **kwargs: np.ones(start.shape, np.float32))
    evaluation = dict(bids_dir=bids, output_dir=out, models={"tiny": model_dir_of(out, config) / "model.pt"},
                      out_dir=tmp_path / "evaluation", work_dir=tmp_path / "work", measurements=("tbm",),
                      plugin="Linear")
    run_evaluation(**evaluation)
    work = tmp_path / "work" / "evaluation_wf"
    results = sorted(work.glob("evaluate_subject/mapflow/_evaluate_subject*/result_*.pklz"))
    results += sorted(work.glob("population_mean/result_population_mean.pklz"))
    assert len(results) >= 2, results
    before = {p.name: p.stat().st_mtime_ns for p in results}
    rows = pd.read_csv(tmp_path / "evaluation" / "group_eval.tsv", sep="\t")
    assert not rows.empty

    run_evaluation(**evaluation)  # the stage restarted: everything it had finished is cached

    after = {p.name: p.stat().st_mtime_ns for p in results}
    rerun = sorted(name for name in before if after[name] != before[name])
    assert not rerun, f"re-executed on the second run: {rerun}"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "evaluation" / "group_eval.tsv", sep="\t"), rows)
