"""Score-based discrepancies: the kernel Stein discrepancy of samples against a score function (to check MCMC
output without normalising constants) and the Fisher divergence by Monte Carlo.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from probrep._checks import real
from probrep.divergences._util import Estimate, as_samples, as_tensor, mean_and_stderr
from probrep.divergences.ipm import median_bandwidth
from probrep.divergences.pairwise import block_size_for, squared_distance_blocks

Score = Callable[[torch.Tensor], torch.Tensor]
STEIN_KERNELS = ("imq", "rbf")


def _scores(score: Score | torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    if callable(score):
        with torch.no_grad():
            s = score(x)
    else:
        s = score
    s = as_tensor(s, name).to(x.device)
    if s.shape != x.shape and s.dim() >= 1 and s.shape[0] == x.shape[0] and s.numel() == x.numel():
        s = s.reshape(x.shape)  # e.g. scores [n] of 1-D samples
    if s.shape != x.shape:
        raise ValueError(f"{name} must have the shape of the samples {tuple(x.shape)}, got {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return s.to(x.dtype)


def _radial_derivatives(kernel: str, h: float, beta: float):
    """``phi, phi', phi''`` of the kernel as functions of the squared distance ``r2``."""
    if kernel == "rbf":
        c = 0.5 / h**2

        def derivs(r2):
            phi = torch.exp(-c * r2)
            return phi, -c * phi, c * c * phi

        return derivs

    def derivs_imq(r2):
        base = 1.0 + r2 / h**2
        phi = base.pow(beta)
        return phi, (beta / h**2) * phi / base, (beta * (beta - 1.0) / h**4) * phi / base**2

    return derivs_imq


def ksd2(
    x,
    score: Score | torch.Tensor,
    kernel: str = "imq",
    bandwidth: float | None = 1.0,
    *,
    beta: float = -0.5,
    unbiased: bool = True,
    block_size: int | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Squared kernel Stein discrepancy ``KSD^2 = E_{x,x' ~ q}[u_p(x, x')]`` of samples ``x ~ q`` against the
    score ``s = grad log p`` (Liu et al. 2016; Gorham and Mackey 2017): zero iff q = p for these kernels.

    For a radial kernel ``k = phi(r^2)``, ``r = x - x'``, with ``d`` dimensions:
    ``u_p = phi s(x)'s(x') + 2 phi' r'(s(x') - s(x)) - 4 phi'' |r|^2 - 2 d phi'``.
    Kernels: ``"imq"`` ``(1 + r^2/h^2)^beta`` (beta in (-1, 0); the default for convergence control) and
    ``"rbf"`` ``exp(-r^2 / (2 h^2))``. ``unbiased`` drops the ``i = j`` terms (U-statistic, mean 0 when q = p).
    ``score`` is a callable on ``x`` or its values ``[n, d]``. Computed in blocks.
    """
    x = as_samples(x, "x", device, min_rows=2 if unbiased else 1)
    if not isinstance(kernel, str) or kernel.lower() not in STEIN_KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}: expected one of {list(STEIN_KERNELS)}")
    kernel = kernel.lower()
    if not -1.0 < real(beta, "beta") < 0.0:
        raise ValueError(f"beta must lie in (-1, 0), got {beta}")
    h = median_bandwidth(x) if bandwidth is None else real(bandwidth, "bandwidth", positive=True)
    s = _scores(score, x, "score")
    x = x.detach()
    derivs = _radial_derivatives(kernel, h, beta)
    n, d = x.shape
    xs_self = (x * s).sum(1)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for r2, rows, cols, weight in squared_distance_blocks(x, None, block_size_for(block_size, x.device)):
            phi, dphi, ddphi = derivs(r2)
            cross = x[rows] @ s[cols].T - xs_self[rows, None] - xs_self[None, cols] + s[rows] @ x[cols].T
            u = phi * (s[rows] @ s[cols].T) + 2.0 * dphi * cross - 4.0 * ddphi * r2 - 2.0 * d * dphi
            total = total + weight * u.sum(dtype=torch.float64)
        phi0, dphi0, _ = derivs(torch.zeros((), dtype=torch.float64))
        diagonal = (float(phi0) * s.pow(2).sum(1, dtype=torch.float64) - 2.0 * d * float(dphi0)).sum()
    if unbiased:
        value = (total - diagonal) / (n * (n - 1))
    else:
        value = total / n**2
    return value.to(x.dtype)


def fisher_divergence(x, score_p: Score | torch.Tensor, score_q: Score | torch.Tensor) -> Estimate:
    """``F(P||Q) = E_P |grad log p - grad log q|^2`` by Monte Carlo over samples ``x ~ P``, with standard error."""
    x = as_samples(x, "x", min_rows=2)
    sp, sq = _scores(score_p, x, "score_p"), _scores(score_q, x, "score_q")
    value, stderr = mean_and_stderr((sp - sq).pow(2).sum(1))
    return Estimate(value, stderr, x.shape[0])
