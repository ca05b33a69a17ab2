"""Subject split, and the evaluation of every method from the same starting scan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.evaluation.baselines import IDENTITY, LINEAR, ORACLE, POPULATION_MEAN, PopulationMean
from daninet_pipeline.evaluation.evaluate import (
    evaluate_pairs,
    followup_pairs,
    ground_truth_volumes,
    horizon_of,
    supervised_regions,
)
from daninet_pipeline.evaluation.report import summarise, write_evaluation
from daninet_pipeline.evaluation.split import split_subjects

TPL = "MNI152NLin2009aSym"


def _sessions(n_subjects, rng):
    rows = []
    for s in range(n_subjects):
        dx = ["CN", "MCI", "AD"][s % 3]
        for k in range(rng.integers(2, 5)):
            rows.append({"subject": f"S{s:03d}", "age": 70 + k, "diagnosis": dx})
    return pd.DataFrame(rows)


def test_split_keeps_subjects_whole_and_is_stratified_and_seeded():
    table = _sessions(60, np.random.default_rng(0))
    split = split_subjects(table, seed=4)
    assert split["subject"].is_unique and len(split) == 60
    assert split["split"].value_counts().to_dict() == {"train": 42, "validation": 9, "test": 9}
    counts = split.groupby(["stratum", "split"]).size().unstack()
    assert ((counts - pd.Series({"train": 14, "validation": 3, "test": 3})).abs() <= 1).all().all()
    assert split.equals(split_subjects(table, seed=4))
    assert not split["split"].equals(split_subjects(table, seed=5)["split"])
    assert split["sessions"].sum() == len(table)


def test_small_cohorts_still_get_a_test_subject():
    split = split_subjects(_sessions(3, np.random.default_rng(0)), seed=0)
    assert split["split"].value_counts().to_dict() == {"train": 2, "test": 1}


def test_split_refuses_bad_fractions():
    with pytest.raises(ValueError, match="summing to 1"):
        split_subjects(_sessions(3, np.random.default_rng(0)), fractions=(0.5, 0.5, 0.5))


def test_split_node_takes_other_shares_of_the_subjects(tmp_path):
    from daninet_pipeline.interfaces.group import SplitSubjects
    from daninet_pipeline.workflows.group import init_group_wf

    table = _sessions(60, np.random.default_rng(0))
    tsv = tmp_path / "sessions.tsv"
    table.to_csv(tsv, sep="\t", index=False)
    node = SplitSubjects(sessions_tsv=str(tsv), seed=4, fractions=(0.5, 0.1, 0.4))
    node.run(cwd=str(tmp_path))
    split = pd.read_csv(tmp_path / "split.tsv", sep="\t")
    assert split["split"].value_counts().to_dict() == {"train": 30, "test": 24, "validation": 6}
    assert SplitSubjects().inputs.fractions == (0.7, 0.15, 0.15)
    wf = init_group_wf(output_dir=tmp_path / "out", config="demo", split_fractions=(0.5, 0.1, 0.4), evaluate=False)
    assert wf.get_node("split").inputs.fractions == (0.5, 0.1, 0.4)


def test_evaluation_workflow_takes_a_coarser_tbm_grid_and_says_so(tmp_path):
    from daninet_pipeline.workflows.evaluation import init_evaluation_wf

    wf = init_evaluation_wf(subjects=["01"], models={}, out_dir=tmp_path, syn_voxel_mm=2.0)
    assert wf.get_node("evaluate_subject").inputs.syn_voxel_mm == 2.0
    assert wf.get_node("write").inputs.syn_voxel_mm == 2.0
    native = init_evaluation_wf(subjects=["01"], models={}, out_dir=tmp_path)
    assert not isinstance(native.get_node("evaluate_subject").inputs.syn_voxel_mm, float)


def test_an_added_run_scores_its_horizons_without_the_baselines_and_keeps_earlier_runs_cached(tmp_path):
    from daninet_pipeline.interfaces.evaluation import EvaluateSubject
    from daninet_pipeline.workflows.evaluation import init_evaluation_wf

    wf = init_evaluation_wf(subjects=["01"], models={}, out_dir=tmp_path, min_years=3.0, baselines=False,
                            name="evaluation_wf_added")
    node = wf.get_node("evaluate_subject")
    assert wf.name == "evaluation_wf_added"
    assert node.inputs.min_years == 3.0 and node.inputs.baselines is False
    # left unset they are not hashed: a run from before these inputs existed stays cached
    whole = init_evaluation_wf(subjects=["01"], models={}, out_dir=tmp_path).get_node("evaluate_subject")
    inputs = {**whole.inputs.get_traitsfree(), "subject": "01"}
    hashed = [name for name, _ in EvaluateSubject(**inputs).inputs.get_hashval()[0]]
    assert "measurements" in hashed and not {"min_years", "baselines"} & set(hashed)


def test_horizons():
    assert [horizon_of(y) for y in (0.5, 1.0, 2.9, 3.0, 4.99, 5.0, 8.0)] == [
        "<1", "1-3", "1-3", "3-5", "3-5", ">=5", ">=5"]
    with pytest.raises(ValueError):
        horizon_of(-1)


def test_regions_outside_l_reg_are_scored_apart():
    sup = supervised_regions()
    assert {"Left_Hippocampus", "Left_Ventricle", "Left_Entorhinal"} <= sup
    assert not {"Left_Precuneus", "Right_PosteriorCingulate"} & sup


def truth_sessions(demo_bids) -> pd.DataFrame:
    """The demo dataset's sessions with its noise-free template-space truth standing in
    for the participant level's derivatives."""
    root = demo_bids / "derivatives" / "ground_truth"
    rows = []
    for tsv in sorted(demo_bids.glob("sub-*/sub-*_sessions.tsv")):
        sub = tsv.parent.name
        for _, r in pd.read_csv(tsv, sep="\t").iterrows():
            ses = r["session_id"]
            anat = root / sub / ses / "anat"
            rows.append({"subject": sub[4:], "session": ses[4:], "age": float(r["age"]),
                         "diagnosis": r["diagnosis"] if isinstance(r["diagnosis"], str) else None,
                         "t1w": str(demo_bids / sub / ses / "anat" / f"{sub}_{ses}_T1w.nii.gz"),
                         "preproc": str(anat / f"{sub}_{ses}_space-{TPL}_desc-noisefree_T1w.nii.gz"),
                         "mask": str(anat / f"{sub}_{ses}_space-{TPL}_desc-brain_mask.nii.gz")})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def evaluated(demo_bids):
    sessions = truth_sessions(demo_bids)
    counts = sessions.groupby("subject").size().sort_values()
    test = counts.index[counts >= 3][0]  # three sessions: two follow-ups, one with a linear row
    split = pd.DataFrame({"subject": counts.index,
                          "split": ["test" if s == test else "train" for s in counts.index]})
    pairs = followup_pairs(sessions, split, truth=ground_truth_volumes(demo_bids))
    rows = evaluate_pairs(pairs, population_mean=PopulationMean.fit(sessions, split), measurements=("tbm",),
                          syn_iterations=(10,))  # one level at full resolution: fast enough for a test
    return sessions, split, pairs, rows


def test_every_followup_starts_from_the_last_scan_before_it(evaluated):
    sessions, split, pairs, _ = evaluated
    test = split.loc[split["split"] == "test", "subject"].iloc[0]
    own = sessions[sessions["subject"] == test].sort_values("age")
    assert [(p.start_session, p.followup_session) for p in pairs] == list(zip(own["session"], own["session"][1:]))
    assert [len(p.earlier) for p in pairs] == list(range(1, len(own)))
    assert all(p.true_change is not None and "Left_Precuneus" in p.true_change for p in pairs)


def test_methods_are_paired_and_the_oracle_is_the_floor(evaluated, tmp_path):
    _, _, pairs, rows = evaluated
    per_method = rows.groupby("method").size()
    assert per_method[ORACLE] == per_method[IDENTITY] == per_method[POPULATION_MEAN] == len(pairs)
    assert per_method[LINEAR] == len(pairs) - 1  # the first follow-up has one scan up to its start
    by = rows.set_index(["followup_session", "method"])["error"]
    for p in pairs:
        truth = np.mean([abs(v) for k, v in p.true_change.items() if k != "Brain"])
        assert by[(p.followup_session, IDENTITY)] == pytest.approx(truth, rel=1e-6)  # identity: no change
        # TBM of the real follow-up recovers the true change better than no change at all
        assert by[(p.followup_session, ORACLE)] < 0.5 * by[(p.followup_session, IDENTITY)]
    assert rows["error_unsupervised"].notna().all() and rows["error_supervised"].notna().all()
    from daninet_pipeline.evaluation.evaluate import ROW_COLUMNS  # an empty table's header

    assert list(rows.columns[:len(ROW_COLUMNS)]) == list(ROW_COLUMNS)
    tsv, md = write_evaluation(rows, tmp_path)
    text = md.read_text()
    assert pd.read_csv(tsv, sep="\t").shape[0] == len(rows)
    assert "Primary comparison" in text and "not available in this run" in text
    assert "| tbm |" in text and "95% interval" in text
    summary = summarise(rows)
    assert list(summary["method"][:3]) == [ORACLE, IDENTITY, POPULATION_MEAN]


def test_followups_can_be_limited_to_those_far_enough_ahead(evaluated):
    sessions, split, pairs, _ = evaluated
    longest = max(p.years for p in pairs)
    far = followup_pairs(sessions, split, min_years=longest)
    assert [(p.followup_session, p.years) for p in far] == [(p.followup_session, p.years) for p in pairs
                                                            if p.years >= longest]
    assert followup_pairs(sessions, split, min_years=longest + 0.01) == []


def test_a_second_run_adds_its_models_on_its_own_followups_only_when_it_measured_alike(evaluated):
    from daninet_pipeline.evaluation.report import join_runs

    _, _, pairs, rows = evaluated
    last = rows["followup_session"] == pairs[-1].followup_session
    extra = rows[last & rows["method"].isin([IDENTITY, ORACLE])]
    other = rows[last & (rows["method"] == POPULATION_MEAN)].assign(method="other", error=0.5)
    joined, gap = join_runs(rows, pd.concat([extra, other]))
    assert gap == 0.0
    assert set(joined["followup_session"]) == {pairs[-1].followup_session}
    assert sorted(joined["method"]) == sorted([*rows.loc[last, "method"], "other"])
    with pytest.raises(ValueError, match="measured differently: identity/oracle errors differ by up to 0.001"):
        join_runs(rows, pd.concat([extra.assign(error=extra["error"] + 1e-3), other]))
    with pytest.raises(ValueError, match="must score identity and oracle"):
        join_runs(rows, pd.concat([extra[extra["method"] == IDENTITY], other]))
    with pytest.raises(ValueError, match="the first run has no tbm row for sub-"):
        join_runs(rows[~last], pd.concat([extra, other]))


def test_rows_say_where_the_time_goes_and_the_table_the_measurement_setting(evaluated):
    from daninet_pipeline.evaluation.report import measurement_note

    _, _, pairs, rows = evaluated
    assert rows[["seconds_prediction", "seconds_measurement", "seconds_start_segmentation"]].ge(0).all().all()
    # identity is measured without a registration (an image against itself has no change)
    assert (rows.loc[rows["method"] == IDENTITY, "seconds_prediction"] == 0).all()
    note = measurement_note(rows, (10,))
    assert "SyN iterations 10 per level (1 level" in note and f"{len(pairs)} follow-ups" in note
    assert "Atropos" not in note.split("Time")[0]


class _Fixed:
    """A stand-in checkpoint: predicts the real follow-up (``perfect``) or no change."""

    def __init__(self, name, perfect):
        self.name, self.perfect = name, perfect

    def predict(self, pair, start):
        import nibabel as nib

        image = np.asarray(nib.load(pair.followup).dataobj, np.float32) if self.perfect else start
        return {self.name + "-change": image}


def test_the_validation_split_chooses_the_checkpoint_and_the_test_split_is_never_read(demo_bids, tmp_path):
    # in two processes, as the benchmark's select stage runs it
    from daninet_pipeline.evaluation.evaluate import choose_on_validation

    sessions = truth_sessions(demo_bids)
    subjects = sorted(sessions["subject"].unique())
    split = pd.DataFrame({"subject": subjects, "split": ["validation", "test", "train"][:len(subjects)]})
    test = split.loc[split["split"] == "test", "subject"].iloc[0]
    sessions.loc[sessions["subject"] == test, "preproc"] = str(tmp_path / "missing.nii.gz")
    chosen, scores = choose_on_validation([_Fixed("step100", False), _Fixed("step300", True)], sessions, split,
                                          truth=ground_truth_volumes(demo_bids), syn_iterations=(10,), nprocs=2)
    print("validation errors:", scores.to_dict())
    assert chosen == "step300" and scores["step300"] < scores["step100"]


def test_rows_and_table_say_which_followups_lie_outside_a_models_ages(evaluated, tmp_path):
    from daninet_pipeline.evaluation.evaluate import predictions_for, score_pair

    _, _, pairs, rows = evaluated
    last = pairs[-1]

    class _Aged(_Fixed):  # a stand-in whose age groups end before the last follow-up
        age_span = (min(p.start_age for p in pairs) - 1.0, last.followup_age - 0.5)

    outside = {}
    preds = predictions_for(last, models=[_Aged("young", False)], linear=False, outside=outside)
    new = pd.DataFrame(score_pair(last, preds, measurements=("tbm",), syn_iterations=(10,), outside=outside))
    print("outside_model_ages per method:", dict(zip(new["method"], new["outside_model_ages"])))
    assert dict(zip(new["method"], new["outside_model_ages"])) == {ORACLE: False, IDENTITY: False,
                                                                   "young-change": True}
    # the table counts them, with the model's span; a run without such follow-ups says none
    _, md = write_evaluation(pd.concat([rows.assign(outside_model_ages=False), new]), tmp_path)
    assert "1 of 2 same-scanner follow-ups lie outside a model's ages" in md.read_text()
    # joined to rows of a run made before the column: those are not counted as outside
    from daninet_pipeline.evaluation.report import outside_line

    before_the_column = rows.drop(columns="outside_model_ages")
    assert outside_line(pd.concat([before_the_column, new])).startswith("1 of 2 same-scanner follow-ups")
    assert not rows["outside_model_ages"].any()


def test_the_compact_table_gives_each_method_its_interval_and_verdict_per_horizon_and_pooled():
    from daninet_pipeline.evaluation.report import compact_table

    rng = np.random.default_rng(0)
    rows = []
    for k in range(8):
        for horizon, scale in (("3-5", 1.0), (">=5", 2.0)):
            errors = {ORACLE: 0.03, IDENTITY: 0.10 * scale, POPULATION_MEAN: 0.05 * scale,
                      "m-change": 0.08 * scale + rng.normal(0, 0.002), LINEAR: 0.09 * scale}
            for method, error in errors.items():
                if method == LINEAR and k >= 3:  # too few subjects with two scans up to the start
                    continue
                rows.append({"subject": f"s{k}", "start_session": "M000", "followup_session": horizon,
                             "horizon": horizon, "measurement": "tbm", "scanner_change": False,
                             "method": method, "error": error})
    text = compact_table(pd.DataFrame(rows))
    lines = {line.split(" | ")[0].strip("| `"): line for line in text.splitlines() if line.startswith("| `")}
    assert list(lines) == [ORACLE, IDENTITY, POPULATION_MEAN, LINEAR, "m-change"]
    cells = lines["m-change"].strip("| ").split(" | ")
    assert [float(c) for c in cells[1:3]] == pytest.approx([0.08, 0.16], abs=0.002)
    assert [c.split()[-1] for c in cells[3:]] == ["better"] * 3 + ["worse"] * 3
    # differences per horizon: 0.08 - 0.10 and 0.08 - 0.05 at 3-5 years (noise sd 0.002 / sqrt 8)
    assert [float(cells[3].split()[0]), float(cells[6].split()[0])] == pytest.approx([-0.02, 0.03], abs=0.002)
    assert "too few subjects (n = 3)" in lines[LINEAR]
    assert "3-5 years: 8 follow-ups of 8 subjects; >=5 years: 8 follow-ups of 8 subjects" in text
