"""The training loop every gradient-fitted objective shares: it minimises an :class:`Objective` over batches of
data with the settings of a :class:`TrainOptions`, on a device, with a progress bar, logging, callbacks, atomic
checkpoints with exact resume, and data-parallel training under ``torchrun``.

    fit = train(objective, data, TrainOptions(steps=1000, lr=1e-3, checkpoint_dir="runs/a"))

It knows no probability: :func:`probrep.inference.svi.fit` makes an objective of a Pyro model and guide; score
matching and critics make theirs with :class:`FunctionObjective`. The parts live beside it: options, objective,
batches (data order), optim, distributed, rng (the run's forked generators), checkpoint, results.

A run has phases, one function each: start (device, ranks, data, run settings), build (parameters and
optimisers, from the first batch), resume (or clear an earlier run's checkpoints), step, checkpoint, finish.

No hidden global state. The run draws from torch's global generators (Pyro programs do) inside a fork of them
seeded with ``seed + rank``, so the caller's generator states are the same after ``train`` as before, and the
same seed gives the same run. Exact resume: a checkpoint holds the parameters, the optimisers' states, the forked
generator state and the losses so far, and the data order of step ``s`` is a pure function of ``(seed, s)``, so a
resumed run reproduces the uninterrupted one bit for bit on the same machine.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from probrep.device import resolve_device
from probrep.training import checkpoint as ckpt
from probrep.training import distributed as dist
from probrep.training import rng
from probrep.training.batches import Batch, _BatchPlan, _Source
from probrep.training.objective import Auxiliary, FunctionObjective, Objective, optional_parts
from probrep.training.optim import make_optimizer, optimizer_name, param_groups, scale_learning_rates
from probrep.training.options import TrainOptions
from probrep.training.results import Callback, FitResult, StepInfo

__all__ = [
    "train",
    "TrainOptions",
    "Objective",
    "FunctionObjective",
    "Auxiliary",
    "FitResult",
    "StepInfo",
    "Callback",
    "make_optimizer",
]

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    """One run's state, handed from phase to phase of :func:`train`."""

    objective: Objective
    options: TrainOptions
    device: torch.device
    rank: int
    world: int
    source: _Source
    plan: _BatchPlan
    total: int
    config: dict[str, Any]
    module: nn.Module | None
    auxiliary: Auxiliary | None
    named: dict[str, torch.Tensor] = field(default_factory=dict)
    params: list[torch.Tensor] = field(default_factory=list)
    optimizer: torch.optim.Optimizer | None = None
    base_lrs: list[float] = field(default_factory=list)
    aux_optimizer: torch.optim.Optimizer | None = None
    losses: list[float] = field(default_factory=list)
    step: int = 0
    written: Path | None = None
    updating: bool = False  # between an optimiser step and its bookkeeping: the state is no step's state

    def batch(self, step: int) -> Batch:
        return self.source.batch(self.plan.indices(step)) if self.source.size else ()


def train(objective: Objective, data: Any, options: TrainOptions) -> FitResult:
    """Minimise ``objective.loss(*batch)`` over the parameters ``objective.setup(*first_batch)`` returns.

    ``data``: a tensor or array ``[N, ...]``, a tuple of them (each batch passes them as positional arguments), a
    map-style ``Dataset``, or ``None`` (no arguments; give ``steps``). The objective's ``run_config()``, with the
    seed, batch size, world size, learning rate and optimiser, is stored in checkpoints and must match on resume.
    A fresh run (``resume=False``) in a ``checkpoint_dir`` that holds an earlier run's checkpoints is refused
    (``FileExistsError``) unless ``overwrite=True``, which removes them with a warning: kept, rotation would delete
    this run's checkpoints in favour of the earlier run's later steps, and a later ``resume`` would continue the
    wrong run.
    """
    if not isinstance(options, TrainOptions):
        raise TypeError(f"options must be a TrainOptions, got {type(options).__name__}")
    started = time.perf_counter()
    run = _start(objective, data, options)
    # sampling noise differs across ranks (seed + rank); the data order is shared and sharded by the plan
    with rng.forked(options.seed + run.rank, run.device):
        _build(run)
        _resume_or_begin(run)
        if run.world > 1:
            dist.broadcast(run.params + (list(run.module.state_dict().values()) if run.module is not None else []))
        _steps(run)
        _finish(run)
    return FitResult(
        losses=np.asarray(run.losses),
        steps=run.step,
        params=run.named,
        checkpoint=run.written,
        seconds=time.perf_counter() - started,
        device=run.device,
        world_size=run.world,
    )


def _start(objective: Objective, data: Any, options: TrainOptions) -> _Run:
    """Device, ranks, batches and the run's settings; nothing random happens here."""
    module, auxiliary = optional_parts(objective)
    rank, world, device = dist.context(options.distributed, resolve_device(options.device))
    if module is not None:
        module.to(device)
    source = _Source(data, device)
    plan = _BatchPlan(source.size, options.batch_size, options.seed, options.shuffle, rank, world)
    config = {
        "seed": options.seed,
        "batch_size": plan.batch_size,
        "world_size": world,
        "lr": options.lr,
        "optimizer": optimizer_name(options.optimizer),
        **dict(objective.run_config() or {}),
    }
    total = plan.total_steps(options.steps, options.epochs)
    return _Run(objective, options, device, rank, world, source, plan, total, config, module, auxiliary)


def _build(run: _Run) -> None:
    """The parameters (from the objective's setup on the first batch) and the optimisers."""
    options = run.options
    run.named = dict(run.objective.setup(*run.batch(0)))
    if not run.named:
        raise ValueError("there is nothing to optimise: the objective's setup returned no parameters")
    names = sorted(run.named)
    run.params = [run.named[n] for n in names]
    groups = param_groups(names, run.named, options.param_options)
    run.optimizer = make_optimizer(options.optimizer, groups, options.lr, **options.optimizer_kwargs)
    run.base_lrs = [group["lr"] for group in run.optimizer.param_groups]
    if run.auxiliary is not None:
        aux = run.auxiliary
        lr = aux.lr if aux.lr is not None else options.lr
        run.aux_optimizer = make_optimizer(options.optimizer, aux.params, lr, **aux.optimizer_kwargs)


def _resume_or_begin(run: _Run) -> None:
    """Continue from the latest checkpoint when asked to. A fresh run in a folder that holds an earlier run's
    checkpoints is refused unless ``overwrite`` (then they are removed: kept, rotation would delete this run's
    checkpoints in favour of the earlier run's later steps, and a later resume would continue the wrong run)."""
    directory = run.options.checkpoint_dir
    if directory is not None and run.rank == 0 and (removed := ckpt.remove_stale_temporaries(directory)):
        logger.warning("removed %d partial checkpoint file(s) a killed run left in %s", len(removed), directory)
    if run.options.resume:
        found = ckpt.latest(directory)
        if found is None:
            logger.warning("resume=True but no checkpoint in %s yet: starting from step 0", directory)
        else:
            _resume(run, found)
    elif directory is not None and (earlier := ckpt.refuse_earlier_run(directory, False, run.options.overwrite)):
        if run.rank == 0:
            logger.warning("overwrite=True: removing %d checkpoint(s) of an earlier run in %s", len(earlier), directory)
            ckpt.prune(directory, keep=0)


def _resume(run: _Run, path: Path) -> None:
    state = ckpt.load(path)
    ckpt.check_config(state, run.config, path)
    ckpt.copy_params(state["params"], run.named, run.device)
    if run.module is not None and state.get("module") is not None:
        run.module.load_state_dict(state["module"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.aux_optimizer is not None and state.get("auxiliary_optimizer") is not None:
        run.aux_optimizer.load_state_dict(state["auxiliary_optimizer"])
    rng.restore(state["rng"], run.device)
    run.step = int(state["step"])
    run.losses = [float(v) for v in state["losses"].tolist()]
    logger.info("resumed from %s at step %d", path, run.step)


def _steps(run: _Run) -> None:
    """Step until the planned total or until a callback says stop. Callbacks with an ``on_start(step)`` method
    (schedules of a model attribute) first hear the step the run starts after, so a resumed run trains with
    the values an uninterrupted one would."""
    options = run.options
    for callback in options.callbacks:
        if callable(getattr(callback, "on_start", None)):
            callback.on_start(run.step)
    bar = tqdm(
        total=run.total,
        initial=run.step,
        desc=options.description,
        disable=not options.progress or run.rank != 0,
        dynamic_ncols=True,
    )
    try:
        while run.step < run.total:
            try:
                value = _step(run, run.batch(run.step))
            except Exception as exc:
                _save_before_raising(run, exc)
                raise
            # a callback that raises is the caller's signal (a crash test, a deadline), not a failed step
            if _after_step(run, value, bar):
                break
    finally:
        bar.close()


def _save_before_raising(run: _Run, exc: Exception) -> None:
    """Name the failing step on ``exc`` and, with checkpointing on, save the last good state first, so that a
    run that dies at step 90,000 (a NaN in a late batch, a kernel error) loses nothing and can be resumed or
    inspected. A failure after the optimiser moved the parameters (in the auxiliary objective's step) leaves a
    state that is no step's state; that is not saved."""
    note = f"train: raised at step {run.step + 1} of {run.total}"
    directory = run.options.checkpoint_dir
    if directory is not None and run.rank == 0 and not run.updating and run.step > 0:
        if run.written == ckpt.checkpoint_path(directory, run.step):
            note += f"; the last good state (step {run.step}) is in {run.written}"
        else:
            try:
                _write_checkpoint(run)
                note += f"; the last good state (step {run.step}) was saved to {run.written}"
            except Exception as save_error:  # the original error matters more than the failed save
                note += f"; saving the last good state (step {run.step}) failed too: {save_error!r}"
    exc.add_note(note)


def _step(run: _Run, batch: Batch) -> float:
    """One optimiser step on ``batch`` (and the auxiliary's after it); returns the loss before the step."""
    loss = run.objective.loss(*batch)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(
            f"loss is {value} at step {run.step + 1}; parameters are left as they were after step {run.step} "
            f"({_nonfinite_rows(run, batch) or 'lower the learning rate, or check the data for NaN/inf'})"
        )
    loss.backward()
    if run.world > 1:
        dist.average_gradients(run.params, run.world)
    if run.options.lr_schedule is not None:
        factor = float(run.options.lr_schedule(run.step))
        # an inf or NaN factor would turn every parameter into NaN at once, and the next loss would blame the data
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"lr_schedule({run.step}) = {factor}: a learning-rate factor must be finite and >= 0")
        scale_learning_rates(run.optimizer, run.base_lrs, factor)
    run.updating = True
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if run.aux_optimizer is not None:
        run.aux_optimizer.zero_grad(set_to_none=True)  # drop what the main loss put there
        run.auxiliary.loss(*batch).backward()
        if run.world > 1:
            dist.average_gradients(run.auxiliary.params, run.world)
        run.aux_optimizer.step()
        run.aux_optimizer.zero_grad(set_to_none=True)
    return value


def _nonfinite_rows(run: _Run, batch: Batch) -> str:
    """Which examples of ``batch`` hold NaN/inf (by their index in the data), or "" if none: data that is not
    checked up front (a Dataset) is caught here, and the message says which rows to look at."""
    index = run.plan.indices(run.step) if run.source.size else None
    for position, part in enumerate(batch):
        if torch.is_tensor(part) and part.is_floating_point() and part.dim() > 0:
            bad = (~torch.isfinite(part.detach())).reshape(part.shape[0], -1).any(1).nonzero().reshape(-1).cpu()
            if bad.numel():
                rows = bad if index is None or len(index) != part.shape[0] else index[bad]
                return f"batch part {position} holds NaN/inf at data row(s) {rows[:5].tolist()}"
    return ""


def _after_step(run: _Run, value: float, bar: tqdm) -> bool:
    """Record the step, report it, checkpoint when due, and ask the callbacks; True when one says stop."""
    run.step += 1
    run.losses.append(value)
    run.updating = False
    step, options = run.step, run.options
    bar.update(1)
    if step % 10 == 0 or step == run.total:
        # per example when there is data: comparable across batch sizes
        bar.set_postfix(loss=f"{value / max(run.plan.batch_size, 1):.4g}", refresh=False)
    if options.log_every and step % options.log_every == 0 and run.rank == 0:
        logger.info("%s step %d/%d loss %.6g", options.description, step, run.total, value)
    if options.checkpoint_every and step % options.checkpoint_every == 0:
        _write_checkpoint(run)
    info = StepInfo(step=step, loss=value, params=run.named, rank=run.rank)
    if any([bool(callback(info)) for callback in options.callbacks]):  # a list: every callback runs
        logger.info("a callback stopped training at step %d", step)
        return True
    return False


def _write_checkpoint(run: _Run) -> None:
    """Rank 0 saves everything exact resume needs, then drops all but the newest few checkpoints."""
    directory = run.options.checkpoint_dir
    if run.rank != 0 or directory is None:
        return
    state = {
        "format": ckpt.FORMAT,
        "step": run.step,
        "config": run.config,
        "params": {n: v.detach().cpu() for n, v in sorted(run.named.items())},
        "optimizer": run.optimizer.state_dict(),
        "auxiliary_optimizer": run.aux_optimizer.state_dict() if run.aux_optimizer is not None else None,
        "module": {k: v.cpu() for k, v in run.module.state_dict().items()} if run.module is not None else None,
        "rng": rng.state(run.device),
        "losses": torch.tensor(run.losses, dtype=torch.float64),
    }
    run.written = ckpt.save(state, ckpt.checkpoint_path(directory, run.step))
    ckpt.prune(directory, run.options.keep_checkpoints)


def _finish(run: _Run) -> None:
    """A last checkpoint at the final step, unless the step just wrote it."""
    directory = run.options.checkpoint_dir
    if directory is not None and run.written != ckpt.checkpoint_path(directory, run.step):
        _write_checkpoint(run)
