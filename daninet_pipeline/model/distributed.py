"""Data-parallel training over ``torch.distributed`` processes (gloo on CPU, NCCL on
GPU; started by ``torchrun``): each process takes its share of every global batch and
the gradients are averaged, so N processes equal one process with the whole batch."""

from __future__ import annotations

import os

import torch
from torch import distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_distributed() -> tuple[int, int]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return world()


def sync_grads(params) -> None:
    """Average the gradients of ``params`` over the processes (one flat all-reduce)."""
    _, size = world()
    if size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= size
    for g, s in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
        g.copy_(s)


def broadcast_params(modules) -> None:
    """Rank 0's parameters and buffers to every process."""
    _, size = world()
    if size == 1:
        return
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            dist.broadcast(t.data, 0)


def mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    """``values`` averaged over the processes (on the values' device)."""
    _, size = world()
    if size == 1:
        return values
    dist.all_reduce(values)
    return values / size
