"""daninet-rating score: Fleiss' kappa, unblinding, bootstrap intervals, refusals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from daninet_pipeline.rating.order import candidate_order, fnv1a32, seeded_permutation, trial_order
from daninet_pipeline.rating.score import fleiss_kappa, long_table, score_study
from daninet_pipeline.errors import RatingError

from .helpers import write_answers, write_key

CONFIGS = ["full-residual", "base", "identity"]

# Fleiss (1971), Psychological Bulletin 76(5): 378-382, as reproduced in most textbooks
# (and Wikipedia's "Fleiss' kappa"): 10 subjects, 14 raters, 5 categories, kappa = 0.210.
FLEISS_EXAMPLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_fleiss_kappa_textbook_example():
    # P-bar = 0.378, P-bar_e = 0.213 in the worked example
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.2099, abs=5e-4)


def test_fleiss_kappa_limits_and_bad_input():
    assert fleiss_kappa([[3, 0, 0], [0, 3, 0], [0, 0, 3]]) == pytest.approx(1.0)
    # raters split as evenly as possible on every item: agreement below chance
    assert fleiss_kappa([[1, 1], [1, 1], [1, 1]]) == pytest.approx(-1.0)
    assert np.isnan(fleiss_kappa([[2, 0], [2, 0]]))  # one category only: undefined
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 0], [1, 2]])
    with pytest.raises(ValueError, match="items x categories"):
        fleiss_kappa([1, 2, 3])


def test_seeded_order_is_a_fixed_permutation_that_differs_between_raters():
    assert fnv1a32("") == 0x811C9DC5
    perms = {tuple(candidate_order("s1", f"r{i}", "t1", 4)) for i in range(40)}
    assert all(sorted(p) == [0, 1, 2, 3] for p in perms)
    assert len(perms) > 10  # 24 possible orders; raters see different ones
    assert trial_order("s1", "r1", 40) == trial_order("s1", "r1", 40)
    assert trial_order("s1", "r1", 40) != trial_order("s1", "r2", 40)
    assert seeded_permutation(1, "x") == [0]
    # every position is reached about equally often (uniform shuffle)
    first = np.bincount([seeded_permutation(3, f"k{i}")[0] for i in range(3000)], minlength=3)
    assert first.min() > 900


def test_always_one_configuration_gives_100_percent_with_a_degenerate_interval(tmp_path):
    key = write_key(tmp_path / "study", "study1", CONFIGS, 12, trials_per_subject=2)
    answers = write_answers(tmp_path / "answers_r1.tsv", key, "r1",
                            lambda tid, shown: (shown.index("base"), None))
    table, summary, text = score_study(tmp_path / "study", [answers], n_boot=500)
    pooled = table[table["rater"] == "all"].set_index("configuration")
    assert pooled.loc["base", ["share", "share_ci_low", "share_ci_high"]].tolist() == [1.0, 1.0, 1.0]
    for other in ("full-residual", "identity"):
        assert pooled.loc[other, ["share", "share_ci_low", "share_ci_high"]].tolist() == [0.0, 0.0, 0.0]
    assert pooled.loc["base", "first"] == 12 and pooled.loc["base", "offered"] == 12
    assert pooled.loc["base", "mean_rank"] == 1.0
    # the two others share ranks 2 and 3 when no second choice is given
    assert pooled.loc["identity", "mean_rank"] == 2.5
    assert summary["FleissKappa"] is None and "Fleiss' kappa n/a" in text
    assert "| base | 12/12 | 100% (100%-100%)" in text
    written = pd.read_csv(tmp_path / "study" / "results" / "scores.tsv", sep="\t")
    assert set(written["study_id"]) == {"study1"}
    assert (tmp_path / "study" / "results" / "scores.png").stat().st_size > 1000


def test_uniform_random_raters_give_overlapping_intervals(tmp_path):
    key = write_key(tmp_path / "study", "study2", CONFIGS, 40)
    rng = np.random.default_rng(20261130)
    files = []
    for rater in ("r1", "r2", "r3"):
        def choose(tid, shown):
            first, second = rng.choice(len(shown), size=2, replace=False)
            return int(first), int(second)
        files.append(write_answers(tmp_path / f"answers_{rater}.tsv", key, rater, choose))
    table, summary, _ = score_study(tmp_path / "study", files, n_boot=2000, seed=1)
    pooled = table[table["rater"] == "all"]
    assert pooled["offered"].tolist() == [120, 120, 120]
    assert pooled["first"].sum() == 120
    assert pooled["share_ci_low"].max() < pooled["share_ci_high"].min()  # every pair overlaps
    assert (pooled["share_ci_high"] - pooled["share_ci_low"]).min() > 0.1
    assert summary["Subjects"] == 40 and summary["KappaTrials"] == 40
    assert abs(summary["FleissKappa"]) < 0.15
    per_rater = table[table["rater"] != "all"].groupby("rater")["first"].sum()
    assert per_rater.tolist() == [40, 40, 40]


def test_mean_rank_uses_the_second_choice():
    answers = pd.DataFrame([{"rater": "r", "trial_id": "t", "subject": "s", "first": "a", "second": "b",
                             "offered": ("a", "b", "c", "d"), "seconds": 1.0}])
    ranks = long_table(answers).set_index("configuration")["rank"]
    assert ranks.to_dict() == {"a": 1.0, "b": 2.0, "c": 3.5, "d": 3.5}


def _score_cli(*args):
    return subprocess.run([sys.executable, "-m", "daninet_pipeline.rating", "score", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_score_refuses_answers_of_another_study_with_one_line(tmp_path):
    key = write_key(tmp_path / "study", "study3", CONFIGS, 4)
    other = write_key(tmp_path / "other", "elsewhere", CONFIGS, 4)
    good = write_answers(tmp_path / "answers_r1.tsv", key, "r1", lambda tid, shown: (0, None))
    foreign = write_answers(tmp_path / "answers_r2.tsv", other, "r2", lambda tid, shown: (0, None))
    proc = _score_cli(tmp_path / "study", good, foreign)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "answers of study elsewhere, not of this study (study3)" in proc.stderr
    assert not (tmp_path / "study" / "results").exists()
    ok = _score_cli(tmp_path / "study", good)
    assert ok.returncode == 0, ok.stderr
    assert "| identity |" in ok.stdout


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.assign(first_image="0" * 16), "is not image"),
    (lambda t: t.assign(first="Z"), "is not one of A..C"),
    (lambda t: t.assign(trial_id="nope"), "is not in this study"),
    (lambda t: t.assign(seconds="soon"), "is not a number"),
    (lambda t: t.drop(columns="first_image"), "no column first_image"),
    (lambda t: pd.concat([t, t]), "answered twice"),
])
def test_bad_answers_are_refused(tmp_path, edit, message):
    key = write_key(tmp_path / "study", "study4", CONFIGS, 3)
    path = write_answers(tmp_path / "answers_r1.tsv", key, "r1", lambda tid, shown: (0, 1))
    edit(pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)).to_csv(path, sep="\t", index=False)
    with pytest.raises(RatingError, match=message):
        score_study(tmp_path / "study", [path])


def test_same_rater_twice_and_missing_key_are_refused(tmp_path):
    key = write_key(tmp_path / "study", "study5", CONFIGS, 3)
    a = write_answers(tmp_path / "a.tsv", key, "r1", lambda tid, shown: (0, None))
    b = write_answers(tmp_path / "b.tsv", key, "r1", lambda tid, shown: (1, None))
    with pytest.raises(RatingError, match="rater r1 already read"):
        score_study(tmp_path / "study", [a, b])
    proc = _score_cli(tmp_path / "nowhere", a)
    assert proc.returncode == 1 and "key.tsv: missing" in proc.stderr and "Traceback" not in proc.stderr
