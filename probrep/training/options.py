"""How to train, as one immutable value: :class:`TrainOptions`, checked once when it is made.

Every trainer (``svi.fit``, score matching, critics) builds one and hands it to
:func:`probrep.training.loop.train`, so a setting is named, defaulted and validated in this one place.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from probrep import _checks
from probrep.training.optim import OPTIMIZERS, OptimizerSpec, ParamOptions
from probrep.training.results import Callback


@dataclass(frozen=True)
class TrainOptions:
    """Settings of one training run (the loop's, not the objective's).

    Attributes:
        steps / epochs: how long to train; exactly one (``epochs`` needs data).
        batch_size: examples per step (capped at the examples each rank holds); None: all of them (full batch).
        optimizer: "adam", "adamw", "sgd", "rmsprop", or a ``torch.optim`` class/factory.
        lr / optimizer_kwargs: its learning rate and further options.
        param_options: ``name -> dict | None``, a parameter's own optimiser options (e.g. ``{"lr": 1e-3}``).
        lr_schedule: ``step -> factor`` multiplying every group's learning rate; a pure function of the step, so
            resume stays exact.
        device: "auto" | "cpu" | "cuda" | "cuda:N" or a ``torch.device``.
        seed: seeds the run's own (forked) torch generators and its data order; the caller's are left alone.
        shuffle: a fresh permutation of the data every epoch (else the stored order).
        progress / log_every: a tqdm bar; a log line every ``log_every`` steps (0: never).
        callbacks: called with a :class:`~probrep.training.results.StepInfo` after each step; ``True`` stops.
        checkpoint_dir / checkpoint_every / keep_checkpoints: atomic checkpoints every k steps and at the end,
            keeping the newest few.
        resume: continue from the latest checkpoint in ``checkpoint_dir`` (a warning when there is none yet).
        overwrite: let a fresh run delete the checkpoints an earlier run left in ``checkpoint_dir``; without it,
            a fresh run there is refused, so that no one loses a run by forgetting ``resume=True``.
        distributed: "auto" trains data-parallel when ``torchrun`` starts several processes; True requires it.
        description: the progress bar's and log lines' label.
    """

    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = 64
    optimizer: OptimizerSpec = "adam"
    lr: float = 1e-3
    optimizer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    param_options: ParamOptions | None = None
    lr_schedule: Callable[[int], float] | None = None
    device: str | torch.device = "auto"
    seed: int = 0
    shuffle: bool = True
    progress: bool = True
    log_every: int = 100
    callbacks: Sequence[Callback] = ()
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    resume: bool = False
    overwrite: bool = False
    distributed: str | bool = "auto"
    description: str = "train"

    def __post_init__(self) -> None:
        # normalised values replace the given ones; the instance stays frozen to everyone else
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps= or epochs=")
        if self.steps is not None:
            put("steps", _checks.integer(self.steps, "steps", minimum=0))
        if self.epochs is not None:
            put("epochs", _checks.integer(self.epochs, "epochs", minimum=0))
        if self.batch_size is not None:
            put("batch_size", _checks.integer(self.batch_size, "batch_size"))
        self._check_optimizer(put)
        for name in ("param_options", "lr_schedule"):
            _callable_or_none(getattr(self, name), name)
        if not isinstance(self.device, str | torch.device):
            raise TypeError(f"device must be a string or torch.device, got {type(self.device).__name__}")
        put("seed", _checks.seed(self.seed))
        for name in ("shuffle", "progress", "resume", "overwrite"):
            _flag(getattr(self, name), name)
        put("log_every", _checks.integer(self.log_every, "log_every", minimum=0))
        put("callbacks", _callbacks(self.callbacks))
        self._check_checkpoints(put)
        if self.distributed != "auto" and not isinstance(self.distributed, bool):
            raise ValueError(f"distributed must be 'auto', True or False, got {self.distributed!r}")
        if not isinstance(self.description, str):
            raise TypeError(f"description must be a string, got {type(self.description).__name__}")

    def _check_optimizer(self, put: Callable[[str, Any], None]) -> None:
        if isinstance(self.optimizer, str):
            _checks.one_of(self.optimizer.lower(), "optimizer", OPTIMIZERS)
        elif _from_pyro_optim(self.optimizer):
            raise TypeError(
                "optimizer: Pyro's optimiser wrappers (pyro.optim.Adam({...})) are not taken; pass the torch "
                "optimiser and its settings instead, e.g. optimizer=torch.optim.Adam (or 'adam'), lr=0.01, "
                "optimizer_kwargs={'betas': (0.9, 0.999)}"
            )
        elif not callable(self.optimizer):
            raise TypeError(f"optimizer must be a name or a torch.optim class, got {type(self.optimizer).__name__}")
        put("lr", _checks.real(self.lr, "lr", positive=True))
        kwargs = {} if self.optimizer_kwargs is None else self.optimizer_kwargs
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"optimizer_kwargs must be a dict, got {type(kwargs).__name__}")
        put("optimizer_kwargs", MappingProxyType(dict(kwargs)))

    def _check_checkpoints(self, put: Callable[[str, Any], None]) -> None:
        if self.checkpoint_dir is not None:
            if not isinstance(self.checkpoint_dir, str | os.PathLike):
                raise TypeError(f"checkpoint_dir must be a path, got {type(self.checkpoint_dir).__name__}")
            put("checkpoint_dir", Path(self.checkpoint_dir))
        if self.checkpoint_every is not None:
            put("checkpoint_every", _checks.integer(self.checkpoint_every, "checkpoint_every"))
        put("keep_checkpoints", _checks.integer(self.keep_checkpoints, "keep_checkpoints"))
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")


def _flag(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def _callable_or_none(value: Any, name: str) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")


def _callbacks(callbacks: Any) -> tuple[Callback, ...]:
    if callable(callbacks) or not isinstance(callbacks, Sequence):
        raise TypeError(f"callbacks must be a list or tuple of callables, got {type(callbacks).__name__}")
    for i, callback in enumerate(callbacks):
        _callable_or_none(callback, f"callbacks[{i}]")
        if callback is None:
            raise TypeError(f"callbacks[{i}] must be callable, got None")
    return tuple(callbacks)


def _from_pyro_optim(optimizer: Any) -> bool:
    """A ``pyro.optim`` wrapper (instance or factory), told by its module so that training needs no Pyro."""
    modules = (getattr(optimizer, "__module__", None) or "", type(optimizer).__module__)
    return any(m == "pyro.optim" or m.startswith("pyro.optim.") for m in modules)
