"""Time and error of the TBM measurement (ANTsPy SyN Jacobian) per SyN setting, on a
dataset with ground truth (the demo data) and its participant-level derivatives.

    python benchmarks/tbm_settings.py BIDS_DIR OUTPUT_DIR [--settings 20,10 10 ...] [--max-pairs N]

Every consecutive pair of sessions of every subject is measured as the evaluation's
``oracle`` row measures it (:func:`daninet_pipeline.evaluation.measure.tbm_change`, the
starting scan's brain mask and tissue posteriors, the evaluation regions), once per SyN
setting (iterations per level, comma-separated: ``20,10`` is two levels). Prints, per
setting: pairs, seconds per registration (mean, max; wall time of ``tbm_change``), and
|measured - true fractional change| over regions and pairs (mean, 90th percentile,
worst region's mean), and the same against the first setting's measurement.
"""

from __future__ import annotations

import argparse
import time

import nibabel as nib
import numpy as np
import pandas as pd


def main(argv=None) -> int:
    from daninet_pipeline.evaluation import measure
    from daninet_pipeline.evaluation.evaluate import atlas_regions, followup_pairs, ground_truth_volumes
    from daninet_pipeline.training.sessions import gather_sessions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bids_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--settings", nargs="+", default=["20,10", "10"])
    parser.add_argument("--max-pairs", type=int, default=0, help="0: every pair")
    opts = parser.parse_args(argv)
    settings = [tuple(int(i) for i in s.split(",")) for s in opts.settings]
    sessions, missing = gather_sessions(opts.bids_dir, opts.output_dir)
    sessions = sessions[~sessions["subject"].isin(missing)]
    pairs = followup_pairs(sessions, None, truth=ground_truth_volumes(opts.bids_dir))
    if opts.max_pairs:
        pairs = pairs[:opts.max_pairs]
    rows, cache = [], {}
    for n, pair in enumerate(pairs, 1):
        img = nib.load(pair.start)
        start = np.asarray(img.dataobj, np.float32)
        real = np.asarray(nib.load(pair.followup).dataobj, np.float32)
        mask = np.asarray(nib.load(pair.start_mask).dataobj) > 0.5
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
        if start.shape not in cache:
            cache[start.shape] = atlas_regions(start.shape, img.affine)
        labels, regions = cache[start.shape]
        regions = {k: v for k, v in regions.items() if v}
        post = measure.tissue_posteriors(start, measure.dilated(mask), zooms)
        for s in settings:
            t0 = time.perf_counter()
            got = measure.tbm_change(start, real, labels, regions, zooms, mask=mask, start_posteriors=post,
                                     iterations=s)
            sec = time.perf_counter() - t0
            for region, value in got.items():
                rows.append({"setting": ",".join(map(str, s)), "pair": n, "years": pair.years, "region": region,
                             "measured": value, "true": pair.true_change[region], "seconds": sec})
        print(f"pair {n}/{len(pairs)} sub-{pair.subject} {pair.years:.1f} y done", flush=True)
    table = pd.DataFrame(rows)
    table["error"] = (table["measured"] - table["true"]).abs()
    first = ",".join(map(str, settings[0]))
    ref = table[table["setting"] == first].set_index(["pair", "region"])["measured"]
    table["vs_first"] = (table["measured"] - ref.reindex(pd.MultiIndex.from_frame(table[["pair", "region"]])).values).abs()
    print(f"\n{len(pairs)} pairs (years ahead {min(p.years for p in pairs):.1f}-{max(p.years for p in pairs):.1f}), "
          f"{table['region'].nunique()} regions\n")
    print("| SyN iterations | pairs | s per registration (mean / max) | mean error | 90th percentile | "
          "worst region (mean error) | mean |difference| from " + first + " |")
    print("|---|---|---|---|---|---|---|")
    for s, g in table.groupby("setting", sort=False):
        secs = g.drop_duplicates("pair")["seconds"]
        worst = g.groupby("region")["error"].mean()
        print(f"| {s} | {g['pair'].nunique()} | {secs.mean():.1f} / {secs.max():.1f} | {g['error'].mean():.4f} | "
              f"{np.percentile(g['error'], 90):.4f} | {worst.idxmax()} ({worst.max():.4f}) | {g['vs_first'].mean():.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
