"""All T1w images of one subject: ``init_participant_wf``."""

from __future__ import annotations

import re
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from ..data.resources import DEFAULT_TEMPLATE


def session_key(session: str | None, t1w: str | Path, index: int = 0) -> str:
    """Name-safe key of one T1w: its session label plus acq/run entities if any.

    >>> session_key("M000", "/d/sub-1/ses-M000/anat/sub-1_ses-M000_run-02_T1w.nii.gz")
    'ses_M000_run_02'
    >>> session_key(None, "/d/sub-1/anat/sub-1_T1w.nii.gz")
    'nosession'
    """
    name = Path(t1w).name
    extra = [f"{k}_{v}" for k, v in re.findall(r"_(acq|rec|run)-([a-zA-Z0-9]+)", name)]
    base = f"ses_{session}" if session else "nosession"
    key = "_".join([base, *extra])
    return re.sub(r"[^A-Za-z0-9_]", "_", key)


def session_keys(sessions: list[tuple[str | None, str]]) -> list[str]:
    """:func:`session_key` of each T1w of one subject, made unique (``_dup`` appended).

    >>> session_keys([("M000", "a_T1w.nii.gz"), ("M000", "b_T1w.nii.gz")])
    ['ses_M000', 'ses_M000_dup']
    """
    keys, seen = [], set()
    for session, t1w in sessions:
        key = session_key(session, t1w)
        while key in seen:
            key += "_dup"
        seen.add(key)
        keys.append(key)
    return keys


def init_participant_wf(*, subject: str, sessions: list[tuple[str | None, str]],
                        output_dir: str, bids_dir: str | None = None,
                        backend: str = "embedded", omp_nthreads: int = 1,
                        template: str = DEFAULT_TEMPLATE, brain_extraction: str = "deepbet",
                        registration: str = "fast", name: str | None = None) -> Workflow:
    """Pre-process every T1w of one subject and write the derivatives.

    One :func:`~daninet_pipeline.workflows.preproc.init_preproc_wf` and one
    :func:`~daninet_pipeline.workflows.outputs.init_ds_preproc_wf` per T1w; branches are
    independent, so a crash in one session leaves the others to finish.

    Workflow Graph
        .. workflow::
            :graph2use: orig
            :simple_form: yes

            from daninet_pipeline.workflows.participant import init_participant_wf
            wf = init_participant_wf(subject="01",
                                     sessions=[("M000", "/data/sub-01_ses-M000_T1w.nii.gz")],
                                     output_dir="/tmp/out")

    Parameters
    ----------
    subject : str
        Subject label without ``sub-``.
    sessions : list of (session label or None, T1w path)
        The T1w images to process.
    output_dir, bids_dir, backend, omp_nthreads, template, brain_extraction, registration
        As in :func:`init_preproc_wf` and :func:`init_ds_preproc_wf`.
    name : str
        Workflow name (default ``sub_<label>_wf``).

    Inputs
    ------
    t1w
        List of the T1w paths (one per session, in order); set from ``sessions``.

    Outputs
    -------
    t1w_preproc, t1w_mask, xfm
        Lists of the written derivatives, one per session, in order.
    """
    from .outputs import init_ds_preproc_wf
    from .preproc import init_preproc_wf

    if not sessions:
        raise ValueError(f"subject {subject}: no T1w to process")
    missing = [str(t1w) for _, t1w in sessions if not Path(t1w).is_file()]
    if missing:
        raise FileNotFoundError(f"subject {subject}: T1w not found: {', '.join(missing)}")
    name = name or "sub_{}_wf".format(re.sub(r"[^A-Za-z0-9]", "_", subject))
    workflow = Workflow(name=name)
    n = len(sessions)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    inputnode.inputs.t1w = [str(Path(t1w).absolute()) for _, t1w in sessions]
    outputnode = pe.Node(niu.IdentityInterface(fields=["t1w_preproc", "t1w_mask", "xfm"]),
                         name="outputnode")
    merges = {f: pe.Node(niu.Merge(n), name=f"merge_{f}", run_without_submitting=True)
              for f in ("t1w_preproc", "t1w_mask", "xfm")}
    for i, key in enumerate(session_keys(sessions)):
        select = pe.Node(niu.Select(index=i), name=f"select_{key}", run_without_submitting=True)
        preproc_wf = init_preproc_wf(backend=backend, omp_nthreads=omp_nthreads,
                                     template=template, brain_extraction=brain_extraction,
                                     registration=registration, name=f"preproc_{key}_wf")
        ds_wf = init_ds_preproc_wf(output_dir=output_dir, template=template, bids_dir=bids_dir,
                                   backend=backend, name=f"ds_{key}_wf")
        workflow.connect([
            (inputnode, select, [("t1w", "inlist")]),
            (select, preproc_wf, [("out", "inputnode.t1w")]),
            (select, ds_wf, [("out", "inputnode.source_file")]),
            (preproc_wf, ds_wf, [
                ("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                ("outputnode.t1w_mask", "inputnode.t1w_mask"),
                ("outputnode.t1w_mask_std", "inputnode.t1w_mask_std"),
                ("outputnode.xfm", "inputnode.xfm"),
                ("outputnode.out_report", "inputnode.out_report"),
                ("outputnode.qc_tsv", "inputnode.qc_tsv")]),
        ])
        for field, merge in merges.items():
            workflow.connect([(ds_wf, merge, [(f"outputnode.{field}", f"in{i + 1}")])])
    for field, merge in merges.items():
        workflow.connect([(merge, outputnode, [("out", field)])])
    return workflow
