"""Score matching: fit a model's score s(x) = grad_x log p(x) without its normalising constant (torch).

All objectives are estimates of (or equal, up to a constant, to) the Fisher divergence
``1/2 E_data ||s(x) - grad log p_data(x)||^2``; each returns the batch mean, or per-example values with
``reduction="none"``. Inputs ``x`` are ``[N, ...]``; the score function maps them to the same shape.

- :func:`exact`: Hyvarinen (2005), ``E[1/2 ||s(x)||^2 + tr grad_x s(x)]``, the trace by one backward pass per
  dimension (cost linear in the dimension).
- :func:`sliced`: Song et al. (2019), ``E_v[v^T grad_x (v^T s(x)) + 1/2 (v^T s(x))^2]`` (SSM) or with
  ``1/2 ||s(x)||^2`` (SSM-VR). Projections are NOT normalised: E[v v^T] = I makes both unbiased for the exact
  objective (normalising them divides it by the dimension).
- :func:`denoising`: Vincent (2011), ``1/2 E ||s(x + sigma e) + e / sigma||^2``; with several noise levels,
  the noise-conditional form ``1/2 E[sigma^2 ||s(x~, sigma) + e / sigma||^2]`` (Song & Ermon 2019).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from probrep.models.scores import ScoreFn


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _check(x: torch.Tensor, name: str = "x") -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape [N, ...] with N > 0, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")


def _score(score_fn: ScoreFn, x: torch.Tensor, *args) -> torch.Tensor:
    s = score_fn(x, *args)
    if s.shape != x.shape:
        raise ValueError(f"score_fn must return the input's shape {tuple(x.shape)}, got {tuple(s.shape)}")
    return s


def exact(score_fn: ScoreFn, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Hyvarinen's objective ``1/2 ||s(x)||^2 + tr grad_x s(x)``, the trace computed exactly."""
    _check(x)
    x = x.detach().requires_grad_(True)
    s = _score(score_fn, x)
    flat_s = s.reshape(len(x), -1)
    trace = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for d in range(flat_s.shape[1]):
        (grad,) = torch.autograd.grad(flat_s[:, d].sum(), x, create_graph=True)
        trace = trace + grad.reshape(len(x), -1)[:, d]
    return _reduce(0.5 * flat_s.pow(2).sum(1) + trace, reduction)


def _projections(shape, projection: str, generator, dtype, device) -> torch.Tensor:
    if projection == "gaussian":
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)
    if projection == "rademacher":
        return torch.randint(0, 2, shape, generator=generator, device=device).to(dtype) * 2 - 1
    raise ValueError(f"projection must be 'gaussian' or 'rademacher', got {projection!r}")


def sliced(
    score_fn: ScoreFn,
    x: torch.Tensor,
    n_projections: int = 1,
    variance_reduction: bool = False,
    projection: str = "gaussian",
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Sliced score matching (SSM, or SSM-VR with ``variance_reduction=True``); unbiased for :func:`exact`.

    Per example, averaged over ``n_projections`` unnormalised projections v (E[v v^T] = I):
    ``v^T grad_x (v^T s(x)) + 1/2 (v^T s(x))^2``, or ``... + 1/2 ||s(x)||^2`` for SSM-VR.
    """
    _check(x)
    if int(n_projections) < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    x = x.detach().requires_grad_(True)
    s = _score(score_fn, x)
    total = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for _ in range(int(n_projections)):
        v = _projections(x.shape, projection, generator, x.dtype, x.device)
        vs = (v * s).reshape(len(x), -1).sum(1)
        (grad,) = torch.autograd.grad(vs.sum(), x, create_graph=True)
        term = (grad * v).reshape(len(x), -1).sum(1)
        quadratic = 0.5 * s.reshape(len(x), -1).pow(2).sum(1) if variance_reduction else 0.5 * vs.pow(2)
        total = total + term + quadratic
    return _reduce(total / int(n_projections), reduction)


def denoising(
    score_fn: ScoreFn,
    x: torch.Tensor,
    sigma: float | Sequence[float] | torch.Tensor,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Denoising score matching.

    One ``sigma``: ``1/2 ||s(x~) + e / sigma||^2`` with ``x~ = x + sigma e`` and ``score_fn(x~)``.
    Several: each example gets a level drawn uniformly, ``score_fn(x~, sigma_i)`` (sigma_i shaped
    ``[N, 1, ...]`` to broadcast), and the loss is weighted by ``sigma_i^2`` (noise-conditional score networks).
    """
    _check(x)
    sigmas = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    if sigmas.numel() == 0 or not bool((sigmas > 0).all()) or not bool(torch.isfinite(sigmas).all()):
        raise ValueError(f"sigma must be positive and finite, got {sigma}")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if sigmas.numel() == 1:
        s = sigmas[0]
        score = _score(score_fn, x + s * noise)
        return _reduce(0.5 * (score + noise / s).reshape(len(x), -1).pow(2).sum(1), reduction)
    level = torch.randint(0, sigmas.numel(), (len(x),), generator=generator, device=x.device)
    s = sigmas[level].reshape(-1, *([1] * (x.dim() - 1)))
    score = _score(score_fn, x + s * noise, s)
    weighted = s.reshape(-1) ** 2 * (score + noise / s).reshape(len(x), -1).pow(2).sum(1)
    return _reduce(0.5 * weighted, reduction)


def geometric_sigmas(sigma_max: float, sigma_min: float, num_levels: int) -> torch.Tensor:
    """The NCSN noise ladder: ``num_levels`` values from ``sigma_max`` down to ``sigma_min``, geometric."""
    if not 0 < sigma_min < sigma_max or int(num_levels) < 2:
        raise ValueError("need 0 < sigma_min < sigma_max and num_levels >= 2")
    return torch.logspace(torch.log10(torch.tensor(sigma_max)), torch.log10(torch.tensor(sigma_min)), int(num_levels))
