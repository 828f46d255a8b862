"""Data-parallel training under ``torchrun``: joining the process group, broadcasting rank 0's parameters at the
start, and averaging gradients with one all-reduce per step (gloo on CPU, NCCL on CUDA), so that all ranks hold
identical parameters throughout."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as torch_dist


def context(distributed: str | bool, device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    wanted = world > 1 if distributed == "auto" else bool(distributed)
    if not wanted:
        return 0, 1, device
    if world < 2:
        raise ValueError("distributed=True but WORLD_SIZE is not > 1: launch with torchrun --nproc_per_node=N")
    if not torch_dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return torch_dist.get_rank(), torch_dist.get_world_size(), device


def average_gradients(params: Sequence[torch.Tensor], world: int) -> None:
    """Average gradients over ranks with one all-reduce of a flat buffer."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch_dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast(tensors: Iterable[torch.Tensor]) -> None:
    """Overwrite ``tensors`` on every rank with rank 0's values."""
    with torch.no_grad():
        for t in tensors:
            torch_dist.broadcast(t, src=0)
