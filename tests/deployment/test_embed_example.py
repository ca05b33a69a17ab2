"""workflows/embed_example.py: a lab's Nipype workflow with DaniNet's inside it.

Building the graph is fast and runs in the default suite; running it on a small
synthetic subject (two sessions, a few minutes on 2 cores) is marked ``deployment``
and runs in ``make slurm-test``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "workflows" / "embed_example.py"


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("daninet_pipeline.workflows.preproc",
                        reason="this version has no pre-processing workflow")
    spec = importlib.util.spec_from_file_location("embed_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_subject(root: Path, sessions=("M000", "M012")) -> Path:
    (root / "dataset_description.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.10.0"}))
    for ses in sessions:
        anat = root / "sub-01" / f"ses-{ses}" / "anat"
        anat.mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4)),
                 anat / f"sub-01_ses-{ses}_T1w.nii.gz")
    return root


def test_lab_workflow_wraps_daninet(example, tmp_path):
    bids = _tiny_subject(tmp_path / "bids")
    wf = example.init_lab_wf(bids_dir=bids, subject="01", out_file=tmp_path / "v.tsv")
    names = set(wf.list_node_names())
    assert {"t1w_source", "lab_brain_volume", "lab_volume_table"} <= names
    assert {"preproc_wf.inputnode", "preproc_wf.outputnode"} <= names
    source = wf.get_node("t1w_source")
    assert [Path(p).name for p in source.iterables[1]] == [
        "sub-01_ses-M000_T1w.nii.gz", "sub-01_ses-M012_T1w.nii.gz"]
    # the lab's nodes connect to DaniNet's workflow through its inputnode and outputnode only
    graph, daninet = wf._graph, wf.get_node("preproc_wf")
    volume = wf.get_node("lab_brain_volume")
    assert graph.get_edge_data(source, daninet)["connect"] == [("t1w", "inputnode.t1w")]
    assert graph.get_edge_data(daninet, volume)["connect"] == [("outputnode.t1w_mask", "mask")]


def test_lab_workflow_graph_only_cli(example, tmp_path, capsys):
    bids = _tiny_subject(tmp_path / "bids")
    assert example.main([str(bids), str(tmp_path / "work"), "--participant-label", "sub-01",
                         "--graph-only"]) == 0
    out = capsys.readouterr().out.split()
    assert "lab_volume_table" in out and "preproc_wf.outputnode" in out


def test_select_t1w_names_the_missing_subject(example, tmp_path):
    with pytest.raises(FileNotFoundError, match="sub-02"):
        example.select_t1w(str(_tiny_subject(tmp_path / "bids")), "02")


@pytest.mark.deployment
def test_lab_workflow_runs(example, tmp_path):
    from daninet_pipeline.data.synthetic import write_dataset

    bids = write_dataset(tmp_path / "bids", n_subjects=1, seed=0, shape="small")  # 2 sessions
    subject = next(p.name for p in Path(bids).glob("sub-*"))
    assert example.main([str(bids), str(tmp_path / "work"), "--participant-label", subject,
                         "--nprocs", "2"]) == 0
    rows = (tmp_path / "work" / "brain_volumes.tsv").read_text().splitlines()[1:]
    assert len(rows) == 2
    for row in rows:
        name, ml = row.split("\t")
        truth = next(Path(bids, "derivatives", "ground_truth").glob(
            f"{subject}/ses-*/anat/{name.replace('_T1w.nii.gz', '')}_desc-brain_mask.nii.gz"))
        img = nib.load(truth)
        true_ml = float((np.asanyarray(img.dataobj) > 0).sum() * np.prod(img.header.get_zooms()) / 1000)
        assert abs(float(ml) - true_ml) < 0.1 * true_ml, (name, ml, true_ml)


def test_lab_workflow_wraps_participant_and_simulation(example, tmp_path):
    bids = _tiny_subject(tmp_path / "bids")
    model = tmp_path / "model.pt"
    model.write_bytes(b"not read when the graph is built")
    sessions = [("M000", str(next(bids.glob("sub-01/ses-M000/anat/*_T1w.nii.gz"))), 70.0, "MCI"),
                ("M012", str(next(bids.glob("sub-01/ses-M012/anat/*_T1w.nii.gz"))), 71.0, "MCI")]
    wf = example.init_lab_simulation_wf(bids_dir=bids, sessions=sessions, subject="01",
                                        output_dir=tmp_path / "out", model_file=model,
                                        years_ahead=[2.0], out_file=tmp_path / "s.tsv")
    graph = wf._graph
    participant, table = wf.get_node("sub_01_wf"), wf.get_node("lab_sessions_table")
    simulation, summary = wf.get_node("sim_sub_01_wf"), wf.get_node("lab_mean_intensity")
    assert graph.get_edge_data(participant, table)["connect"] == [("outputnode.t1w_preproc", "t1w_preproc")]
    assert graph.get_edge_data(table, simulation)["connect"] == [("sessions_tsv", "inputnode.sessions_tsv")]
    assert graph.get_edge_data(simulation, summary)["connect"] == [("outputnode.simulated", "simulated")]


@pytest.mark.deployment
def test_lab_simulation_workflow_runs(example, tmp_path):
    """Participant and simulation workflows inside the lab's, with a tiny model trained on
    the demo data's ground truth."""
    import pandas as pd

    from nibabel.processing import resample_from_to

    from daninet_pipeline.data.resources import load_template
    from daninet_pipeline.data.synthetic import write_dataset
    from daninet_pipeline.model.config import TrainConfig
    from daninet_pipeline.model.data import SliceStore
    from daninet_pipeline.model.train import train

    bids = write_dataset(tmp_path / "bids", n_subjects=1, seed=0, shape="small")
    subject = next(p.name for p in Path(bids).glob("sub-*"))[4:]
    rows = pd.read_csv(Path(bids) / f"sub-{subject}" / f"sub-{subject}_sessions.tsv", sep="\t")
    truth = Path(bids) / "derivatives" / "ground_truth"
    records = []
    for ses, age in zip(rows["session_id"], rows["age"]):
        stem = truth / f"sub-{subject}" / ses / "anat" / f"sub-{subject}_{ses}_space-MNI152NLin2009aSym"
        img = nib.load(f"{stem}_desc-noisefree_T1w.nii.gz")
        mask = np.asanyarray(nib.load(f"{stem}_desc-brain_mask.nii.gz").dataobj) > 0
        # on the participant level's grid (the 1 mm template): a model refuses data on another grid
        brain = nib.Nifti1Image(img.get_fdata(dtype=np.float32) * mask, img.affine)
        records.append({"image": resample_from_to(brain, load_template(), order=1),
                        "subject": subject, "session": ses[4:], "age": float(age), "diagnosis": "MCI"})
    cfg = TrainConfig.from_file("demo").replace(image_size=32, width=8, z_dim=16, batch_size=8, steps=4,
                                                checkpoint_every=2, weight_reg=type(TrainConfig().weight_reg)(0.0))
    store = SliceStore.build(tmp_path / "store", records, image_size=32)
    model = train(cfg, store, tmp_path / "model", progress=False)
    sessions = [(ses[4:], str(next(Path(bids).glob(f"sub-{subject}/{ses}/anat/*_T1w.nii.gz"))), float(age), "MCI")
                for ses, age in zip(rows["session_id"], rows["age"])]
    wf = example.init_lab_simulation_wf(bids_dir=Path(bids), sessions=sessions, subject=subject,
                                        output_dir=tmp_path / "out", model_file=model, years_ahead=[2.0],
                                        out_file=tmp_path / "summary.tsv")
    wf.base_dir = str(tmp_path / "work")
    wf.config["execution"]["crashdump_dir"] = str(tmp_path / "crash")
    wf.run(plugin="MultiProc", plugin_args={"n_procs": 2})
    lines = (tmp_path / "summary.tsv").read_text().splitlines()
    assert len(lines) == 2 and "_desc-simmodelAge" in lines[1]
    assert 0 < float(lines[1].split("\t")[1]) <= 1.5
