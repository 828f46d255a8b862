"""Argument validation, once: every public entry point checks its arguments with these, so a bad value gets the
same clear message (naming the argument) everywhere, before any work starts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def integer(value: Any, name: str, minimum: int | None = 1) -> int:
    """``value`` as an ``int`` (Python or numpy integer, never a bool or a float); ``>= minimum`` unless it is
    None. ``TypeError`` for a non-integer, ``ValueError`` below the minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def real(
    value: Any,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    below: float | None = None,
    finite: bool = True,
) -> float:
    """``value`` as a ``float``: a real number (not a bool), finite unless ``finite=False``, and optionally
    ``> 0``, ``>= 0`` or ``< below``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonnegative and not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if below is not None and not value < below:
        raise ValueError(f"{name} must be < {below}, got {value!r}")
    return value


def probability(value: Any, name: str, *, open_interval: bool = True) -> float:
    """A probability: in (0, 1) when ``open_interval``, else in [0, 1]."""
    p = real(value, name)
    ok = 0.0 < p < 1.0 if open_interval else 0.0 <= p <= 1.0
    if not ok:
        raise ValueError(f"{name} must be in {'(0, 1)' if open_interval else '[0, 1]'}, got {p!r}")
    return p


def one_of(value: Any, name: str, choices: Any) -> Any:
    """``value`` if it is one of ``choices``; ``ValueError`` listing them otherwise."""
    if value not in tuple(choices):
        raise ValueError(f"unknown {name} {value!r}: expected one of {sorted(map(str, choices))}")
    return value


def seed(value: Any, name: str = "seed") -> int:
    """A seed: a non-negative integer."""
    return integer(value, name, minimum=0)
