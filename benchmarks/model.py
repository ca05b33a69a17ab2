"""Benchmarks of the DaniNet model (results in docs/benchmarks.md, section "Model").

    python benchmarks/model.py matmul                      # torch fp32 matmul GFLOP/s
    python benchmarks/model.py train --width 16 --batch 32 --size 128 [--steps 3]
    python benchmarks/model.py simulate --model M.pt --shape 197 233 189
    python benchmarks/model.py store --volumes 1000 --out /tmp/store1000
    python benchmarks/model.py loader --volumes 200 --out /tmp/loader200  # slices/s with 0, 1, 2, 4 workers
    python benchmarks/model.py all --out /tmp/bench   # every case, each in a fresh process

Each case prints one JSON line with its numbers and its peak resident memory
(``ru_maxrss`` of the process, so run each case in its own process, as ``all`` does).
Training FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one
full step (forward + backward of E, G, D_z, D_b) and divided by the timed step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_mb() -> dict:
    """Current anonymous and file-backed resident memory and the peak RSS (VmHWM), MB.
    File-backed pages of a memory map are page cache the kernel can drop at any time."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            out[key] = int(val.split()[0]) / 1024
    return out


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def _fake_batch(cfg, B):
    A = cfg.n_groups
    return {"x": torch.rand(B, 1, cfg.image_size, cfg.image_size) * 2 - 1, "a": torch.randint(0, A, (B,)),
            "lo": torch.randint(0, A - 1, (B,)), "hi": torch.randint(1, A, (B,)), "alpha": torch.rand(B),
            "d": torch.randint(0, len(cfg.diagnoses), (B,)), "pos": torch.rand(B),
            "slice_k": torch.zeros(B, dtype=torch.long)}


def bench_train(width: int, batch: int, size: int, steps: int, precision: str = "fp32") -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from daninet_pipeline.model.config import TrainConfig, WeightSchedule
    from daninet_pipeline.model.daninet import DaniNetModel

    # L_vox on, L_reg off (its cost is two small einsums; it needs a store's atlas masks)
    cfg = TrainConfig(image_size=size, width=width, batch_size=batch, z_dim=200 if width >= 64 else 64,
                      weight_vox=WeightSchedule(1.0), precision=precision)
    model = DaniNetModel(cfg)
    b = _fake_batch(cfg, batch)
    model.set_input(b)
    with FlopCounterMode(display=False) as fc:
        model.optimize_parameters(0)  # also the warm-up step
    flops = fc.get_total_flops()
    t = time.perf_counter()
    for s in range(steps):
        model.set_input(b)
        model.optimize_parameters(s)
    dt = (time.perf_counter() - t) / steps
    mm = matmul_gflops()
    return {"case": "train", "width": width, "batch": batch, "image_size": size, "groups": cfg.n_groups,
            "precision": precision, "threads": torch.get_num_threads(), "step_seconds": dt,
            "images_per_s": batch / dt, "generated_images_per_s": batch * cfg.n_groups / dt,
            "gflop_per_step": flops / 1e9, "gflops": flops / dt / 1e9, "matmul_gflops": mm,
            "fraction_of_matmul": flops / dt / 1e9 / mm, "peak_rss_mb": peak_rss_mb()}


def bench_simulate(model_path: str | None, shape, width: int, size: int, repeats: int = 2) -> dict:
    from daninet_pipeline.model.config import TrainConfig
    from daninet_pipeline.model.simulate import Simulator
    from daninet_pipeline.model.daninet import DaniNetModel

    if model_path:
        sim = Simulator.load(model_path)
    else:  # untrained weights: the timing does not depend on them
        sim = Simulator(DaniNetModel(TrainConfig(image_size=size, width=width, z_dim=64)))
    rng = np.random.default_rng(0)
    vol = np.zeros(shape, np.float32)
    sl = tuple(slice(int(0.1 * s), int(0.9 * s)) for s in shape)
    vol[sl] = rng.random(vol[sl].shape, dtype=np.float32)
    ages = sim.cfg.bin_centres  # every age group
    mid = shape[2] // 2
    sim.simulate(vol[:, :, mid - 4:mid + 4].copy(), 70.0, "CN", ages[:1], mode="direct")  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = sim.simulate(vol, 70.0, "CN", ages, mode="direct")
        times.append(time.perf_counter() - t)
    assert len(out) == len(ages)
    return {"case": "simulate", "model": model_path or f"untrained width {width}", "image_size": sim.cfg.image_size,
            "width": sim.cfg.width, "volume_shape": list(shape), "slices": int(shape[sim.cfg.slice_axis]),
            "groups": len(ages), "threads": torch.get_num_threads(), "seconds": min(times),
            "peak_rss_mb": peak_rss_mb()}


def bench_store(n_volumes: int, out: Path, size: int, batch: int = 32, seconds: float = 20.0,
                keep: bool = False) -> dict:
    """Build a store of ``n_volumes`` template-grid volumes (1 mm, 197 x 233 x 189: the
    template, randomly scaled and shifted, held in memory so that NIfTI decoding is not
    counted), then time random batches read from it as the trainer reads them."""
    import shutil

    from daninet_pipeline.data.resources import load_template
    from daninet_pipeline.model.config import TrainConfig
    from daninet_pipeline.model.data import SliceStore
    from daninet_pipeline.model.data import SliceSource, sample_rows

    t1 = load_template()
    base = np.asarray(t1.dataobj, dtype=np.float32)

    class Records:
        def __len__(self):
            return n_volumes

        def __getitem__(self, i):
            if i >= n_volumes:
                raise IndexError(i)
            rng = np.random.default_rng(i)
            vol = np.roll(base, tuple(rng.integers(-2, 3, 3)), axis=(0, 1, 2)) * rng.uniform(0.9, 1.1)
            return {"image": vol, "subject": f"{i // 5:04d}", "session": f"M{12 * (i % 5):03d}",
                    "age": 63 + (i % 5) + (i // 5) % 20, "diagnosis": ("CN", "MCI", "AD")[i % 3]}

    if out.exists():
        shutil.rmtree(out)
    rss0 = peak_rss_mb()
    t = time.perf_counter()
    store = SliceStore.build(out, Records(), image_size=size)
    build = time.perf_counter() - t
    rss_build = peak_rss_mb()
    mem_build = memory_mb()
    size_gb = sum(f.stat().st_size for f in out.iterdir()) / 1e9
    cfg = TrainConfig(image_size=size)
    src = SliceSource.from_store(store, cfg)
    n, k, t = 0, 0, time.perf_counter()
    while time.perf_counter() - t < seconds or k == 0:
        b = src.batch(sample_rows(src.n, batch, 0, k))
        n += len(b["x"])
        k += 1
    rate = n / (time.perf_counter() - t)
    mem_read = memory_mb()
    res = {"case": "store", "volumes": n_volumes, "slices": len(store), "slices_per_volume":
           len(store.slice_indices), "image_size": size, "build_seconds": build,
           "build_seconds_per_volume": build / n_volumes, "size_gb": size_gb,
           "peak_rss_mb_before": rss0, "peak_rss_mb_build": rss_build, "memory_after_build_mb": mem_build,
           "memory_after_reads_mb": mem_read, "batches_read": k, "batch": batch,
           "slices_per_s_random_batches": rate, "peak_rss_mb": peak_rss_mb()}
    if not keep:
        shutil.rmtree(out)
    return res


def bench_loader(n_volumes: int, out: Path, size: int, batch: int = 32, seconds: float = 10.0,
                 workers=(0, 1, 2, 4)) -> dict:
    """Slices per second that :func:`daninet_pipeline.model.data.step_loader` delivers with
    0 (the reference: reads in the training process), 1, 2 and 4 worker processes, from
    a store of ``n_volumes`` template-grid volumes (built as :func:`bench_store` does),
    with no training step consuming them: the ceiling the loader puts on a GPU."""
    import shutil

    from daninet_pipeline.model.config import TrainConfig
    from daninet_pipeline.model.data import SliceSource, SliceStore, step_loader

    if out.exists():
        shutil.rmtree(out)
    bench_store(n_volumes, out, size, batch, seconds=0.0, keep=True)
    store = SliceStore(out)
    cfg = TrainConfig(image_size=size)
    src = SliceSource.from_store(store, cfg)
    rates = {}
    for w in workers:
        n, t = 0, time.perf_counter()
        for k, (b, _) in enumerate(step_loader(src, range(100_000), batch, 0, cfg.z_dim, workers=w)):
            n += len(b["x"])
            if time.perf_counter() - t > seconds:
                break
        rates[w] = n / (time.perf_counter() - t)
    shutil.rmtree(out)
    return {"case": "loader", "volumes": n_volumes, "slices": len(store), "image_size": size, "batch": batch,
            "cpus": os.cpu_count(), "slices_per_s": {str(k): v for k, v in rates.items()},
            "ratio_to_0_workers": {str(k): v / rates[workers[0]] for k, v in rates.items()}}


def run_all(out: Path, model: str | None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, __file__]
    cases = [["matmul"],
             ["train", "--width", "16", "--batch", "32", "--size", "128", "--steps", "2"],
             ["train", "--width", "16", "--batch", "32", "--size", "128", "--steps", "2", "--system-malloc"],
             ["train", "--width", "32", "--batch", "32", "--size", "128", "--steps", "1"],
             ["train", "--width", "16", "--batch", "16", "--size", "64", "--steps", "3"],
             ["simulate", "--width", "16", "--size", "64", "--shape", "197", "233", "189"],
             ["simulate", "--width", "16", "--size", "128", "--shape", "197", "233", "189", "--repeats", "1"]]
    if model:
        cases.append(["simulate", "--model", model, "--shape", "99", "117", "95"])
        cases.append(["simulate", "--model", model, "--shape", "197", "233", "189"])
    cases.append(["store", "--volumes", "1000", "--out", str(out / "store1000")])
    cases.append(["loader", "--volumes", "200", "--out", str(out / "loader200")])
    results = []
    for c in cases:
        r = subprocess.run(me + c, capture_output=True, text=True)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if r.returncode or not line:
            print(" ".join(c), "failed:", r.stderr[-2000:], file=sys.stderr)
            continue
        results.append(json.loads(line[-1]))
        print(line[-1], flush=True)
    (out / "model_benchmarks.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", choices=["matmul", "train", "simulate", "store", "loader", "all"])
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--model")
    p.add_argument("--shape", type=int, nargs=3, default=[197, 233, 189])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--volumes", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("/tmp/daninet_model_bench"))
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's allocator as it is (the reference for daninet_pipeline.allocator)")
    args = p.parse_args(argv)
    if args.system_malloc:
        os.environ["DANINET_KEEP_FREED_MEMORY"] = "0"
    torch.set_num_threads(args.threads)
    if args.case == "all":
        run_all(args.out, args.model)
        return 0
    if args.case == "matmul":
        res = {"case": "matmul", "threads": torch.get_num_threads(), "gflops": matmul_gflops()}
    elif args.case == "train":
        res = bench_train(args.width, args.batch, args.size, args.steps, args.precision)
        res["keep_freed_memory"] = not args.system_malloc
    elif args.case == "simulate":
        res = bench_simulate(args.model, tuple(args.shape), args.width, args.size, args.repeats)
    elif args.case == "loader":
        res = bench_loader(args.volumes, args.out, args.size, args.batch)
    else:
        res = bench_store(args.volumes, args.out, args.size, args.batch)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
