"""Before a long training: which device, how long, how much memory (issue 12, item 6).

A configuration's size is measured against the ``demo`` preset, which trains in minutes
on 2 CPU cores: :func:`demo_multiples` is the training's work in units of the demo's
(pixels x width^2 x batch x age groups x steps). Without a GPU, a configuration of more
than :data:`CPU_LIMIT_DEMOS` demos (the paper-sized presets are thousands) stops before
anything runs and asks for ``--allow-cpu`` or a smaller ``--config``. Otherwise a
training longer than a demo is timed first: :func:`time_training_steps` runs a few steps
of the actual networks on random slices in a child process (a forked Nipype worker must
not inherit torch's threads) and the command line says the estimate, the memory and the
device before the workflow starts.
"""

from __future__ import annotations

import logging

LOG = logging.getLogger("daninet")

#: above this many demo trainings, a CPU-only machine needs --allow-cpu
CPU_LIMIT_DEMOS = 50.0


def demo_multiples(cfg) -> float:
    """The training's work in units of the ``demo`` preset's."""
    from ..model.config import TrainConfig

    demo = TrainConfig.from_file("demo")

    def work(c):
        return c.image_size ** 2 * c.width ** 2 * c.batch_size * c.n_groups * c.steps

    return work(cfg) / work(demo)


def gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _time_steps(config: dict, steps: int) -> dict:
    """(In a child process.) Seconds per step and peak memory of ``steps`` training steps
    of ``config``'s networks on random slices (no regional constraint: it needs data)."""
    import resource
    import time

    import numpy as np
    import torch

    from ..model.config import TrainConfig
    from ..model.daninet import DaniNetModel
    from ..model.data import SliceSource

    cfg = TrainConfig.from_dict(config)
    cfg = cfg.replace(weight_reg=type(cfg.weight_reg)(0.0))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = np.random.default_rng(0)
    n, s = cfg.batch_size, cfg.image_size
    source = SliceSource.from_arrays(rng.random((n, s, s), dtype=np.float32),
                                     rng.uniform(cfg.age_min, cfg.age_max, n),
                                     [cfg.diagnoses[0]] * n, rng.random(n).astype(np.float32),
                                     np.zeros(n, np.int64), cfg)
    model = DaniNetModel(cfg, device=device)
    model.train_mode(True)
    seconds = []
    for step in range(steps + 1):  # the first step warms up
        model.set_input(source.batch(np.arange(n)))
        t0 = time.perf_counter()
        model.optimize_parameters(step)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
    memory = (torch.cuda.max_memory_allocated() / 2**30 if device == "cuda"
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return {"seconds_per_step": float(np.median(seconds[1:])), "memory_gb": float(memory), "device": name}


def time_training_steps(cfg, steps: int = 2) -> dict:
    """:func:`_time_steps` in a fresh (spawned) process: ``seconds_per_step``,
    ``memory_gb`` (peak: GPU memory, or the process's resident memory) and ``device``."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_time_steps, (cfg.to_dict(), steps))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def check_training_plan(config, *, allow_cpu: bool = False, name: str | None = None) -> str | None:
    """Refuse a GPU-sized training without a GPU (unless ``allow_cpu``); time a training
    longer than a demo and return the line that says the plan (None for a small one).
    ``config``: a preset name, a file, or a :class:`~daninet_pipeline.model.config.TrainConfig`
    already read (then ``name`` names it)."""
    from ..errors import DaniNetError
    from ..model.config import TrainConfig

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_file(config)
    size = demo_multiples(cfg)
    if name is None:
        name = str(config) if "/" not in str(config) else str(config).rsplit("/", 1)[-1]
    shape = (f"{cfg.image_size} px, width {cfg.width}, batch {cfg.batch_size}, {cfg.n_groups} age groups, "
             f"{cfg.steps} steps")
    gpu = gpu_available()
    if not gpu and size > CPU_LIMIT_DEMOS and not allow_cpu:
        raise DaniNetError(f"configuration {name} ({shape}) is sized for a GPU ({size:.0f} times the demo's "
                           "training) and no GPU is visible: give a smaller --config (e.g. demo), or "
                           "--allow-cpu to train on the CPU anyway (the steps are timed first)")
    if size <= 1.0:
        return None
    plan = time_training_steps(cfg)
    total = plan["seconds_per_step"] * cfg.steps
    line = (f"training plan: configuration {name} ({shape}) on {plan['device']}: "
            f"{plan['seconds_per_step']:.2f} s a step (timed), about {_duration(total)} in all, "
            f"peak memory about {plan['memory_gb']:.1f} GB")
    LOG.info(line)
    return line
