"""The count prior of AIR: the success probabilities of the ``z_pres`` chain and the distribution of the
object count they imply."""

from __future__ import annotations

import math

import numpy as np

COUNT_PRIORS = ("geometric", "constant")


def count_prior_step_probs(k: float, num_steps: int, kind: str = "geometric") -> list[float]:
    """Success probabilities ``p_t = P(count > t | count >= t)`` of the ``z_pres`` chain.

    ``"geometric"``: the truncated geometric ``P(count = n) ∝ k^n`` for n = 0..N (k > 0), so
    ``p_t = sum_{n>t} k^n / sum_{n>=t} k^n``; every extra object costs ``log k`` nats. ``"constant"``:
    ``p_t = k`` (0 < k <= 1) at every step.
    """
    if kind not in COUNT_PRIORS:
        raise ValueError(f"unknown count prior {kind!r}: expected one of {COUNT_PRIORS}")
    if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0) or (kind == "constant" and k > 1):
        bound = "in (0, 1]" if kind == "constant" else "> 0"
        raise ValueError(f"z_pres_prior must be a finite number {bound} for the {kind} prior, got {k!r}")
    if kind == "constant":
        return [float(k)] * num_steps
    powers = [float(k) ** n for n in range(num_steps + 1)]
    return [sum(powers[t + 1 :]) / sum(powers[t:]) for t in range(num_steps)]


def count_prior(k: float, num_steps: int, kind: str = "geometric") -> np.ndarray:
    """The prior ``P(count = n)`` for n = 0..N implied by :func:`count_prior_step_probs`."""
    probs = count_prior_step_probs(k, num_steps, kind)
    out, alive = np.zeros(num_steps + 1), 1.0
    for t, p in enumerate(probs):
        out[t] = alive * (1.0 - p)
        alive *= p
    out[num_steps] = alive
    return out
