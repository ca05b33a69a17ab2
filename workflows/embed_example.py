#!/usr/bin/env python3
"""Use DaniNet's workflows inside a lab's own Nipype pipeline.

The lab's workflow below has its own nodes before and after DaniNet's pre-processing
workflow (:func:`daninet_pipeline.workflows.preproc.init_preproc_wf`, one T1w in, the
pre-processed T1w, brain masks and transform out):

    lab_select_t1w  (lab's own: which T1w images of a subject to use; one per session)
        -> t1w_source (iterables over the images: one branch per T1w)
        -> daninet preproc_wf  [inputnode.t1w -> outputnode.t1w_preproc, t1w_mask,
                                t1w_mask_std, xfm, out_report]
        -> lab_brain_volume  (lab's own: brain volume in mL from the native-space mask)
        -> lab_volume_table  (lab's own JoinNode: one TSV row per session)

A second example, :func:`init_lab_simulation_wf`, puts DaniNet's participant workflow
(:func:`~daninet_pipeline.workflows.participant.init_participant_wf`) and simulation
workflow (:func:`~daninet_pipeline.workflows.simulation.init_simulation_wf`) between the
lab's own nodes.

Nothing here depends on how DaniNet's workflow is built inside: only its ``inputnode``
and ``outputnode`` fields, which are its public interface (docs/deployment.md, "Use in
your own pipeline").

    python workflows/embed_example.py BIDS_DIR WORK_DIR --participant-label 01 \
        [--plugin MultiProc --nprocs 2] [--graph-only]

writes WORK_DIR/lab_wf/... (Nipype's cache) and WORK_DIR/brain_volumes.tsv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


# ---- the lab's own node functions (module level, imports inside: Nipype runs them in
# other processes) ----------------------------------------------------------------------
def select_t1w(bids_dir, subject):
    """The lab's own file selection: every T1w of one subject, sorted."""
    from pathlib import Path

    root = Path(bids_dir) / f"sub-{subject}"
    found = sorted(str(p) for p in root.glob("**/anat/*_T1w.nii*"))
    if not found:
        raise FileNotFoundError(f"no T1w image under {root}")
    return found


def brain_volume(t1w, mask):
    """The lab's own measure: brain volume (mL) of a native-space mask."""
    import nibabel as nib
    import numpy as np

    img = nib.load(mask)
    voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
    return {"t1w": t1w, "brain_ml": float((np.asanyarray(img.dataobj) > 0).sum()) * voxel_ml}


def write_table(rows, out_file):
    """The lab's own report: one TSV row per T1w."""
    import os
    from pathlib import Path

    rows = sorted(rows, key=lambda row: row["t1w"])
    lines = ["t1w\tbrain_ml"] + [f"{Path(r['t1w']).name}\t{r['brain_ml']:.1f}" for r in rows]
    Path(out_file).write_text("\n".join(lines) + "\n")
    return os.path.abspath(out_file)


def init_lab_wf(*, bids_dir: Path, subject: str, out_file: Path, omp_nthreads: int = 1,
                name: str = "lab_wf"):
    """The lab's workflow with DaniNet's pre-processing inside it.

    The images are listed when the graph is built (``select_t1w`` runs here, not as a
    node), since Nipype's ``iterables`` need their values then.
    """
    import nipype.pipeline.engine as pe
    from nipype.interfaces import utility as niu

    from daninet_pipeline.workflows.preproc import init_preproc_wf

    t1w_files = select_t1w(str(bids_dir), subject)
    workflow = pe.Workflow(name=name)

    t1w_source = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="t1w_source")
    t1w_source.iterables = ("t1w", t1w_files)

    daninet = init_preproc_wf(omp_nthreads=omp_nthreads)  # DaniNet's workflow, unchanged

    volume = pe.Node(niu.Function(input_names=["t1w", "mask"], output_names=["row"],
                                  function=brain_volume), name="lab_brain_volume")
    table = pe.JoinNode(niu.Function(input_names=["rows", "out_file"],
                                     output_names=["out_file"], function=write_table),
                        joinsource="t1w_source", joinfield=["rows"], name="lab_volume_table")
    table.inputs.out_file = str(out_file)

    workflow.connect([
        (t1w_source, daninet, [("t1w", "inputnode.t1w")]),
        (t1w_source, volume, [("t1w", "t1w")]),
        (daninet, volume, [("outputnode.t1w_mask", "mask")]),
        (volume, table, [("row", "rows")]),
    ])
    return workflow


def sessions_table(t1w, t1w_preproc, ages, diagnoses, subject, out_file):
    """The lab's own bookkeeping: the table DaniNet's simulation workflow reads (one row
    per session: subject, session, age, diagnosis, raw and pre-processed T1w)."""
    import re
    from pathlib import Path

    lines = ["subject\tsession\tage\tdiagnosis\tt1w\tpreproc\tmask"]
    for raw, pre, age, dx in zip(t1w, t1w_preproc, ages, diagnoses):
        ses = re.search(r"_ses-([A-Za-z0-9]+)_", Path(raw).name)
        lines.append(f"{subject}\t{ses.group(1) if ses else ''}\t{age}\t{dx}\t{raw}\t{pre}\t")
    Path(out_file).write_text("\n".join(lines) + "\n")
    return str(Path(out_file).absolute())


def mean_intensity(simulated, out_file):
    """The lab's own summary of the simulated images: mean brain intensity per image."""
    from pathlib import Path

    import nibabel as nib
    import numpy as np

    if isinstance(simulated, str):  # Nipype passes a one-item list as the item
        simulated = [simulated]
    rows = ["image\tmean_brain_intensity"]
    for path in simulated:
        data = np.asanyarray(nib.load(path).dataobj, dtype=np.float32)
        rows.append(f"{Path(path).name}\t{float(data[data > 0].mean()):.4f}")
    Path(out_file).write_text("\n".join(rows) + "\n")
    return str(Path(out_file).absolute())


def init_lab_simulation_wf(*, bids_dir: Path, sessions: list[tuple[str, str, float, str]], subject: str,
                           output_dir: Path, model_file: Path, years_ahead: list[float],
                           out_file: Path, omp_nthreads: int = 1, name: str = "lab_sim_wf"):
    """The lab's workflow around DaniNet's participant and simulation workflows.

    ``sessions``: the lab's own list of (session label, T1w path, age, diagnosis).

        init_participant_wf  [inputnode.t1w (set) -> outputnode.t1w_preproc]
          -> lab_sessions_table  (lab's own: ages and diagnoses from its records)
          -> init_simulation_wf  [inputnode.sessions_tsv -> outputnode.simulated]
          -> lab_mean_intensity  (lab's own summary TSV)
    """
    import nipype.pipeline.engine as pe
    from nipype.interfaces import utility as niu

    from daninet_pipeline.workflows.participant import init_participant_wf
    from daninet_pipeline.workflows.simulation import init_simulation_wf

    workflow = pe.Workflow(name=name)
    participant = init_participant_wf(subject=subject, sessions=[(s, t) for s, t, _, _ in sessions],
                                      output_dir=str(output_dir), omp_nthreads=omp_nthreads)
    table = pe.Node(niu.Function(input_names=["t1w", "t1w_preproc", "ages", "diagnoses", "subject",
                                              "out_file"],
                                 output_names=["sessions_tsv"], function=sessions_table),
                    name="lab_sessions_table")
    table.inputs.t1w = [str(Path(t).absolute()) for _, t, _, _ in sessions]
    table.inputs.ages = [float(a) for _, _, a, _ in sessions]
    table.inputs.diagnoses = [d for _, _, _, d in sessions]
    table.inputs.subject = subject
    table.inputs.out_file = str(Path(out_file).with_name("lab_sessions.tsv"))
    simulation = init_simulation_wf(subject=subject, model_file=model_file, bids_dir=bids_dir,
                                    output_dir=output_dir, years_ahead=years_ahead)
    summary = pe.Node(niu.Function(input_names=["simulated", "out_file"], output_names=["out_file"],
                                   function=mean_intensity), name="lab_mean_intensity")
    summary.inputs.out_file = str(out_file)
    workflow.connect([
        (participant, table, [("outputnode.t1w_preproc", "t1w_preproc")]),
        (table, simulation, [("sessions_tsv", "inputnode.sessions_tsv")]),
        (simulation, summary, [("outputnode.simulated", "simulated")]),
    ])
    return workflow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bids_dir", type=Path)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--participant-label", required=True)
    parser.add_argument("--plugin", default="MultiProc")
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--omp-nthreads", type=int, default=1)
    parser.add_argument("--graph-only", action="store_true",
                        help="build the graph and print its nodes; run nothing")
    opts = parser.parse_args(argv)

    work_dir = opts.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    out_file = work_dir / "brain_volumes.tsv"
    wf = init_lab_wf(bids_dir=opts.bids_dir.resolve(),
                     subject=opts.participant_label.removeprefix("sub-"),
                     out_file=out_file, omp_nthreads=opts.omp_nthreads)
    wf.base_dir = str(work_dir)
    if opts.graph_only:
        for node in sorted(wf.list_node_names()):
            print(node)
        return 0
    plugin_args = {"n_procs": opts.nprocs} if opts.plugin == "MultiProc" else {}
    wf.run(plugin=opts.plugin, plugin_args=plugin_args)
    print(out_file.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
