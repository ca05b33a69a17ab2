"""Workflow graphs (built, not run), interfaces on small files, FSL command lines."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from daninet_pipeline.workflows.outputs import init_ds_preproc_wf
from daninet_pipeline.workflows.participant import init_participant_wf
from daninet_pipeline.workflows.preproc import init_preproc_wf

from .conftest import dice

EMBEDDED_NODES = {"inputnode", "validate", "n4", "n4_brain", "brain_extraction", "register", "normalize",
                  "resample_t1w", "resample_mask", "restore_mask", "report", "quality_measures",
                  "outputnode"}
FSL_NODES = {"inputnode", "validate", "fsl_reorient", "fsl_bet", "fsl_fast", "fsl_flirt",
             "flirt_to_itk", "normalize", "resample_t1w", "resample_mask", "restore_mask",
             "report", "quality_measures", "outputnode"}


@pytest.mark.parametrize(("backend", "brain_extraction", "nodes"), [
    ("embedded", "deepbet", EMBEDDED_NODES),
    ("embedded", "template", EMBEDDED_NODES | {"register_coarse"}),
    ("fsl", "deepbet", FSL_NODES),
])
@pytest.mark.parametrize("omp_nthreads", [1, 4])
def test_preproc_wf_graph(backend, brain_extraction, nodes, omp_nthreads):
    wf = init_preproc_wf(backend=backend, omp_nthreads=omp_nthreads,
                         brain_extraction=brain_extraction)
    assert set(wf.list_node_names()) == nodes
    outputs = wf.get_node("outputnode").inputs.copyable_trait_names()
    assert set(outputs) == {"t1w_preproc", "t1w_mask", "t1w_mask_std", "xfm", "out_report", "qc_tsv"}
    graph = wf._create_flat_graph()
    assert len(graph.nodes) == len(nodes)
    if backend == "embedded":
        assert wf.get_node("register").n_procs == omp_nthreads
    assert "template" in wf.__desc__


def test_preproc_wf_rejects_bad_options():
    with pytest.raises(ValueError, match="backend"):
        init_preproc_wf(backend="spm")
    with pytest.raises(Exception, match="unknown template"):
        init_preproc_wf(template="MNI305")


def test_participant_wf_graph(tmp_path):
    t1ws = []
    for ses in ("M000", "M006"):
        path = tmp_path / f"sub-01_ses-{ses}_T1w.nii.gz"
        nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_filename(path)
        t1ws.append((ses, str(path)))
    wf = init_participant_wf(subject="01", sessions=t1ws, output_dir=str(tmp_path / "out"))
    assert wf.name == "sub_01_wf"
    names = wf.list_node_names()
    for ses in ("M000", "M006"):
        assert f"preproc_ses_{ses}_wf.register" in names
        assert f"ds_ses_{ses}_wf.ds_xfm" in names
    assert wf.get_node("inputnode").inputs.t1w == [p for _, p in t1ws]
    with pytest.raises(FileNotFoundError, match="missing"):
        init_participant_wf(subject="01", sessions=[("M000", str(tmp_path / "missing.nii.gz"))],
                            output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no T1w"):
        init_participant_wf(subject="01", sessions=[], output_dir=str(tmp_path))
    ds = init_ds_preproc_wf(output_dir=str(tmp_path))
    assert {"ds_t1w", "ds_mask", "ds_mask_std", "ds_xfm", "ds_report"} <= set(ds.list_node_names())


def test_sink_writes_bids_names_atomically(tmp_path):
    from daninet_pipeline.interfaces.bids import DerivativesDataSink, write_dataset_description

    src = tmp_path / "raw" / "sub-01" / "ses-M000" / "anat" / "sub-01_ses-M000_T1w.nii.gz"
    src.parent.mkdir(parents=True)
    nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_filename(src)
    out = tmp_path / "out"
    sink = DerivativesDataSink(base_directory=str(out), space="MNI152NLin2009aSym",
                               desc="brain", suffix="mask", compress=True, Type="Brain")
    sink.inputs.in_file = str(src)
    sink.inputs.source_file = str(src)
    res = sink.run(cwd=str(tmp_path))
    expected = out / "sub-01/ses-M000/anat/sub-01_ses-M000_space-MNI152NLin2009aSym_desc-brain_mask.nii.gz"
    assert res.outputs.out_file == str(expected) and expected.is_file()
    assert nib.load(expected).get_data_dtype() == np.uint8
    assert '"Type": "Brain"' in expected.with_name(expected.name.replace(".nii.gz", ".json")).read_text()
    assert not list(out.glob(".daninet-staging-*"))
    desc = write_dataset_description(out, bids_dir=tmp_path / "raw")
    import json

    payload = json.loads(desc.read_text())
    assert payload["DatasetType"] == "derivative"
    assert payload["GeneratedBy"][0]["Name"] == "daninet_pipeline"


@pytest.mark.parametrize("order, dtype, suffix", [(1, np.float32, "T1w"), (0, np.uint8, "mask")])
def test_template_space_images_reach_the_sink_with_its_header_and_are_copied(tmp_path, order, dtype, suffix):
    """The resampled images already say what grid they are on, as the sink writes a
    standard space (qform/sform codes 4, mm): the sink has no header to fix and copies
    their data as it is."""
    from daninet_pipeline.data.resources import load_template
    from daninet_pipeline.interfaces.bids import DerivativesDataSink
    from daninet_pipeline.preprocessing import resample_to_template

    src = tmp_path / "raw" / "sub-01" / "ses-M000" / "anat" / "sub-01_ses-M000_T1w.nii.gz"
    src.parent.mkdir(parents=True)
    native = nib.Nifti1Image((np.random.default_rng(0).random((30, 36, 30)) * (2 if order else 1)).astype(dtype),
                             np.diag([6.0, 6.0, 6.0, 1.0]))
    native.to_filename(src)
    resampled = resample_to_template(native, np.eye(4), load_template(), order=order, dtype=dtype)
    header = resampled.header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (4, 4)
    assert header.get_xyzt_units()[0] == "mm"
    in_file = tmp_path / "resampled.nii.gz"
    resampled.to_filename(in_file)
    sink = DerivativesDataSink(base_directory=str(tmp_path / "out"), space="MNI152NLin2009aSym",
                               desc="brain" if order == 0 else "preproc", suffix=suffix, compress=True)
    sink.inputs.in_file = str(in_file)
    sink.inputs.source_file = str(src)
    res = sink.run(cwd=str(tmp_path))
    assert res.outputs.fixed_hdr == [False]
    written = nib.load(res.outputs.out_file)
    assert (int(written.header["qform_code"]), int(written.header["sform_code"])) == (4, 4)
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), np.asanyarray(resampled.dataobj))


def test_qc_report_interface(tmp_path):
    from daninet_pipeline.data.resources import load_template, load_template_mask
    from daninet_pipeline.interfaces.reports import PreprocReport

    load_template().to_filename(tmp_path / "t1.nii.gz")
    load_template_mask().to_filename(tmp_path / "mask.nii.gz")
    res = PreprocReport(in_file=str(tmp_path / "t1.nii.gz"),
                        in_mask=str(tmp_path / "mask.nii.gz")).run(cwd=str(tmp_path))
    text = open(res.outputs.out_report).read()
    assert text.lstrip().startswith("<?xml") and "<svg" in text


# --- FSL backend ----------------------------------------------------------------------------

def _fake_inputs(node, tmp_path):
    """Point every mandatory File input of a node at an existing dummy file."""
    from daninet_pipeline.data.resources import template_path

    dummy = tmp_path / "in.nii.gz"
    if not dummy.exists():
        shutil.copy(template_path(), dummy)
    for name in ("in_file",):
        if name in node.inputs.copyable_trait_names():
            setattr(node.inputs, name, str(dummy))
    if "in_files" in node.inputs.copyable_trait_names():
        node.inputs.in_files = [str(dummy)]
    return str(dummy)


def test_fsl_command_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("FSLOUTPUTTYPE", "NIFTI_GZ")
    monkeypatch.chdir(tmp_path)
    wf = init_preproc_wf(backend="fsl")
    reorient = wf.get_node("fsl_reorient").interface
    bet = wf.get_node("fsl_bet").interface
    fast = wf.get_node("fsl_fast").interface
    flirt = wf.get_node("fsl_flirt").interface
    dummy = _fake_inputs(reorient, tmp_path)
    _fake_inputs(bet, tmp_path)
    _fake_inputs(fast, tmp_path)
    _fake_inputs(flirt, tmp_path)
    dummy = "in.nii.gz"

    def cmdline(interface):  # paths inside the cwd: some interfaces shorten them, some not
        return interface.cmdline.replace(f"{tmp_path}/", "")

    assert cmdline(reorient) == f"fslreorient2std {dummy} in_reoriented.nii.gz"
    assert cmdline(bet) == f"bet {dummy} in_brain.nii.gz -f 0.50 -m -R"
    fast_cmd = cmdline(fast)
    assert fast_cmd.split()[:1] == ["fast"]
    assert "-t 1" in fast_cmd and "-n 3" in fast_cmd and "-B" in fast_cmd
    assert "--nopve" in fast_cmd and fast_cmd.endswith(dummy)
    from daninet_pipeline.data.resources import template_path

    cmd = cmdline(flirt)
    assert cmd.startswith(f"flirt -in {dummy} -ref {template_path()}")
    for flag in ("-dof 12", "-cost corratio", "-searchrx -30 30", "-omat"):
        assert flag in cmd
    # wiring: FAST's restored image feeds FLIRT, FLIRT's matrix feeds the ITK conversion
    edges = {(u.name, v.name) for u, v in wf._graph.edges()}
    assert {("fsl_reorient", "fsl_bet"), ("fsl_bet", "fsl_fast"), ("fsl_fast", "fsl_flirt"),
            ("fsl_flirt", "flirt_to_itk"), ("flirt_to_itk", "resample_t1w"),
            ("fsl_bet", "restore_mask")} <= edges


@pytest.mark.skipif(not os.environ.get("FSLDIR"), reason="FSL not installed (FSLDIR unset)")
def test_fsl_backend_runs_for_real(demo_session, tmp_path):
    from daninet_pipeline.preprocessing import read_itk_affine
    from daninet_pipeline.preprocessing.transforms import mean_displacement

    wf = init_preproc_wf(backend="fsl", name="fsl_wf")
    wf.base_dir = str(tmp_path)
    wf.inputs.inputnode.t1w = str(demo_session.t1w)
    res = wf.run()
    out = {n.name: n for n in res.nodes()}
    mask = nib.load(out["restore_mask"].result.outputs.out_file)
    assert dice(mask, nib.load(demo_session.true_mask)) > 0.9
    xfm = read_itk_affine(out["flirt_to_itk"].result.outputs.out_xfm)
    assert mean_displacement(xfm, demo_session.true_xfm, nib.load(demo_session.true_mask)) < 3.0


def test_sink_always_runs_restores_deleted_files_and_keeps_unchanged_ones(tmp_path):
    """Issue 12, item 3: a cached sink whose file was deleted writes it again."""
    from nipype.pipeline import engine as pe

    from daninet_pipeline.interfaces.bids import DerivativesDataSink

    src = tmp_path / "raw" / "sub-01" / "anat" / "sub-01_acq-mprage_run-01_T1w.nii.gz"
    src.parent.mkdir(parents=True)
    nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_filename(src)
    node = pe.Node(DerivativesDataSink(base_directory=str(tmp_path / "out"), desc="preproc", suffix="T1w",
                                       compress=True), name="ds", base_dir=str(tmp_path / "work"))
    node.inputs.in_file = str(src)
    node.inputs.source_file = str(src)
    first = node.run().outputs.out_file
    assert first.endswith("sub-01/anat/sub-01_acq-mprage_run-01_desc-preproc_T1w.nii.gz")
    mtime = Path(first).stat().st_mtime_ns
    assert node.run().outputs.out_file == first and Path(first).stat().st_mtime_ns == mtime
    shutil.rmtree(tmp_path / "out")
    assert node.run().outputs.out_file == first and Path(first).is_file()


def test_two_cores_run_two_t1w_side_by_side(tmp_path):
    """Issue 13, item 4: with --nprocs 2 and several T1w images, every node asks for one
    core (so MultiProc runs two at once), and no sink of a whole image runs in Nipype's
    main process (where it would stop the scheduling until it ends)."""
    import pandas as pd

    from daninet_pipeline.workflows.base import init_daninet_participant_wf

    rows = []
    for ses in ("M000", "M006", "M012"):
        path = tmp_path / f"sub-01_ses-{ses}_T1w.nii.gz"
        nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_filename(path)
        rows.append({"subject": "01", "session": ses, "t1w": str(path)})
    from daninet_pipeline.cli.execution import default_omp_nthreads

    omp = default_omp_nthreads(2, len(rows))
    assert omp == 1 and default_omp_nthreads(2, 1) == 2
    wf = init_daninet_participant_wf(pd.DataFrame(rows), output_dir=tmp_path / "out", work_dir=tmp_path / "work",
                                     omp_nthreads=omp)
    graph = wf._create_flat_graph()
    heavy = [n for n in graph.nodes if n.name in ("n4", "n4_brain", "brain_extraction", "register")]
    assert len(heavy) == 12 and all(n.n_procs == 1 for n in heavy)
    in_main = sorted({n.name for n in graph.nodes if n.run_without_submitting})
    assert not {"ds_t1w", "ds_mask", "ds_mask_std"} & set(in_main), in_main
