"""Pre-processing benchmark: speed against a Clinica-like reference, accuracy against the
demo data's ground truth, and the two real whole-head scans.

    python benchmarks/preprocessing.py speed T1W [--true-xfm FILE --true-mask FILE] [--threads 2]
    python benchmarks/preprocessing.py accuracy BIDS_DIR        # demo data with derivatives/ground_truth
    python benchmarks/preprocessing.py real T1W [T1W ...] [--figures DIR]
    python benchmarks/preprocessing.py n4 T1W_OR_BIDS_DIR [...] [--repeats 2] [--limit N]
    python benchmarks/preprocessing.py whole T1W [--repeats 3]   # the pipeline, N4 of before vs now

``speed`` times each step of :func:`daninet_pipeline.preprocessing.pipeline.preprocess_t1w`
and, in the same process, the reference that Clinica's ``t1-linear`` runs: ANTsPy N4
(B-spline fitting distance 600 mm) then ``ants.registration(type_of_transform=
"antsRegistrationSyNQuick[a]")`` of the N4-corrected head to the same skull-stripped
template. Wall-clock and CPU seconds are both printed: the ratio is what to compare
across machines.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def reference_clinica_like(img, template, n_threads: int):
    """ANTsPy N4 (spline distance 600) + antsRegistrationSyNQuick[a]; returns the
    native->template affine (RAS) and the timings."""
    import ants

    from daninet_pipeline.preprocessing.transforms import itk_to_ras

    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(n_threads)
    timings = {}
    moving = ants.from_nibabel_nifti(nib.Nifti1Image(np.asarray(img.dataobj, np.float32), img.affine))
    fixed = ants.from_nibabel_nifti(template)
    t = _clock()
    n4 = ants.n4_bias_field_correction(moving, spline_param=600)
    timings["n4 (ANTsPy, spline 600)"] = _since(t)
    t = _clock()
    reg = ants.registration(fixed, n4, type_of_transform="antsRegistrationSyNQuick[a]",
                            random_seed=0)
    timings["registration (antsRegistrationSyNQuick[a])"] = _since(t)
    tx = ants.read_transform(reg["fwdtransforms"][0])  # fixed (template) -> moving, LPS
    params = np.asarray(tx.parameters, float)
    xfm = itk_to_ras(params[:9], params[9:], np.asarray(tx.fixed_parameters, float)[:3])
    return xfm, timings


def cmd_speed(args) -> int:
    import torch

    from daninet_pipeline.data.resources import load_template
    from daninet_pipeline.preprocessing.pipeline import preprocess_t1w
    from daninet_pipeline.preprocessing.transforms import mean_displacement

    torch.set_num_threads(args.threads)
    img = nib.load(args.t1w)
    print(f"input {args.t1w}: shape {img.shape}, voxel {np.round(img.header.get_zooms()[:3], 2)} mm; "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    # warm-up outside the timing: imports, deepbet model load, template cache
    from daninet_pipeline.preprocessing.brain_extraction import _deepbet_model

    t = _clock()
    _deepbet_model()
    load_template()
    warm = _since(t)
    rows = []
    runs = []  # the first run pays one-off costs (first touch of memory, thread pools)
    for _ in range(max(1, args.repeats)):
        t = _clock()
        ours = preprocess_t1w(img, n_threads=args.threads)
        runs.append((ours.timings, _since(t)))
        print("daninet: " + ", ".join(f"{k} {v:.1f} s" for k, v in ours.timings.items())
              + f"; total {runs[-1][1][0]:.1f} s wall, {runs[-1][1][1]:.1f} s CPU", flush=True)
    steady = runs[1:] or runs
    ours_total = (float(np.median([r[1][0] for r in steady])), float(np.median([r[1][1] for r in steady])))
    true = np.loadtxt(args.true_xfm) if args.true_xfm else None
    mask = nib.load(args.true_mask) if args.true_mask else None
    for step in ours.timings:
        rows.append(("daninet", step, float(np.median([r[0][step] for r in steady])), None))
    rows.append(("daninet", "TOTAL", *ours_total))
    if len(runs) > 1:
        print(f"daninet: first run {runs[0][1][0]:.1f} s wall; median of the {len(steady)} later runs "
              f"{ours_total[0]:.1f} s wall, {ours_total[1]:.1f} s CPU (the table's numbers)")
    ref_xfm, ref_times = reference_clinica_like(img, load_template(), args.threads)
    ref_total = [sum(v[0] for v in ref_times.values()), sum(v[1] for v in ref_times.values())]
    for step, (wall, cpu) in ref_times.items():
        rows.append(("reference", step, wall, cpu))
    rows.append(("reference", "TOTAL", *ref_total))
    print("\n| pipeline | step | wall s | CPU s |\n|---|---|---:|---:|")
    for who, step, wall, cpu in rows:
        print(f"| {who} | {step} | {wall:.1f} | {'' if cpu is None else f'{cpu:.1f}'} |")
    print(f"\n(one-time warm-up, not counted: imports + deepbet model load {warm[0]:.1f} s)")
    print(f"ratio reference/daninet: wall {ref_total[0] / ours_total[0]:.1f}x, "
          f"CPU {ref_total[1] / ours_total[1]:.1f}x")
    if true is not None and mask is not None:
        print(f"registration error vs truth: daninet {mean_displacement(ours.native_to_template, true, mask):.3f} mm, "
              f"reference {mean_displacement(ref_xfm, true, mask):.3f} mm")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "ours_total": ours_total,
                                               "reference_total": ref_total}, indent=2))
    return 0


def cmd_accuracy(args) -> int:
    from scipy import ndimage

    from daninet_pipeline.data.resources import load_tissue_map
    from daninet_pipeline.preprocessing.pipeline import preprocess_t1w
    from daninet_pipeline.preprocessing.resampling import resample_affine
    from daninet_pipeline.preprocessing.transforms import mean_displacement

    root = Path(args.bids_dir)
    wm = load_tissue_map("WM")
    files = sorted(glob.glob(str(root / "sub-*" / "ses-*" / "anat" / "*_T1w.nii.gz")))
    print("| session | Dice | registration error mm | WM CoV before | WM CoV after | total s |")
    print("|---|---:|---:|---:|---:|---:|")
    dices, errors = [], []
    for f in files[: args.limit or None]:
        stem = Path(f).name.replace("_T1w.nii.gz", "")
        sub, ses = stem.split("_")[:2]
        truth = root / "derivatives" / "ground_truth" / sub / ses / "anat" / stem
        true_mask = nib.load(f"{truth}_desc-brain_mask.nii.gz")
        true_xfm = np.loadtxt(f"{truth}_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.txt")
        t = time.perf_counter()
        res = preprocess_t1w(nib.load(f), n_threads=args.threads)
        elapsed = time.perf_counter() - t
        d = 2 * ((np.asarray(res.mask_native.dataobj) > 0) & (np.asarray(true_mask.dataobj) > 0)).sum() / (
            (np.asarray(res.mask_native.dataobj) > 0).sum() + (np.asarray(true_mask.dataobj) > 0).sum())
        err = mean_displacement(res.native_to_template, true_xfm, true_mask)
        # white matter: template WM probability > 0.95 through the true pose, eroded once
        wm_native = np.asarray(resample_affine(wm, true_xfm, res.t1w_ras, order=1).dataobj) > 0.95
        wm_native = ndimage.binary_erosion(wm_native)
        cov = lambda img: float(np.asarray(img.dataobj)[wm_native].std() /  # noqa: E731
                                np.asarray(img.dataobj)[wm_native].mean())
        dices.append(d)
        errors.append(err)
        print(f"| {stem} | {d:.4f} | {err:.3f} | {cov(res.t1w_ras):.4f} | {cov(res.t1w_corrected):.4f} "
              f"| {elapsed:.1f} |", flush=True)
    print(f"\nDice min {min(dices):.4f}, mean {np.mean(dices):.4f}; registration error mean "
          f"{np.mean(errors):.3f} mm, worst {max(errors):.3f} mm over {len(dices)} sessions")
    return 0


def cmd_real(args) -> int:
    from daninet_pipeline.data.resources import load_template, load_template_mask
    from daninet_pipeline.preprocessing.pipeline import preprocess_t1w
    from daninet_pipeline.reports.preproc import plot_preproc_qc

    tpl, tpl_mask = load_template(), load_template_mask()
    print("| scan | brain volume L | Dice with template mask | correlation with template | total s |")
    print("|---|---:|---:|---:|---:|")
    for f in args.t1w:
        t = time.perf_counter()
        res = preprocess_t1w(nib.load(f), n_threads=args.threads)
        elapsed = time.perf_counter() - t
        mask = np.asarray(res.mask_native.dataobj) > 0
        volume = mask.sum() * abs(np.linalg.det(res.mask_native.affine[:3, :3])) / 1e6
        m_std = np.asarray(res.mask_template.dataobj) > 0
        tm = np.asarray(tpl_mask.dataobj) > 0
        overlap = 2 * (m_std & tm).sum() / (m_std.sum() + tm.sum())
        a = np.asarray(res.t1w_preproc.dataobj)[tm]
        b = np.asarray(tpl.dataobj)[tm]
        corr = float(np.corrcoef(a, b)[0, 1])
        name = Path(f).name.replace(".nii.gz", "")
        print(f"| {name} | {volume:.3f} | {overlap:.3f} | {corr:.3f} | {elapsed:.1f} |", flush=True)
        if args.figures:
            Path(args.figures).mkdir(parents=True, exist_ok=True)
            plot_preproc_qc(res.t1w_preproc, res.mask_template, tpl,
                            str(Path(args.figures) / f"preproc_{name}.png"), title=name)
    return 0


#: N4 as it was before issue 13 (fitted on ~4 mm voxels, B-spline field evaluated at every
#: voxel): the reference of ``n4`` and ``whole``
N4_BEFORE = {"fit_voxel_mm": 4.0, "field_resolution": "full"}


def _n4_reference(fn):
    """``n4_bias_correction`` with :data:`N4_BEFORE`'s settings whatever the caller asks."""
    import functools

    @functools.wraps(fn)
    def wrapped(img, **kwargs):
        kwargs.update(N4_BEFORE)
        return fn(img, **kwargs)
    return wrapped


def _wm_native(wm, native_to_template, img):
    """Template WM (probability > 0.95, eroded once) on ``img``'s grid through the affine."""
    from scipy import ndimage

    from daninet_pipeline.preprocessing.resampling import resample_affine

    return ndimage.binary_erosion(np.asarray(resample_affine(wm, native_to_template, img, order=1).dataobj) > 0.95)


def _n4_cases(inputs):
    """(name, RAS image, RAS brain mask, WM mask) of each scan: a T1w file (its brain mask
    and affine from our pipeline: no truth) or a demo BIDS dataset (the ground truth's)."""
    from daninet_pipeline.data.resources import load_tissue_map
    from daninet_pipeline.preprocessing.pipeline import preprocess_t1w
    from daninet_pipeline.preprocessing.reorient import reorient_to_ras

    wm = load_tissue_map("WM")
    for item in inputs:
        if Path(item).is_dir():
            root = Path(item)
            for f in sorted(glob.glob(str(root / "sub-*" / "ses-*" / "anat" / "*_T1w.nii.gz"))):
                stem = Path(f).name.replace("_T1w.nii.gz", "")
                sub, ses = stem.split("_")[:2]
                truth = root / "derivatives" / "ground_truth" / sub / ses / "anat" / stem
                img = nib.load(f)
                xfm = np.loadtxt(f"{truth}_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.txt")
                wm_img = nib.Nifti1Image(_wm_native(wm, xfm, img).astype(np.uint8), img.affine)
                yield (stem, reorient_to_ras(img), reorient_to_ras(nib.load(f"{truth}_desc-brain_mask.nii.gz")),
                       np.asarray(reorient_to_ras(wm_img).dataobj) > 0)
        else:
            res = preprocess_t1w(nib.load(item), n_threads=2)
            mask = np.asarray(res.mask_native.dataobj) > 0
            mask_ras = reorient_to_ras(nib.Nifti1Image(mask.astype(np.uint8), res.mask_native.affine))
            wm_ras = _wm_native(wm, res.native_to_template, res.t1w_ras) & (np.asarray(mask_ras.dataobj) > 0)
            yield Path(item).name.replace(".nii.gz", ""), res.t1w_ras, mask_ras, wm_ras


def cmd_n4(args) -> int:
    """Both N4 passes of the pipeline (head mask, then brain mask), with the settings of
    before (:data:`N4_BEFORE`) and of now, alternated in this process; the WM CoV of
    the brain-mask pass's image (the one the pipeline normalises)."""
    from daninet_pipeline.preprocessing.bias import HEAD_FIT_VOXEL_MM, n4_bias_correction

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, {args.threads} threads")
    print("| scan | WM CoV raw | before: s | before: WM CoV | now: s | now: WM CoV | time ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    totals = {"before": [], "now": []}
    covs = {"raw": [], "before": [], "now": []}
    for n, (name, img, mask, wm) in enumerate(_n4_cases(args.inputs)):
        if args.limit and n >= args.limit:
            break
        cov = lambda a: float(np.asarray(a)[wm].std() / np.asarray(a)[wm].mean())  # noqa: E731
        times = {"before": [], "now": []}
        result = {}
        for _ in range(max(1, args.repeats)):
            for which in ("before", "now"):
                head = dict(N4_BEFORE) if which == "before" else {"fit_voxel_mm": HEAD_FIT_VOXEL_MM}
                brain = dict(N4_BEFORE) if which == "before" else {}
                t = time.perf_counter()
                n4_bias_correction(img, n_threads=args.threads, **head)
                corrected, _ = n4_bias_correction(img, mask=mask, n_threads=args.threads, **brain)
                times[which].append(time.perf_counter() - t)
                result[which] = cov(corrected.dataobj)
        med = {k: float(np.median(v)) for k, v in times.items()}
        raw = cov(np.asarray(img.dataobj, np.float32))
        for k in totals:
            totals[k].append(med[k])
            covs[k].append(result[k])
        covs["raw"].append(raw)
        print(f"| {name} | {raw:.4f} | {med['before']:.2f} | {result['before']:.4f} | {med['now']:.2f} | "
              f"{result['now']:.4f} | {med['before'] / med['now']:.2f}x |", flush=True)
    print(f"\n{len(covs['raw'])} scans: N4 time before {sum(totals['before']):.1f} s, now {sum(totals['now']):.1f} s "
          f"(ratio {sum(totals['before']) / sum(totals['now']):.2f}x); mean WM CoV raw {np.mean(covs['raw']):.4f}, "
          f"before {np.mean(covs['before']):.4f}, now {np.mean(covs['now']):.4f}; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def cmd_whole(args) -> int:
    """The whole pipeline on one T1w with N4 as before and as now, alternated in this
    process (after a warm-up run that is not counted)."""
    import torch

    import daninet_pipeline.preprocessing.bias as bias
    from daninet_pipeline.preprocessing.pipeline import preprocess_t1w

    torch.set_num_threads(args.threads)
    img = nib.load(args.t1w)
    print(f"input {args.t1w}: shape {img.shape}; {args.threads} threads, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    preprocess_t1w(img, n_threads=args.threads)  # warm-up: imports, deepbet, template
    now_fn, runs = bias.n4_bias_correction, {"before": [], "now": []}
    try:
        for _ in range(max(1, args.repeats)):
            for which in ("before", "now"):
                bias.n4_bias_correction = _n4_reference(now_fn) if which == "before" else now_fn
                t = _clock()
                res = preprocess_t1w(img, n_threads=args.threads)
                wall, cpu = _since(t)
                runs[which].append(wall)
                print(f"{which}: " + ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items())
                      + f"; total {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    finally:
        bias.n4_bias_correction = now_fn
    med = {k: float(np.median(v)) for k, v in runs.items()}
    print(f"median total: before {med['before']:.1f} s, now {med['now']:.1f} s, ratio "
          f"{med['before'] / med['now']:.2f}x; load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("speed")
    p.add_argument("t1w")
    p.add_argument("--true-xfm")
    p.add_argument("--true-mask")
    p.add_argument("--json")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of our pipeline; the table gives the median of all but the first")
    p = sub.add_parser("accuracy")
    p.add_argument("bids_dir")
    p.add_argument("--limit", type=int, default=0)
    p = sub.add_parser("real")
    p.add_argument("t1w", nargs="+")
    p.add_argument("--figures")
    p = sub.add_parser("n4")
    p.add_argument("inputs", nargs="+", help="T1w files or demo BIDS datasets (with ground truth)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="at most this many scans")
    p = sub.add_parser("whole")
    p.add_argument("t1w")
    p.add_argument("--repeats", type=int, default=3)
    for p in sub.choices.values():
        p.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    return {"speed": cmd_speed, "accuracy": cmd_accuracy, "real": cmd_real, "n4": cmd_n4,
            "whole": cmd_whole}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
