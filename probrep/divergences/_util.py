"""Shared pieces of the divergence modules: the ``Estimate`` result and checks of sample tensors (shapes, devices,
finite values); scalar arguments are checked with :mod:`probrep._checks`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from probrep.device import resolve_device


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate with its standard error (``stderr``) from ``n`` terms."""

    value: float
    stderr: float
    n: int

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        return f"Estimate({self.value:.6g} +- {self.stderr:.2g}, n={self.n})"


def mean_and_stderr(terms: torch.Tensor) -> tuple[float, float]:
    """Sample mean and its standard error ``std / sqrt(n)`` (float64 accumulation)."""
    t = terms.detach().reshape(-1).to(torch.float64)
    n = t.numel()
    if n < 2:
        raise ValueError(f"a standard error needs at least 2 terms, got {n}")
    return float(t.mean()), float(t.std(unbiased=True)) / math.sqrt(n)


def as_tensor(value, name: str) -> torch.Tensor:
    """A floating tensor from a tensor or array; integers become the default float dtype."""
    if isinstance(value, np.ndarray) or isinstance(value, (list, tuple, float, int)):
        value = torch.as_tensor(np.asarray(value))
    if not torch.is_tensor(value):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if value.is_complex():
        raise TypeError(f"{name} must be real, got dtype {value.dtype}")
    if not value.is_floating_point():
        value = value.to(torch.get_default_dtype())
    return value


def check_finite(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def as_samples(
    x, name: str, device: str | torch.device | None = None, min_rows: int = 1, finite: bool = True
) -> torch.Tensor:
    """Samples as ``[n, d]``: a 1-D input is ``[n, 1]``, trailing dimensions are flattened.

    ``device=None`` keeps the input's device; anything else goes through :func:`resolve_device`.
    """
    x = as_tensor(x, name)
    if device is not None:
        x = x.to(resolve_device(device))
    if x.dim() == 0:
        raise ValueError(f"{name} must have a sample dimension, got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): it needs at least {max(min_rows, 1)} sample(s)")
    x = x.reshape(x.shape[0], math.prod(x.shape[1:]))
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {x.shape[0]} (shape {tuple(x.shape)})")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {tuple(x.shape)})")
    if finite:
        check_finite(x, name)
    return x


def same_space(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> tuple[torch.Tensor, ...]:
    """Check that two sample sets share a device and a dimension; promote to a common dtype."""
    a, b = names
    if x.device != y.device:
        raise ValueError(f"{a} is on {x.device} but {b} is on {y.device}: put both on one device")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{a} and {b} must have the same dimension, got {x.shape[1]} and {y.shape[1]} "
            f"(shapes {tuple(x.shape)} and {tuple(y.shape)})"
        )
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(dtype)
