"""The short DaniNet training run on the synthetic demo dataset (docs/model.md).

    daninet-demo-data /tmp/demo --subjects 16 --seed 1 --shape small
    python benchmarks/model_demo_run.py /tmp/demo /tmp/demo_run [--steps 300] [--config demo]

Until the pre-processing workflow writes its derivatives, the training volumes are the
generator's ground truth: each session's noise-free, bias-free head on the template grid
(``derivatives/ground_truth/.../*_space-MNI152NLin2009aSym_desc-noisefree_T1w.nii.gz``)
times its brain mask, divided by its 99.5th brain percentile. One subject is held out;
its baseline is simulated at every age-group centre. Writes ``OUT/summary.json``,
``docs/figures/model_demo_sequence.png`` and ``docs/figures/model_demo_losses.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from daninet_pipeline.model.config import TrainConfig
from daninet_pipeline.model.data import SliceStore
from daninet_pipeline.model.losses import voxel_sign_loss, voxel_violation_rate
from daninet_pipeline.model.simulate import Simulator
from daninet_pipeline.model.train import train

REPO = Path(__file__).resolve().parents[1]


def demo_records(bids: Path) -> list[dict]:
    """One record per session: masked, normalised ground-truth volume + age, diagnosis."""
    recs = []
    for tsv in sorted(bids.glob("sub-*/sub-*_sessions.tsv")):
        sub = tsv.parent.name
        table = pd.read_csv(tsv, sep="\t", dtype={"session_id": str})
        for _, row in table.iterrows():
            ses = row["session_id"]
            anat = bids / "derivatives" / "ground_truth" / sub / ses / "anat"
            t1 = anat / f"{sub}_{ses}_space-MNI152NLin2009aSym_desc-noisefree_T1w.nii.gz"
            mask = anat / f"{sub}_{ses}_space-MNI152NLin2009aSym_desc-brain_mask.nii.gz"
            if not t1.is_file() or pd.isna(row["diagnosis"]) or str(row["diagnosis"]) == "n/a":
                continue
            recs.append({"path": t1, "mask": mask, "subject": sub.removeprefix("sub-"),
                         "session": ses.removeprefix("ses-"), "age": float(row["age"]),
                         "diagnosis": str(row["diagnosis"])})
    return recs


def load_normalised(rec: dict) -> nib.Nifti1Image:
    img = nib.load(rec["path"])
    data = np.asarray(img.dataobj, dtype=np.float32)
    m = np.asarray(nib.load(rec["mask"]).dataobj) > 0
    data = np.where(m, data, 0)
    scale = np.percentile(data[m], 99.5)
    return nib.Nifti1Image(np.clip(data / scale, 0, None).astype(np.float32), img.affine)


class _Lazy(dict):
    """A record whose ``image`` is loaded when the store asks for it."""

    def __getitem__(self, key):
        if key == "image":
            return load_normalised(self)
        return super().__getitem__(key)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bids", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--config", default="demo")
    p.add_argument("--steps", type=int)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--figures", type=Path, default=REPO / "docs" / "figures")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    cfg = TrainConfig.from_file(args.config)
    if args.steps:
        cfg = cfg.replace(steps=args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    recs = demo_records(args.bids)
    subjects = sorted({r["subject"] for r in recs})
    held_out = subjects[-1]
    train_recs = [_Lazy(r) for r in recs if r["subject"] != held_out]
    test_recs = [r for r in recs if r["subject"] == held_out]
    summary = {"config": args.config, "subjects": len(subjects), "train_volumes": len(train_recs),
               "held_out": held_out}

    t0 = time.perf_counter()
    store = SliceStore.build(args.out / "store", train_recs, image_size=cfg.image_size, axis=cfg.slice_axis,
                             brain_fraction=cfg.brain_fraction, intensity_max=cfg.intensity_max, progress=True)
    summary["store_seconds"] = time.perf_counter() - t0
    summary["train_slices"] = len(store)
    summary["volume_shape"] = list(store.volume_shape)

    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    model_path = train(cfg, store, args.out / "train", progress=True)
    summary["train_seconds"] = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    summary["train_cpu_seconds"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    summary["load_average_1min_at_end"] = os.getloadavg()[0]
    log = pd.read_csv(args.out / "train" / "losses.tsv", sep="\t")
    k = max(1, len(log) // 20)
    summary["loss_def_first"] = float(log["loss_def"].iloc[:k].mean())
    summary["loss_def_last"] = float(log["loss_def"].iloc[-k:].mean())
    summary["loss_def_window"] = k
    for col in ("loss_vox", "loss_vox_sign", "loss_reg", "loss_adv_b", "loss_db"):
        summary[f"{col}_last"] = float(log[col].iloc[-k:].mean())

    sim = Simulator.load(model_path)
    base = min(test_recs, key=lambda r: r["age"])
    vol_img = load_normalised(base)
    vol = np.asarray(vol_img.dataobj)
    centres = sim.cfg.bin_centres
    t0 = time.perf_counter()
    seq = sim.simulate(vol, base["age"], base["diagnosis"], centres, mode="direct")  # the generator's images
    summary["simulate_seconds_all_groups"] = time.perf_counter() - t0
    brain = vol > 0
    stack = torch.from_numpy(np.stack([s[brain] for s in seq]))[None, :, :, None]  # (1, A, N, 1)
    a = torch.tensor([int(sim.cfg.age_group([base["age"]])[0])])
    summary["input_age"] = base["age"]
    summary["input_group"] = int(a[0])
    summary["voxel_sign_loss"] = float(voxel_sign_loss(stack, a))
    summary["voxel_violation_rate"] = float(voxel_violation_rate(stack, a))
    summary["voxel_violation_rate_tol_0.01"] = float(voxel_violation_rate(stack, a, tol=0.01))
    summary["mean_brain_intensity_by_group"] = [float(s[brain].mean()) for s in seq]
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    make_figures(args.figures, log, vol, seq, centres, base, sim)
    summary_fig = args.figures / 'model_demo_sequence.png'
    print('figure', summary_fig)
    return 0


def make_figures(fig_dir: Path, log, vol, seq, centres, base, sim) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir.mkdir(parents=True, exist_ok=True)
    axis = sim.cfg.slice_axis
    aff = nib.load(base["path"]).affine
    z = int(round((15.0 - aff[axis, 3]) / aff[axis, axis]))  # axial slice at MNI z = +15 mm (ventricles)
    take = lambda v: np.rot90(np.take(v, z, axis=axis))  # noqa: E731
    A = len(seq)
    fig, axes = plt.subplots(2, A + 1, figsize=(1.6 * (A + 1), 3.6))
    vmax = np.percentile(vol[vol > 0], 99.5)
    axes[0, 0].imshow(take(vol), cmap="gray", vmin=0, vmax=vmax)
    axes[0, 0].set_title(f"input\n{base['age']:.1f} y {base['diagnosis']}", fontsize=7)
    own = seq[int(sim.cfg.age_group([base["age"]])[0])]
    axes[1, 0].axis("off")
    for i, (s, c) in enumerate(zip(seq, centres)):
        axes[0, i + 1].imshow(take(s), cmap="gray", vmin=0, vmax=vmax)
        axes[0, i + 1].set_title(f"{c:.1f} y", fontsize=7)
        axes[1, i + 1].imshow(take(s - own), cmap="RdBu_r", vmin=-0.15, vmax=0.15)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1, 1].set_ylabel("minus own age", fontsize=7)
    fig.suptitle("DaniNet demo: one axial slice simulated at every age-group centre", fontsize=8)
    fig.tight_layout()
    fig.savefig(fig_dir / "model_demo_sequence.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(log["step"], log["loss_def"], lw=0.8, label="L_def")
    ax.plot(log["step"], log["loss_vox"], lw=0.8, label="L_vox (surrogate)")
    if log["loss_reg"].notna().any():
        ax.plot(log["step"], log["loss_reg"], lw=0.8, label="L_reg")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(fig_dir / "model_demo_losses.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
