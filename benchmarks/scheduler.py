"""The MultiProc scheduler's garbage collections, measured on a rerun of the participant
level (OUTPUT_DIR deleted, same work folder: every computing node comes from the cache,
every sink runs).

    python benchmarks/scheduler.py [--subjects 1] [--pairs 3] [--dir /tmp/daninet_sched]

Nipype's MultiProc runs ``gc.collect()`` in the scheduling process before it hands out
ready nodes and after each node it runs itself. ``daninet_pipeline.cli.signals.
MultiProcPlugin`` freezes the objects alive when the run starts, so those collections
walk only what the run makes. This runs the same rerun in one process, alternately with
the plugin as it is and with the freeze taken out (the reference: Nipype's own
``MultiProcPlugin.run``), and prints each pair's wall time, the number and cost of the
collections, and the median ratio.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import time
from pathlib import Path


class _CollectCounter:
    """Counts gc.collect() calls and their seconds (gc.callbacks)."""

    def __init__(self):
        self.calls, self.seconds, self._t0 = 0, 0.0, None

    def __call__(self, phase, info):
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self._t0 is not None:
            self.calls += 1
            self.seconds += time.perf_counter() - self._t0
            self._t0 = None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/daninet_sched"))
    args = parser.parse_args(argv)

    from nipype.pipeline.plugins.multiproc import MultiProcPlugin as NipypeMultiProc

    from daninet_pipeline.cli import signals
    from daninet_pipeline.cli.run import main as daninet
    from daninet_pipeline.data.synthetic import write_dataset

    bids, out, work = args.dir / "bids", args.dir / "out", args.dir / "work"
    if not bids.is_dir():
        write_dataset(bids, n_subjects=args.subjects, seed=5, shape="small")
    argv = [str(bids), str(out), "participant", "--skip-bids-validation", "--nprocs", "2", "-w", str(work)]
    t0 = time.perf_counter()
    assert daninet(argv) == 0
    print(f"first run (or cached): {time.perf_counter() - t0:.1f} s")
    frozen_run = signals.MultiProcPlugin.run
    rows = []
    for pair in range(args.pairs):
        row = {}
        for label, run in (("frozen", frozen_run), ("nipype", NipypeMultiProc.run)):
            signals.MultiProcPlugin.run = run
            shutil.rmtree(out, ignore_errors=True)
            counter = _CollectCounter()
            gc.callbacks.append(counter)
            t0 = time.perf_counter()
            try:
                assert daninet(argv) == 0
            finally:
                gc.callbacks.remove(counter)
                signals.MultiProcPlugin.run = frozen_run
            row[label] = (time.perf_counter() - t0, counter.calls, counter.seconds)
        rows.append(row)
        (fa, na, sa), (fb, nb, sb) = row["frozen"], row["nipype"]
        print(f"pair {pair + 1}: frozen {fa:.1f} s ({na} full collections, {sa:.2f} s) | "
              f"nipype {fb:.1f} s ({nb} full collections, {sb:.2f} s) | ratio {fa / fb:.2f}")
    ratios = [r["frozen"][0] / r["nipype"][0] for r in rows]
    print(f"median wall ratio frozen/nipype over {len(rows)} pairs: {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
