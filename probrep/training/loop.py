"""The training loop every gradient-fitted model shares: batching, optimiser, devices, progress, logging,
callbacks, atomic checkpoints with exact resume, and data-parallel training under ``torchrun``.

It knows nothing about ELBOs: it minimises ``loss_fn(*batch)`` over the named parameters that ``setup(*batch)``
returns. :func:`probrep.inference.svi.fit` builds those two from a Pyro model and guide; other objectives (score
matching, critics) pass their own.

Exact resume. The data order of step ``s`` is a pure function of ``(seed, s)`` (each epoch's permutation comes
from a generator seeded by the seed and the epoch), and a checkpoint holds the parameters, the optimiser state,
the torch random state and the losses so far. Restoring them reproduces the uninterrupted run bit for bit on
the same machine.

Data parallel. Under ``torchrun`` (``WORLD_SIZE > 1``) every rank takes its own shard of each epoch's
permutation, gradients are averaged with one all-reduce per step (gloo on CPU, NCCL on CUDA), and parameters
are broadcast from rank 0 at the start, so all ranks hold identical parameters throughout.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm

from probrep.device import resolve_device
from probrep.training import checkpoint as ckpt

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}

Batch = tuple[Any, ...]
Callback = Callable[["StepInfo"], Any]


@dataclass
class StepInfo:
    """What a callback sees after each step. Returning ``True`` from a callback stops training."""

    step: int
    loss: float
    params: dict[str, torch.Tensor]
    rank: int = 0


@dataclass
class FitResult:
    """The outcome of a training run."""

    losses: np.ndarray  # loss of every step from step 1 (including steps before a resume)
    steps: int  # optimisation steps taken in total
    params: dict[str, torch.Tensor]  # the optimised (unconstrained) parameters, by name
    checkpoint: Path | None  # the last checkpoint written, if any
    seconds: float  # wall time of this call
    device: torch.device
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- data
class _Source:
    """Indexable batches from tensors, arrays or a Dataset; ``None`` means programs without data."""

    def __init__(self, data: Any, device: torch.device):
        self.device = device
        self.dataset: Dataset | None = None
        self.tensors: tuple[torch.Tensor, ...] | None = None
        if data is None:
            self.size = 0
        elif isinstance(data, Dataset) and not torch.is_tensor(data):
            self.dataset = data
            try:
                self.size = len(data)  # type: ignore[arg-type]
            except TypeError as exc:
                raise TypeError(
                    "data: a Dataset must define __len__ (iterable-style datasets are not supported)"
                ) from exc
        else:
            parts = data if isinstance(data, (tuple, list)) else (data,)
            tensors = []
            for i, part in enumerate(parts):
                if isinstance(part, np.ndarray):
                    part = torch.from_numpy(part)
                if not torch.is_tensor(part):
                    raise TypeError(f"data[{i}] must be a tensor or numpy array, got {type(part).__name__}")
                tensors.append(part.to(device))
            sizes = {t.shape[0] if t.dim() else -1 for t in tensors}
            if len(sizes) != 1 or -1 in sizes:
                raise ValueError(
                    f"data tensors must share their first (example) dimension, got shapes "
                    f"{[tuple(t.shape) for t in tensors]}"
                )
            self.tensors = tuple(tensors)
            self.size = sizes.pop()
        if data is not None and self.size == 0:
            raise ValueError("data is empty")

    def batch(self, index: torch.Tensor) -> Batch:
        if self.tensors is not None:
            index = index.to(self.device)
            return tuple(t[index] for t in self.tensors)
        assert self.dataset is not None
        rows = index.tolist()
        getitems = getattr(self.dataset, "__getitems__", None)
        items = getitems(rows) if getitems is not None else [self.dataset[i] for i in rows]
        collated = items if torch.is_tensor(items) else default_collate(items)
        parts = collated if isinstance(collated, (tuple, list)) else (collated,)
        return tuple(p.to(self.device) if torch.is_tensor(p) else p for p in parts)


class _BatchPlan:
    """Which examples step ``s`` sees: a pure function of (seed, s), sharded across ranks."""

    def __init__(self, size: int, batch_size: int, seed: int, shuffle: bool, rank: int, world: int):
        self.size, self.seed, self.shuffle, self.rank, self.world = size, seed, shuffle, rank, world
        self.local = size // world
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = min(batch_size, self.local) if size else 0
        self.per_epoch = self.local // self.batch_size if size else 0
        if size and self.per_epoch == 0:
            raise ValueError(f"data has {size} examples, too few for {world} rank(s)")
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            if self.shuffle:
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                order = torch.randperm(self.size, generator=generator)
            else:
                order = torch.arange(self.size)
            self._order, self._epoch = order[self.rank :: self.world][: self.local], epoch
        return self._order[position * self.batch_size : (position + 1) * self.batch_size]


# --------------------------------------------------------------------------------------------- distributed
def _distributed_context(distributed: str | bool, device: torch.device) -> tuple[int, int, torch.device]:
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


def _average_gradients(params: Sequence[torch.Tensor], world: int) -> None:
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


def _broadcast(tensors: Iterable[torch.Tensor]) -> None:
    with torch.no_grad():
        for t in tensors:
            torch_dist.broadcast(t, src=0)


# ----------------------------------------------------------------------------------------------- optimiser
def make_optimizer(
    optimizer: str | Callable[..., torch.optim.Optimizer],
    params: Sequence[torch.Tensor] | Sequence[dict[str, Any]],
    lr: float,
    **kwargs,
) -> torch.optim.Optimizer:
    """An optimiser by name ("adam", "adamw", "sgd", "rmsprop") or from a ``torch.optim`` class/factory.

    ``params`` may be tensors or torch parameter-group dicts (each may carry its own ``lr``).
    """
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    if isinstance(optimizer, str):
        if optimizer.lower() not in _OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}: expected one of {sorted(_OPTIMIZERS)} or a class")
        optimizer = _OPTIMIZERS[optimizer.lower()]
    return optimizer(list(params), lr=lr, **kwargs)


def _param_groups(
    names: Sequence[str], named: dict[str, torch.Tensor], param_options: Callable[[str], dict[str, Any] | None] | None
) -> list[dict[str, Any]]:
    """Group parameters by the optimiser options ``param_options(name)`` gives them (None: the defaults)."""
    if param_options is None:
        return [{"params": [named[n] for n in names]}]
    groups: dict[tuple, dict[str, Any]] = {}
    for n in names:
        options = param_options(n) or {}
        if not isinstance(options, dict):
            raise TypeError(f"param_options({n!r}) must return a dict of optimiser options or None")
        if "lr" in options and not options["lr"] > 0:
            raise ValueError(f"param_options({n!r}) gave learning rate {options['lr']}, must be > 0")
        key = tuple(sorted(options.items()))
        groups.setdefault(key, {**options, "params": []})["params"].append(named[n])
    return list(groups.values())


# ------------------------------------------------------------------------------------------------ the loop
def train(
    loss_fn: Callable[..., torch.Tensor],
    setup: Callable[..., dict[str, torch.Tensor]],
    data: Any = None,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adam",
    lr: float = 1e-3,
    optimizer_kwargs: dict[str, Any] | None = None,
    param_options: Callable[[str], dict[str, Any] | None] | None = None,
    lr_schedule: Callable[[int], float] | None = None,
    auxiliary: tuple[Callable[..., torch.Tensor], Sequence[torch.Tensor], float, dict[str, Any]] | None = None,
    module: torch.nn.Module | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    shuffle: bool = True,
    progress: bool = True,
    log_every: int = 100,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    resume: bool = False,
    distributed: str | bool = "auto",
    description: str = "train",
    run_config: dict[str, Any] | None = None,
) -> FitResult:
    """Minimise ``loss_fn(*batch)`` over the parameters ``setup(*first_batch)`` returns.

    ``auxiliary = (aux_loss_fn, aux_params, aux_lr, aux_optimizer_kwargs)`` adds a second objective with its
    own optimiser (a discriminator or critic) stepped after the main one on the same batch. ``module`` (if
    given) is moved to the device and its ``state_dict`` (buffers included) is checkpointed.
    ``param_options(name)`` may give a parameter its own optimiser options (e.g. ``{"lr": 1e-3}`` for
    baselines); ``lr_schedule(step)`` multiplies every group's learning rate at each step (a pure function of
    the step, so resume stays exact). ``run_config`` is stored in checkpoints and must match on resume.
    A fresh run (``resume=False``) owns ``checkpoint_dir``: it removes the checkpoints an earlier run left there
    (with a warning), since keeping them would let rotation delete this run's checkpoints in favour of the
    earlier run's later steps, and a later ``resume`` would continue the wrong run.
    """
    start = time.perf_counter()
    device = resolve_device(device)
    rank, world, device = _distributed_context(distributed, device)
    if module is not None:
        module.to(device)
    source = _Source(data, device)
    plan = _BatchPlan(source.size, batch_size, seed, shuffle, rank, world)
    total = _total_steps(steps, epochs, plan)
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    config = {"seed": int(seed), "batch_size": plan.batch_size, "world_size": world, **(run_config or {})}

    # Sampling noise differs across ranks (seed + rank); data order is shared and sharded by _BatchPlan.
    torch.manual_seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    batch = source.batch(plan.indices(0)) if source.size else ()
    named = setup(*batch)
    names = sorted(named)
    params = [named[n] for n in names]
    if not params:
        raise ValueError("there is nothing to optimise: the programs registered no parameters")
    opt = make_optimizer(optimizer, _param_groups(names, named, param_options), lr, **(optimizer_kwargs or {}))
    base_lrs = [group["lr"] for group in opt.param_groups]
    aux_opt = None
    if auxiliary is not None:
        aux_loss_fn, aux_params, aux_lr, aux_kwargs = auxiliary
        aux_params = list(aux_params)
        aux_opt = make_optimizer(optimizer, aux_params, aux_lr, **aux_kwargs)

    losses: list[float] = []
    first = 0
    if resume and (found := ckpt.latest(checkpoint_dir)) is not None:
        state = ckpt.load(found)
        _check_config(state, config, found)
        first = _restore(state, named, opt, aux_opt, module, device)
        losses = [float(v) for v in state["losses"].tolist()]
        logger.info("resumed from %s at step %d", found, first)
    elif resume:
        logger.info("resume=True but no checkpoint in %s: starting from step 0", checkpoint_dir)
    elif checkpoint_dir is not None and rank == 0 and (stale := ckpt.list_checkpoints(checkpoint_dir)):
        logger.warning(
            "starting a fresh run in %s: removing %d checkpoint(s) of an earlier run (up to %s); "
            "pass resume=True to continue that run instead",
            checkpoint_dir,
            len(stale),
            stale[-1].name,
        )
        ckpt.prune(checkpoint_dir, keep=0)
    if world > 1:
        _broadcast(params + (list(module.state_dict().values()) if module is not None else []))

    written: Path | None = None

    def write_checkpoint(step: int) -> None:
        nonlocal written
        if rank != 0 or checkpoint_dir is None:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "config": config,
            "params": {n: named[n].detach().cpu() for n in names},
            "optimizer": opt.state_dict(),
            "auxiliary_optimizer": aux_opt.state_dict() if aux_opt is not None else None,
            "module": {k: v.cpu() for k, v in module.state_dict().items()} if module is not None else None,
            "rng": _rng_state(),
            "losses": torch.tensor(losses, dtype=torch.float64),
        }
        written = ckpt.save(state, ckpt.checkpoint_path(checkpoint_dir, step))
        ckpt.prune(checkpoint_dir, keep_checkpoints)

    bar = tqdm(total=total, initial=first, desc=description, disable=not progress or rank != 0, dynamic_ncols=True)
    step = first
    try:
        while step < total:
            batch = source.batch(plan.indices(step)) if source.size else ()
            loss = loss_fn(*batch)
            value = float(loss.detach())
            if not np.isfinite(value):
                raise FloatingPointError(
                    f"loss is {value} at step {step + 1}; parameters are left as they were after step {step} "
                    "(lower the learning rate, or check the data for NaN/inf)"
                )
            loss.backward()
            if world > 1:
                _average_gradients(params, world)
            if lr_schedule is not None:
                factor = float(lr_schedule(step))
                for group, base in zip(opt.param_groups, base_lrs):
                    group["lr"] = base * factor
            opt.step()
            opt.zero_grad(set_to_none=True)
            if aux_opt is not None:
                aux_opt.zero_grad(set_to_none=True)  # drop what the main loss put there
                aux_loss_fn(*batch).backward()
                if world > 1:
                    _average_gradients(aux_params, world)
                aux_opt.step()
                aux_opt.zero_grad(set_to_none=True)
            step += 1
            losses.append(value)
            bar.update(1)
            if step % 10 == 0 or step == total:
                # per example when there is data: comparable across batch sizes
                bar.set_postfix(loss=f"{value / max(plan.batch_size, 1):.4g}", refresh=False)
            if log_every and step % log_every == 0 and rank == 0:
                logger.info("%s step %d/%d loss %.6g", description, step, total, value)
            if checkpoint_every and step % checkpoint_every == 0:
                write_checkpoint(step)
            info = StepInfo(step=step, loss=value, params=named, rank=rank)
            if any([bool(cb(info)) for cb in callbacks]):
                logger.info("a callback stopped training at step %d", step)
                break
    finally:
        bar.close()
    if checkpoint_dir is not None and (written is None or written != ckpt.checkpoint_path(checkpoint_dir, step)):
        write_checkpoint(step)
    return FitResult(
        losses=np.asarray(losses),
        steps=step,
        params=named,
        checkpoint=written,
        seconds=time.perf_counter() - start,
        device=device,
        world_size=world,
    )


def _total_steps(steps: int | None, epochs: int | None, plan: _BatchPlan) -> int:
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps= or epochs=")
    if steps is not None:
        if int(steps) < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        return int(steps)
    if not plan.size:
        raise ValueError("epochs= needs data; give steps= for programs without data")
    if int(epochs) < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    return int(epochs) * plan.per_epoch


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _check_config(state: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} has format {state.get('format')}, expected {CHECKPOINT_FORMAT}")
    saved = state.get("config", {})
    differ = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
    if differ:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in differ.items())
        raise ValueError(f"cannot resume from {path}: the run's settings differ ({detail})")


def _restore(state, named, opt, aux_opt, module, device) -> int:
    missing = sorted(set(named) - set(state["params"]))
    if missing:
        raise ValueError(f"checkpoint lacks parameters {missing}; was it written by another model?")
    if module is not None and state.get("module") is not None:
        module.load_state_dict(state["module"])
    with torch.no_grad():
        for name, value in named.items():
            saved = state["params"][name]
            if saved.shape != value.shape:
                raise ValueError(f"parameter {name!r}: checkpoint shape {tuple(saved.shape)} != {tuple(value.shape)}")
            value.copy_(saved.to(device))
    opt.load_state_dict(state["optimizer"])
    if aux_opt is not None and state.get("auxiliary_optimizer") is not None:
        aux_opt.load_state_dict(state["auxiliary_optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"])
