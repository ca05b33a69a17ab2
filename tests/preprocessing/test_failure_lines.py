"""Each failed session's line carries its own cause (issue 12, item 4): five subjects
whose baselines all share the name ``ses-M000``, each broken differently, run through the
installed command; Nipype's tracebacks go to the crash files and the log, not the terminal."""

from __future__ import annotations

import os
import subprocess
import sys

import nibabel as nib
import numpy as np

CAUSES = {
    "fourd": "4D image with 2 volumes",
    "truncated": "cannot read the voxel data",
    "zero": "empty image",
    "slice": "is too small",
    "nan": "no finite voxel",
}


def _broken_dataset(demo_bids, root):
    src = nib.load(sorted(demo_bids.glob("sub-*/ses-M000/anat/*_T1w.nii.gz"))[0])
    data = np.asarray(src.dataobj, np.float32)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "broken", "BIDSVersion": "1.10.0"}')
    (root / "participants.tsv").write_text(
        "participant_id\tage\tdiagnosis\n" + "".join(f"sub-{s}\t70\tCN\n" for s in CAUSES))
    images = {"fourd": np.stack([data, data], -1), "zero": np.zeros_like(data),
              "slice": data[:, :, :1], "nan": np.full_like(data, np.nan), "truncated": data}
    for sub, img in images.items():
        path = root / f"sub-{sub}" / "ses-M000" / "anat" / f"sub-{sub}_ses-M000_T1w.nii.gz"
        path.parent.mkdir(parents=True)
        nib.Nifti1Image(img, src.affine).to_filename(path)
        if sub == "truncated":
            raw = path.read_bytes()
            path.write_bytes(raw[: len(raw) // 3])
    return root


def test_each_failed_session_prints_its_own_cause_in_one_line(demo_bids, tmp_path):
    bids = _broken_dataset(demo_bids, tmp_path / "bids")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "daninet_pipeline.cli.run", str(bids), str(out),
                           "participant", "--skip-bids-validation", "--nprocs", "2",
                           "-w", str(tmp_path / "work")],
                          capture_output=True, text=True, env=env, timeout=600)
    terminal = proc.stdout + proc.stderr
    assert proc.returncode == 1
    failed = [ln for ln in terminal.splitlines() if ": FAILED: " in ln]
    assert len(failed) == len(CAUSES), terminal[-3000:]
    for sub, cause in CAUSES.items():
        line = next(ln for ln in failed if ln.startswith(f"sub-{sub} ses-M000: FAILED"))
        assert cause in line, line
        crash = line.rsplit("crash file: ", 1)[1].rstrip(")")
        assert f"sub_{sub}_wf" in open(crash).read()
    assert "Traceback" not in terminal, terminal[-3000:]
    logs = list((out / "logs").rglob("*.log"))
    assert logs and any("Traceback" in p.read_text() for p in logs)
