"""What the loop minimises: the :class:`Objective` protocol, an :class:`Auxiliary` second objective with its own
optimiser, and :class:`FunctionObjective` for objectives that are plain functions.

An objective is any object with

- ``setup(*batch) -> {name: tensor}``: called once on the first batch; returns the parameters to optimise (it may
  create them, as Pyro's lazily built guides do);
- ``loss(*batch) -> tensor``: the scalar to minimise on one batch;
- ``run_config() -> dict``: settings that the parameters' shapes do not reveal; stored in checkpoints, and a
  resume with different ones is refused;

and, optionally,

- ``module``: an ``nn.Module`` (or None) that is moved to the run's device and whose ``state_dict`` (buffers
  included) is checkpointed;
- ``auxiliary``: an :class:`Auxiliary` (or None), stepped after the main loss on the same batch.

The two optional attributes are read by :func:`optional_parts` and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from probrep import _checks


@runtime_checkable
class Objective(Protocol):
    """A loss over named parameters; see the module docstring for the optional ``module`` and ``auxiliary``."""

    def setup(self, *batch: Any) -> Mapping[str, torch.Tensor]: ...

    def loss(self, *batch: Any) -> torch.Tensor: ...

    def run_config(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Auxiliary:
    """A second objective trained by its own optimiser (the main one's kind) after each main step, on the same
    batch: a discriminator, a critic. ``lr=None`` uses the main learning rate."""

    loss: Callable[..., torch.Tensor]
    params: Sequence[torch.Tensor]
    lr: float | None = None
    optimizer_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.loss):
            raise TypeError(f"auxiliary loss must be callable, got {type(self.loss).__name__}")
        params = tuple(self.params)
        if not params or not all(torch.is_tensor(p) for p in params):
            raise TypeError("auxiliary params must be a non-empty sequence of tensors")
        object.__setattr__(self, "params", params)
        if self.lr is not None:
            object.__setattr__(self, "lr", _checks.real(self.lr, "auxiliary lr", positive=True))
        if not isinstance(self.optimizer_kwargs, Mapping):
            raise TypeError(f"auxiliary optimizer_kwargs must be a dict, got {type(self.optimizer_kwargs).__name__}")
        object.__setattr__(self, "optimizer_kwargs", MappingProxyType(dict(self.optimizer_kwargs)))


def optional_parts(objective: Objective) -> tuple[nn.Module | None, Auxiliary | None]:
    """The objective's ``module`` and ``auxiliary``, None where it has none; checks that it is an Objective."""
    if not isinstance(objective, Objective):
        missing = [m for m in ("setup", "loss", "run_config") if not callable(getattr(objective, m, None))]
        raise TypeError(
            f"{type(objective).__name__} is not an Objective: it lacks {', '.join(missing)} "
            "(wrap plain functions in FunctionObjective)"
        )
    module = getattr(objective, "module", None)
    auxiliary = getattr(objective, "auxiliary", None)
    if module is not None and not isinstance(module, nn.Module):
        raise TypeError(f"objective.module must be a torch.nn.Module or None, got {type(module).__name__}")
    if auxiliary is not None and not isinstance(auxiliary, Auxiliary):
        raise TypeError(f"objective.auxiliary must be an Auxiliary or None, got {type(auxiliary).__name__}")
    return module, auxiliary


@dataclass(frozen=True)
class FunctionObjective:
    """An objective from plain functions: ``loss_fn(*batch)`` over the parameters ``setup_fn(*first_batch)``
    returns, or (without ``setup_fn``) over ``module``'s named parameters. ``config`` is its ``run_config()``."""

    loss_fn: Callable[..., torch.Tensor]
    setup_fn: Callable[..., Mapping[str, torch.Tensor]] | None = None
    module: nn.Module | None = None
    auxiliary: Auxiliary | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(self.loss_fn).__name__}")
        if self.setup_fn is None and self.module is None:
            raise ValueError("FunctionObjective needs setup_fn or module to know its parameters")
        if self.setup_fn is not None and not callable(self.setup_fn):
            raise TypeError(f"setup_fn must be callable, got {type(self.setup_fn).__name__}")

    def setup(self, *batch: Any) -> dict[str, torch.Tensor]:
        if self.setup_fn is None:
            return dict(self.module.named_parameters())
        return dict(self.setup_fn(*batch))

    def loss(self, *batch: Any) -> torch.Tensor:
        return self.loss_fn(*batch)

    def run_config(self) -> dict[str, Any]:
        return dict(self.config)
