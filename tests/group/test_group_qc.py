"""Issue 13, item 5: the group level's QC table and ``--exclude-sessions``."""

from __future__ import annotations

import json

import pandas as pd

from daninet_pipeline.bids.naming import derivative_path
from daninet_pipeline.cli.run import main
from daninet_pipeline.qc import QC_MEASURES, read_excluded_sessions, read_group_qc

from .conftest import TINY_CONFIG, fake_derivatives


def _fake_qc(bids, out, odd: str):
    """A QC table for every session: alike, but ``odd`` (a T1w name) has half a brain."""
    for i, t1w in enumerate(sorted(bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))):
        values = {m: 1.0 + 0.01 * (i % 5) for m in QC_MEASURES}
        values["brain_volume_ml"] = 1200.0 + 10 * (i % 7)
        if t1w.name == odd:
            values["brain_volume_ml"] = 600.0
        path = derivative_path(out, t1w, "qc")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\t".join(values) + "\n" + "\t".join(str(v) for v in values.values()) + "\n")


def test_excluded_sessions_are_left_out_of_training_and_evaluation(demo_bids, tmp_path, capsys):
    from daninet_pipeline.model.modelfile import load_model_file

    out = tmp_path / "out"
    fake_derivatives(demo_bids, out)
    t1ws = sorted(demo_bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))
    by_subject = {}
    for p in t1ws:
        by_subject.setdefault(p.parts[-4], []).append(p)
    # the last session of two subjects with 3 or more (every subject keeps a pair)
    big = [v for v in by_subject.values() if len(v) >= 3]
    assert len(big) >= 2
    one, other = big[0][-1], big[1][-1]
    odd = next(v for v in by_subject.values() if v not in big[:2])[0] if len(by_subject) > 2 else big[0][0]
    _fake_qc(demo_bids, out, odd=odd.name)
    exclude = tmp_path / "exclude.tsv"
    exclude.write_text("participant_id\tsession_id\treason\n"
                       f"{other.parts[-4][4:]}\t{other.parts[-3][4:]}\trated unusable\n"
                       f"{one.parts[-4]}\t{one.parts[-3]}\tmotion\n")
    n_excluded = 2
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    code = main([str(demo_bids), str(out), "group", "--work-dir", str(tmp_path / "work"), "--seed", "1",
                 "--nprocs", "1", "--plugin", "Linear", "--skip-bids-validation", "--config", str(config),
                 "--exclude-sessions", str(exclude)])
    assert code == 0
    folder = out / "models" / "tiny"
    split = pd.read_csv(folder / "split.tsv", sep="\t", dtype={"subject": str})
    assert split["sessions"].sum() == len(t1ws) - n_excluded
    trained = load_model_file(folder / "model.pt")["training"]["n_volumes"]
    # (a session whose diagnosis is n/a and whose neighbours disagree is also left out)
    assert 0 < trained <= split.loc[split["split"] == "train", "sessions"].sum()
    ev = pd.read_csv(folder / "group_eval.tsv", sep="\t", dtype={"subject": str, "followup_session": str})
    for gone in (one, other):
        assert not ((ev["subject"] == gone.parts[-4][4:]) & (ev["followup_session"] == gone.parts[-3][4:])).any()

    excluded = read_excluded_sessions(folder)
    assert len(excluded) == n_excluded and list(excluded.columns) == ["participant_id", "session_id", "reason"]
    assert sorted(excluded.values.tolist()) == sorted([
        [other.parts[-4], other.parts[-3], "rated unusable"], [one.parts[-4], one.parts[-3], "motion"]])
    qc = read_group_qc(folder)
    assert len(qc) == len(t1ws) and qc["excluded"].sum() == n_excluded
    flagged = qc[qc["outlier"]]
    assert flagged["t1w"].tolist() == [odd.name]
    assert flagged["outlier_reason"].iloc[0].startswith("brain_volume_ml z=-")
    outliers = pd.read_csv(folder / "qc_outliers.tsv", sep="\t")
    assert outliers[["participant_id", "session_id"]].values.tolist() == [[odd.parts[-4], odd.parts[-3]]]
    assert "1 outlier(s) flagged" in capsys.readouterr().out
