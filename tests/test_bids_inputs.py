"""Reading T1w images, ages and diagnoses from BIDS datasets with pybids."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from daninet_pipeline.bids import impute_missing_diagnoses, load_sessions
from daninet_pipeline.errors import BIDSInputError

from .conftest import make_bids_tree

ADNI_PARTICIPANTS = ("participant_id\talternative_id_1\tsex\tage_bl\tdiagnosis_sc\n"
                     "sub-ADNI002S0295\t002_S_0295\tM\t84.8\tCN\n"
                     "sub-ADNI011S0003\t011_S_0003\tF\t81.3\tLMCI\n")
ADNI_SESSIONS = {
    "sub-ADNI002S0295": "session_id\texamination_date\tage\tdiagnosis\tMMSE\n"
                        "ses-M000\t2006-04-18\t84.8\tCN\t28\n"
                        "ses-M006\t2006-11-02\t85.3\tn/a\t29\n"
                        "ses-M012\t2007-05-04\t85.8\tCN\t28\n",
    "sub-ADNI011S0003": "diagnosis\tage\tsession_id\n"  # column order varies
                        "MCI\t81.3\tses-M00\n"
                        "AD\t82.3\tses-M12\n",
}


@pytest.fixture
def adni(tmp_path):
    return make_bids_tree(tmp_path / "adni",
                          {"sub-ADNI002S0295": ["ses-M000", "ses-M006", "ses-M012"],
                           "sub-ADNI011S0003": ["ses-M00", "ses-M12"]},
                          ADNI_PARTICIPANTS, ADNI_SESSIONS)


def test_demo_dataset_rows_match_files_and_sessions_tsv(demo_bids):
    table = load_sessions(demo_bids)
    assert len(table) == len(list(demo_bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz")))
    for sub, group in table.groupby("subject"):
        tsv = pd.read_csv(demo_bids / f"sub-{sub}" / f"sub-{sub}_sessions.tsv", sep="\t")
        expected = dict(zip(tsv["session_id"].str[4:], tsv["age"]))
        assert dict(zip(group["session"], group["age"])) == pytest.approx(expected)
    assert set(table["diagnosis"].dropna()) <= {"CN", "MCI", "AD"}


def test_clinica_adni_columns_in_any_order_and_old_session_labels(adni):
    table = load_sessions(adni)
    assert list(table["session"]) == ["M000", "M006", "M012", "M00", "M12"]
    assert list(table["age"]) == [84.8, 85.3, 85.8, 81.3, 82.3]
    assert table["diagnosis"].tolist()[3:] == ["MCI", "AD"]
    assert pd.isna(table.loc[1, "diagnosis"])  # 'n/a' stays missing


def test_adni_labels_fold_into_three_diagnoses(tmp_path):
    labels = ["CN", "SMC", "EMCI", "LMCI", "MCI", "AD", "Dementia"]
    rows = "".join(f"ses-{i:02d}\t{70 + i}\t{lab}\n" for i, lab in enumerate(labels))
    root = make_bids_tree(tmp_path / "ds", {"sub-01": [f"ses-{i:02d}" for i in range(len(labels))]},
                          sessions_tsv={"sub-01": "session_id\tage\tdiagnosis\n" + rows})
    table = load_sessions(root)
    assert table["diagnosis"].tolist() == ["CN", "CN", "MCI", "MCI", "MCI", "AD", "AD"]
    assert table["diagnosis_raw"].tolist() == labels


def test_participant_and_session_labels_select_rows(adni):
    table = load_sessions(adni, participant_label=["sub-ADNI011S0003"])
    assert set(table["subject"]) == {"ADNI011S0003"}
    table = load_sessions(adni, session_label=["M006", "ses-M12"])
    assert list(zip(table["subject"], table["session"])) == [("ADNI002S0295", "M006"),
                                                             ("ADNI011S0003", "M12")]


def test_bids_filter_file_entities_reach_the_t1w_query(adni):
    with pytest.raises(BIDSInputError, match="no T1w image"):
        load_sessions(adni, bids_filter={"t1w": {"acquisition": "mprage"}})


def test_oasis_cdr_maps_to_diagnosis(tmp_path):
    root = make_bids_tree(tmp_path / "oasis", {"sub-OAS30001": ["ses-d0000", "ses-d1000", "ses-d2000"]},
                          sessions_tsv={"sub-OAS30001": "session_id\tage\tcdr\tdx1\n"
                                        "ses-d0000\t65\t0\tCognitively normal\n"
                                        "ses-d1000\t68\t0.5\tuncertain\n"
                                        "ses-d2000\t70\t1\tAD Dementia\n"})
    assert load_sessions(root)["diagnosis"].tolist() == ["CN", "MCI", "AD"]


def test_single_session_subjects_read_participants_tsv(tmp_path):
    root = make_bids_tree(tmp_path / "plain", {"sub-01": [None], "sub-02": [None]},
                          "participant_id\tage\tdiagnosis\nsub-01\t71.5\tCN\nsub-02\t66\tAD\n")
    table = load_sessions(root)
    assert table["age"].tolist() == [71.5, 66.0]
    assert table["diagnosis"].tolist() == ["CN", "AD"]
    assert table["session"].isna().all()


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", r"missing: not a directory"),
    (lambda p: (p / "empty").mkdir() or p / "empty", r"no dataset_description.json"),
])
def test_not_a_bids_directory_is_one_clear_error(tmp_path, make, message):
    with pytest.raises(BIDSInputError, match=message):
        load_sessions(make(tmp_path))


def test_subject_without_t1w_is_named(tmp_path):
    root = make_bids_tree(tmp_path / "ds", {"sub-01": [None]}, "participant_id\tage\nsub-01\t70\nsub-02\t71\n")
    (root / "sub-02" / "anat").mkdir(parents=True)
    (root / "sub-02" / "anat" / "sub-02_T2w.nii.gz").write_bytes((root / "sub-01" / "anat" / "sub-01_T1w.nii.gz").read_bytes())
    with pytest.raises(BIDSInputError, match=r"sub-02: no T1w image"):
        load_sessions(root)


def test_unknown_participant_label_is_named(adni):
    with pytest.raises(BIDSInputError, match="no subject sub-XYZ"):
        load_sessions(adni, participant_label=["XYZ"])


@pytest.mark.parametrize("age, message", [
    ("n/a", r"sub-01_sessions.tsv, line 3: missing age for sub-01 ses-2"),
    ("seventy", r"sub-01_sessions.tsv, line 3: age 'seventy' of sub-01 ses-2 is not a number"),
    ("-4", r"line 3: age '-4' of sub-01 ses-2 is out of range"),
])
def test_bad_age_names_file_and_row(tmp_path, age, message):
    root = make_bids_tree(tmp_path / "ds", {"sub-01": ["ses-1", "ses-2"]},
                          sessions_tsv={"sub-01": f"session_id\tage\tdiagnosis\nses-1\t70\tCN\nses-2\t{age}\tCN\n"})
    with pytest.raises(BIDSInputError, match=message):
        load_sessions(root)


def test_unknown_diagnosis_names_file_and_row(tmp_path):
    root = make_bids_tree(tmp_path / "ds", {"sub-01": ["ses-1"]},
                          sessions_tsv={"sub-01": "session_id\tage\tdiagnosis\nses-1\t70\tFTD\n"})
    with pytest.raises(BIDSInputError, match=r"line 2: unknown diagnosis 'FTD' for sub-01 ses-1"):
        load_sessions(root)


def test_custom_diagnosis_map(tmp_path):
    root = make_bids_tree(tmp_path / "ds", {"sub-01": ["ses-1"]},
                          sessions_tsv={"sub-01": "session_id\tage\tdiagnosis\nses-1\t70\tFTD\n"})
    table = load_sessions(root, diagnosis_map={"FTD": "AD", "CN": "CN"})
    assert table["diagnosis"].tolist() == ["AD"]


def test_session_missing_from_sessions_tsv_is_named(tmp_path):
    root = make_bids_tree(tmp_path / "ds", {"sub-01": ["ses-1", "ses-2"]},
                          sessions_tsv={"sub-01": "session_id\tage\nses-1\t70\n"})
    with pytest.raises(BIDSInputError, match=r"sub-01_sessions.tsv: no row for ses-2"):
        load_sessions(root)


def test_saved_index_is_reused(tmp_path, adni):
    db = tmp_path / "bids_db"
    first = load_sessions(adni, database_dir=db)
    assert any(db.iterdir())
    second = load_sessions(adni, database_dir=db)
    pd.testing.assert_frame_equal(first, second)


def test_missing_diagnosis_takes_agreeing_neighbours_or_is_left_out(caplog):
    table = pd.DataFrame({
        "subject": ["a"] * 4 + ["b"] * 3,
        "session": ["1", "2", "3", "4", "1", "2", "3"],
        "t1w": ["x"] * 7,
        "age": [70, 71, 72, 73, 60, 61, 62],
        "diagnosis": ["CN", None, "CN", None, "MCI", None, "AD"],
        "diagnosis_raw": [None] * 7,
    })
    with caplog.at_level(logging.WARNING, logger="daninet.bids"):
        out = impute_missing_diagnoses(table)
    assert list(zip(out["subject"], out["session"], out["diagnosis"])) == [
        ("a", "1", "CN"), ("a", "2", "CN"), ("a", "3", "CN"), ("b", "1", "MCI"), ("b", "3", "AD")]
    assert "1 sessions without a diagnosis took their neighbours'; 2 left out" in caplog.text


def test_bidsignore_gains_missing_patterns_and_keeps_others(tmp_path):
    from daninet_pipeline.bids.derivatives import BIDSIGNORE, ensure_bidsignore

    (tmp_path / ".bidsignore").write_text("mine/\n")
    path = ensure_bidsignore(tmp_path)
    ensure_bidsignore(tmp_path)
    lines = path.read_text().splitlines()
    assert lines == ["mine/", *BIDSIGNORE]
