"""Optimisers for the loop: one by name or class, parameter groups with their own options, and the learning-rate
factor of a schedule applied to every group."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from probrep import _checks

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}

OptimizerSpec = str | Callable[..., torch.optim.Optimizer]
ParamOptions = Callable[[str], dict[str, Any] | None]


def make_optimizer(
    optimizer: OptimizerSpec,
    params: Sequence[torch.Tensor] | Sequence[dict[str, Any]],
    lr: float,
    **kwargs,
) -> torch.optim.Optimizer:
    """An optimiser by name ("adam", "adamw", "sgd", "rmsprop") or from a ``torch.optim`` class/factory.

    ``params`` may be tensors or torch parameter-group dicts (each may carry its own ``lr``).
    """
    lr = _checks.real(lr, "lr", positive=True)
    if isinstance(optimizer, str):
        optimizer = OPTIMIZERS[_checks.one_of(optimizer.lower(), "optimizer", OPTIMIZERS)]
    return optimizer(list(params), lr=lr, **kwargs)


def optimizer_name(optimizer: OptimizerSpec) -> str:
    """A name for ``optimizer`` that is the same in every process (checkpoints compare it on resume): the string
    or class as ``str`` gives it, a factory by module and qualified name (its ``str`` would hold an address)."""
    if isinstance(optimizer, str | type):
        return str(optimizer)
    return f"{getattr(optimizer, '__module__', '?')}.{getattr(optimizer, '__qualname__', type(optimizer).__name__)}"


def param_groups(
    names: Sequence[str], named: dict[str, torch.Tensor], param_options: ParamOptions | None
) -> list[dict[str, Any]]:
    """Group parameters by the optimiser options ``param_options(name)`` gives them (None: the defaults)."""
    if param_options is None:
        return [{"params": [named[n] for n in names]}]
    groups: dict[tuple, dict[str, Any]] = {}
    for n in names:
        options = param_options(n) or {}
        if not isinstance(options, dict):
            raise TypeError(f"param_options({n!r}) must return a dict of optimiser options or None")
        if "lr" in options:
            _checks.real(options["lr"], f"param_options({n!r})['lr']", positive=True)
        key = tuple(sorted(options.items()))
        groups.setdefault(key, {**options, "params": []})["params"].append(named[n])
    return list(groups.values())


def scale_learning_rates(optimizer: torch.optim.Optimizer, base_lrs: Sequence[float], factor: float) -> None:
    """Set every group's learning rate to its base rate times ``factor`` (a schedule's value at this step)."""
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = base * factor
