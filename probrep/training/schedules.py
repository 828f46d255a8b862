"""Schedules of a value over training steps, and one way to apply them.

A schedule is a pure function ``step -> value``, so a resumed run sees the same values as an uninterrupted one.
Two uses:

- the learning rate: ``svi.fit(..., lr=start, lr_schedule=relative_to(schedule, start))`` multiplies every
  parameter group's rate by ``schedule(step) / start``;
- an attribute of the model that the objective reads (AIR's ``z_pres_prior``, GQN's pixel ``sigma``):
  ``callbacks=[AnnealAttribute(model, "sigma", schedule)]``; it sets the attribute for the coming step.

The annealings of the papers: AIR's count prior decays exponentially (Eslami et al. 2016), GQN's pixel sigma
(2.0 -> 0.7 over 200k steps) and learning rate (5e-4 -> 5e-5 over 1.6M steps) fall linearly (Eslami et al. 2018).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from probrep import _checks

Schedule = Callable[[int], float]


def linear_anneal(start: float, end: float, steps: int) -> Schedule:
    """``t -> start + (end - start) t / steps`` until ``t = steps``, then ``end``."""
    start, end = _checks.real(start, "start"), _checks.real(end, "end")
    steps = _checks.integer(steps, "steps", minimum=1)

    def value(t: int) -> float:
        v = end + (start - end) * (1.0 - t / steps)
        return max(v, end) if start >= end else min(v, end)

    return value


def exponential_anneal(initial: float, final: float, begin: int, duration: int) -> Schedule:
    """``initial`` until ``begin``, then ``initial (final / initial)^((t - begin) / duration)`` until it
    reaches ``final``, then ``final``."""
    try:
        initial = _checks.real(initial, "initial", positive=True)
        final = _checks.real(final, "final", positive=True)
        begin = _checks.integer(begin, "begin", minimum=0)
        duration = _checks.integer(duration, "duration", minimum=1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"exponential_anneal: {exc}") from exc
    rate = math.log(final / initial) / duration

    def value(t: int) -> float:
        v = initial * math.exp(rate * max(0, t - begin))
        return max(v, final) if final < initial else min(v, final)

    return value


def relative_to(schedule: Schedule, base: float) -> Schedule:
    """The learning-rate factor ``t -> schedule(t) / base`` for ``lr_schedule`` with ``lr=base``."""
    base = _checks.real(base, "base", positive=True)
    return lambda t: schedule(t) / base


class AnnealAttribute:
    """A training callback that keeps ``setattr(target, name, schedule(step))`` for the coming step.

    It sets the value for step 0 when made; after step ``k`` the loop calls it and it sets ``schedule(k)``
    (step ``k + 1`` trains with it). On resume the loop calls :meth:`on_start` with the first step, so the resumed
    run sees the values an uninterrupted run would have.
    """

    def __init__(self, target: Any, name: str, schedule: Schedule):
        if not hasattr(target, name):
            raise AttributeError(f"{type(target).__name__} has no attribute {name!r} to anneal")
        self.target, self.name, self.schedule = target, name, schedule
        self.on_start(0)

    def on_start(self, step: int) -> None:
        setattr(self.target, self.name, self.schedule(step))

    def __call__(self, info: Any) -> None:
        setattr(self.target, self.name, self.schedule(info.step))
