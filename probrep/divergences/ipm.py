"""Integral probability metrics from samples: MMD (U-, V- and linear-time statistics, permutation test), energy
distance, 1-D and sliced Wasserstein.

Kernel sums are computed in blocks of ``block_size x block_size`` pairs (:mod:`probrep.divergences.pairwise`), so
memory stays ``O(block_size^2 + n d)`` whatever the sample sizes (100,000 x 100,000 pairs run on a laptop), on the
CPU or a GPU: every tensor stays on the inputs' device (or on ``device=`` when given). Sums accumulate in float64.

Kernels are radial, ``k(x, y) = phi(|x - y|^2)``, summed over one or several bandwidths ``h``:

* ``"rbf"``: ``exp(-|x - y|^2 / (2 h^2))``;
* ``"imq"`` (inverse multiquadric): ``(1 + |x - y|^2 / h^2)^(-1/2)``;
* a callable ``phi`` of squared distances.

``bandwidth=None`` uses the median heuristic: ``h`` = median distance between pooled points (on a seeded
subsample of at most 1,000 points).

Numerics: the samples are centred on their pooled mean and divided by a power of two before any distance is
formed (:func:`~probrep.divergences.pairwise.standardised`), so inputs at 1e20 (or 1e-20) give the same numbers as
at 1; half precision is computed in float32, float32 kernel blocks switch to float64 when points lie far from the
centre in bandwidths (two clusters at +-1e4 with h = 1), and energy distance and Wasserstein accumulate their
distances in float64 (an error of eps |a|^2 in a squared distance is sqrt(eps) |a| in a distance). Results come
back in the inputs' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probrep._checks import integer
from probrep.divergences._util import Estimate, as_samples, mean_and_stderr, same_space
from probrep.divergences.pairwise import (
    block_size_for,
    kernel_sum,
    needs_float64,
    power_of_two_scale,
    rbf_sum,
    same_samples,
    sqdist,
    squared_distance_blocks,
    standardised,
    two_sample_sums,
)

Phi = Callable[[torch.Tensor], torch.Tensor]  # a user's kernel: squared distances -> values
KERNELS = ("rbf", "imq")
_MEDIAN_POINTS = 1000


# ------------------------------------------------------------------------------------------------ plumbing
def _samples(x, y, device, min_rows: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    if device is None and torch.is_tensor(x) != torch.is_tensor(y):  # an array joins the tensor's device
        device = x.device if torch.is_tensor(x) else y.device
    x = as_samples(x, "x", device, min_rows=min_rows)
    y = as_samples(y, "y", device, min_rows=min_rows)
    return same_space(x, y)  # tensors on two devices are an error, not a silent copy


def _standardised(x: torch.Tensor, y: torch.Tensor, same_input: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
    """:func:`~probrep.divergences.pairwise.standardised`; equal samples (``same_input``: the caller passed one
    object twice, or the values are equal) come back as one tensor twice, so their sum is computed once."""
    return standardised(x, y, same_input or same_samples(x, y))


def _kernel_setup(
    kernel, bandwidth, x, y, same_input: bool, seed: int
) -> tuple[torch.Tensor, torch.Tensor, Callable, list]:
    """The standardised samples, the kernel's ``phi`` and its bandwidths in their units (divided by the scale). Float32
    samples that would cancel at the smallest bandwidth are standardised again from float64 copies of the inputs
    (centring 1e4 + a in float32 would already round a by 5e-4)."""
    xs, ys, scale = _standardised(x, y, same_input)
    if callable(kernel):
        # a user's kernel takes squared distances in the data's units
        return xs, ys, lambda d2, inplace: kernel(d2 * scale**2), []
    if bandwidth is None:
        hs = [median_bandwidth(xs, ys, seed=seed) * scale]
    else:
        hs = _bandwidth_list(bandwidth, x, y, seed)
    if needs_float64(xs, ys, min(hs) / scale):
        xs, ys, scale = _standardised(x.to(torch.float64), y.to(torch.float64), same_input)
    bandwidths = [h / scale for h in hs]
    return xs, ys, kernel_phi(kernel, bandwidths), bandwidths


# ------------------------------------------------------------------------------------------------- kernels
def median_bandwidth(x, y=None, *, max_points: int = _MEDIAN_POINTS, seed: int = 0) -> float:
    """The median heuristic: the median Euclidean distance between distinct pooled points.

    At most ``max_points`` points enter, drawn without replacement with a generator seeded by ``seed``.
    """
    z = as_samples(x, "x")
    if y is not None:
        z = torch.cat(same_space(z, as_samples(y, "y", z.device)))
    if z.shape[0] < 2:
        raise ValueError("the median heuristic needs at least 2 points")
    if z.shape[0] > max_points:
        pick = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed))[:max_points]
        z = z[pick.to(z.device)]
    # at most max_points points: float64 costs little, and a power-of-two scale keeps |z|^2 finite at any size
    z = z.detach().to(torch.float64)
    scale = power_of_two_scale(z)
    z = z / scale
    z = z - z.mean(0)
    z2 = z.pow(2).sum(1)
    d2 = sqdist(z, z, z2, z2, inplace=False)
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    dist = d2[iu[0], iu[1]].sqrt().sort().values
    k = dist.numel()
    h = float(0.5 * (dist[(k - 1) // 2] + dist[k // 2])) * scale  # the two middle values averaged, as numpy
    if not h > 0:
        raise ValueError("the median heuristic gives bandwidth 0 (most points coincide): pass bandwidth= explicitly")
    return h


def _bandwidth_list(bandwidth, x, y, seed) -> list[float]:
    if bandwidth is None:
        return [median_bandwidth(x, y, seed=seed)]
    values = [bandwidth] if np.ndim(bandwidth) == 0 else list(np.asarray(bandwidth, dtype=float).reshape(-1))
    hs = [float(h) for h in values]
    if not hs or any(not (math.isfinite(h) and h > 0) for h in hs):
        raise ValueError(f"bandwidth must be positive and finite (or a list of such), got {bandwidth!r}")
    return hs


def kernel_phi(kernel: str | Phi, bandwidths: Sequence[float]) -> Callable[[torch.Tensor, bool], torch.Tensor]:
    """``phi(d2, inplace)``: the radial kernel summed over ``bandwidths`` (a callable kernel ignores them)."""
    if callable(kernel):
        return lambda d2, inplace: kernel(d2)
    if not isinstance(kernel, str) or kernel.lower() not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}: expected one of {list(KERNELS)} or a callable of |x-y|^2")
    name = kernel.lower()

    def one(d2: torch.Tensor, h: float, inplace: bool) -> torch.Tensor:
        if name == "rbf":
            return d2.mul_(-0.5 / h**2).exp_() if inplace else torch.exp(-0.5 / h**2 * d2)
        return d2.mul_(1.0 / h**2).add_(1.0).rsqrt_() if inplace else torch.rsqrt(1.0 + d2 / h**2)

    def phi(d2: torch.Tensor, inplace: bool) -> torch.Tensor:
        if len(bandwidths) == 1:
            return one(d2, bandwidths[0], inplace)
        return sum(one(d2, h, False) for h in bandwidths)

    return phi


def _kernel_at_zero(phi) -> float:
    return float(phi(torch.zeros(1, 1, dtype=torch.float64), False).reshape(()))


# ----------------------------------------------------------------------------------------------------- MMD
def mmd2(
    x,
    y,
    kernel: str | Phi = "rbf",
    bandwidth: float | Sequence[float] | None = None,
    unbiased: bool = True,
    *,
    block_size: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Squared maximum mean discrepancy between samples ``x [n, d]`` and ``y [m, d]``.

    ``unbiased=True``: the U-statistic ``sum_{i!=j} k(x_i,x_j)/(n(n-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1))
    - 2 sum_ij k(x_i,y_j)/(nm)`` (mean 0 when P = Q, may be negative); ``False``: the V-statistic (diagonals
    included), the MMD^2 of the two empirical distributions (>= 0). Differentiable; computed in blocks.
    """
    same_input = x is y
    x, y = _samples(x, y, device, min_rows=2 if unbiased else 1)
    dtype = x.dtype
    b = block_size_for(block_size, x.device)
    x, y, phi, bandwidths = _kernel_setup(kernel, bandwidth, x, y, same_input, seed)
    n, m = x.shape[0], y.shape[0]
    sums = None
    if isinstance(kernel, str) and kernel.lower() == "rbf":
        sums = two_sample_sums(x, y, lambda a, c: rbf_sum(a, c, bandwidths, b))
    if sums is None:
        sums = two_sample_sums(x, y, lambda a, c: kernel_sum(a, c, phi, b))
    sxx, syy, sxy = sums
    if unbiased:
        k0 = _kernel_at_zero(phi)
        value = (sxx - n * k0) / (n * (n - 1)) + (syy - m * k0) / (m * (m - 1)) - 2.0 * sxy / (n * m)
    else:
        value = sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)
    return value.to(dtype)


def mmd2_linear(
    x,
    y,
    kernel: str | Phi = "rbf",
    bandwidth: float | Sequence[float] | None = None,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> Estimate:
    """Linear-time MMD^2 (Gretton et al. 2012, Lemma 14) with its standard error; needs ``n == m``.

    Mean over ``i < n // 2`` of ``k(x_2i, x_2i+1) + k(y_2i, y_2i+1) - k(x_2i, y_2i+1) - k(x_2i+1, y_2i)``:
    independent terms, so the standard error is their standard deviation over ``sqrt(n // 2)``.
    """
    x, y = _samples(x, y, device, min_rows=4)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"mmd2_linear needs as many x as y samples, got {x.shape[0]} and {y.shape[0]}")
    x, y, phi, _ = _kernel_setup(kernel, bandwidth, x, y, False, seed)
    half = x.shape[0] // 2
    x1, x2, y1, y2 = x[0 : 2 * half : 2], x[1 : 2 * half : 2], y[0 : 2 * half : 2], y[1 : 2 * half : 2]

    def k(a, b):
        return phi((a - b).pow(2).sum(1, keepdim=True), False).reshape(-1)

    terms = k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
    value, stderr = mean_and_stderr(terms)
    return Estimate(value, stderr, half)


@dataclass(frozen=True)
class PermutationTest:
    """A two-sample permutation test: the observed statistic, its p-value, and the permutation statistics."""

    statistic: float
    p_value: float
    null: torch.Tensor  # [num_permutations] statistics under random relabelling (CPU, float64)


def mmd_permutation_test(
    x,
    y,
    kernel: str | Phi = "rbf",
    bandwidth: float | Sequence[float] | None = None,
    unbiased: bool = True,
    *,
    num_permutations: int = 500,
    seed: int = 0,
    block_size: int | None = None,
    device: str | torch.device | None = None,
) -> PermutationTest:
    """Test ``P = Q`` with MMD^2: p-value ``(1 + #{null >= observed}) / (1 + num_permutations)`` (exact level).

    Permutation k relabels the pooled sample ``z = [x; y]`` as ``x' = z[o[:n]]``, ``y' = z[o[n:]]`` with
    ``o = argsort(torch.rand(num_permutations, n + m, generator=Generator().manual_seed(seed)))[k]``.

    All permutations are evaluated in one blockwise pass over the pooled kernel matrix: with indicator columns
    ``w_p`` of "labelled x" under permutation p, ``S_xx(p) = w_p' K w_p`` and ``S_yy(p) = (1 - w_p)' K (1 - w_p)``,
    and ``S_xy = (1' K 1 - S_xx - S_yy) / 2``. Memory ``O(block_size^2 + (n + m) num_permutations)``.
    """
    x, y = _samples(x, y, device, min_rows=2)
    num_permutations = integer(num_permutations, "num_permutations")
    n, m = x.shape[0], y.shape[0]
    with torch.no_grad():
        x, y, phi, _ = _kernel_setup(kernel, bandwidth, x, y, False, seed)
        z = torch.cat([x, y])
        total = n + m
        gen = torch.Generator().manual_seed(seed)
        order = torch.rand(num_permutations, total, generator=gen).argsort(dim=1)
        labels = torch.zeros(num_permutations + 1, total, dtype=z.dtype)
        labels[0, :n] = 1.0  # column 0: the observed labelling
        labels[1:].scatter_(1, order[:, :n], 1.0)
        w = torch.cat([labels, 1.0 - labels]).T.contiguous().to(z.device)  # [total, 2 (P + 1)]
        quad = torch.zeros(w.shape[1], dtype=torch.float64, device=z.device)
        grand = torch.zeros((), dtype=torch.float64, device=z.device)
        for d2, rows, cols, weight in squared_distance_blocks(z, None, block_size_for(block_size, z.device)):
            values = phi(d2, True)
            quad.add_(weight * (w[rows] * (values @ w[cols])).sum(0, dtype=torch.float64))
            grand = grand + weight * values.sum(dtype=torch.float64)
        k = num_permutations + 1
        sxx, syy = quad[:k], quad[k:]
        sxy = 0.5 * (grand - sxx - syy)
        if unbiased:
            k0 = _kernel_at_zero(phi)
            stats = (sxx - n * k0) / (n * (n - 1)) + (syy - m * k0) / (m * (m - 1)) - 2.0 * sxy / (n * m)
        else:
            stats = sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)
        stats = stats.cpu()
    observed, null = float(stats[0]), stats[1:]
    if not bool(torch.isfinite(stats).all()):
        # a NaN compares False with everything, so p would be 1 / (1 + P): a confident "reject" from no evidence
        raise FloatingPointError(
            f"mmd_permutation_test: the MMD statistic is {observed} ({int((~torch.isfinite(null)).sum())} of "
            f"{num_permutations} permutation statistics not finite); no p-value can be given (check the kernel)"
        )
    # ties count against rejection; a relative slack absorbs float rounding between equal relabellings
    slack = 1e-9 * max(abs(observed), float(null.abs().max()))
    p_value = (1.0 + float((null >= observed - slack).sum())) / (1.0 + num_permutations)
    return PermutationTest(observed, p_value, null)


# ------------------------------------------------------------------------------------------ energy distance
def _distance(d2: torch.Tensor, inplace: bool) -> torch.Tensor:
    if inplace:
        return d2.sqrt_()
    # exact 0 at coincident points, and a zero (not NaN) gradient there
    return torch.where(d2 > 0, d2.clamp_min(1e-30).sqrt(), torch.zeros_like(d2))


def energy_distance(
    x, y, unbiased: bool = False, *, block_size: int | None = None, device: str | torch.device | None = None
) -> torch.Tensor:
    """Squared energy distance ``D^2 = 2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (Szekely and Rizzo).

    ``unbiased=False``: the D^2 of the empirical distributions (in 1-D the square of
    ``scipy.stats.energy_distance``); ``True``: U-statistics for the within-sample terms. Computed in blocks.
    """
    same_input = x is y
    x, y = _samples(x, y, device, min_rows=2 if unbiased else 1)
    dtype = x.dtype
    # distances, not kernels of them: float32 would leave sqrt(eps) |a| of each
    x, y, scale = _standardised(x.to(torch.float64), y.to(torch.float64), same_input)
    b = block_size_for(block_size, x.device)
    n, m = x.shape[0], y.shape[0]
    sxx, syy, sxy = two_sample_sums(x, y, lambda a, c: kernel_sum(a, c, _distance, b))
    nxx, nyy = (n * (n - 1), m * (m - 1)) if unbiased else (n * n, m * m)
    return (scale * (2.0 * sxy / (n * m) - sxx / nxx - syy / nyy)).to(dtype)


# ----------------------------------------------------------------------------------------------- Wasserstein
def _check_p(p: float) -> float:
    p = float(p)
    if not (p >= 1.0 and math.isfinite(p)):
        raise ValueError(f"p must be a finite number >= 1, got {p}")
    return p


def _wpp_sorted(xs: torch.Tensor, ys: torch.Tensor, p: float) -> torch.Tensor:
    """``W_p^p`` per column between sorted columns ``xs [n, k]`` and ``ys [m, k]`` (quantile coupling).

    With unequal sizes the quantile functions are piecewise constant on a merged grid of levels ``i/n`` and
    ``j/m``; integers ``i m`` and ``j n`` (in units of ``1/(n m)``) keep the grid exact.
    """
    n, m = xs.shape[0], ys.shape[0]
    if n == m:
        return (xs - ys).abs().pow(p).mean(0)
    dev = xs.device
    # merge the two sorted level sequences without sorting: i m has (i - 1) + #{j : j n < i m} levels before it,
    # j n has (j - 1) + #{i : i m <= j n} (a tie puts i m first; it then bounds an interval of weight 0)
    i, j = torch.arange(1, n + 1, device=dev), torch.arange(1, m + 1, device=dev)
    levels = torch.empty(n + m, dtype=torch.int64, device=dev)
    levels[(i - 1) + torch.div(i * m - 1, n, rounding_mode="floor")] = i * m
    levels[(j - 1) + torch.div(j * n, m, rounding_mode="floor")] = j * n
    weights = torch.diff(levels, prepend=levels.new_zeros(1)).to(xs.dtype) / (n * m)
    ix = torch.div(levels + m - 1, m, rounding_mode="floor") - 1
    iy = torch.div(levels + n - 1, n, rounding_mode="floor") - 1
    return ((xs[ix] - ys[iy]).abs().pow(p) * weights[:, None]).sum(0)


def wasserstein_1d(x, y, p: float = 1.0, *, device: str | torch.device | None = None) -> torch.Tensor:
    """``W_p = (int_0^1 |F^-1(t) - G^-1(t)|^p dt)^(1/p)`` between the empirical distributions of 1-D samples.

    Exact (sorted samples; sizes may differ). ``p=1`` equals ``scipy.stats.wasserstein_distance``.
    """
    p = _check_p(p)
    x, y = _samples(x, y, device)
    if x.shape[1] != 1:
        raise ValueError(f"wasserstein_1d needs 1-D samples, got dimension {x.shape[1]}: use sliced_wasserstein")
    dtype = x.dtype
    x, y, scale = standardised(x.to(torch.float64), y.to(torch.float64), False)
    wpp = _wpp_sorted(x.sort(0).values, y.sort(0).values, p)[0]
    return (scale * wpp.pow(1.0 / p)).to(dtype)


def sliced_wasserstein(
    x,
    y,
    p: float = 2.0,
    num_projections: int = 256,
    *,
    seed: int = 0,
    directions: torch.Tensor | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``SW_p = (E_theta W_p^p(theta'X, theta'Y))^(1/p)``, theta uniform on the unit sphere (Monte Carlo).

    ``directions [k, d]`` (normalised here) replace the ``num_projections`` random ones drawn from ``seed``.
    For ``N(m1, s1^2 I)`` vs ``N(m2, s2^2 I)`` in d dimensions, ``SW_2^2 = |m1 - m2|^2 / d + (s1 - s2)^2``.
    """
    p = _check_p(p)
    x, y = _samples(x, y, device)
    dtype = x.dtype
    # float64 projections: sorting and differencing them is the whole estimator, and cheap next to it
    x, y, scale = standardised(x.to(torch.float64), y.to(torch.float64), False)
    if directions is None:
        num_projections = integer(num_projections, "num_projections")
        gen = torch.Generator().manual_seed(seed)
        theta = torch.randn(num_projections, x.shape[1], generator=gen, dtype=torch.float64)
    else:
        theta = as_samples(directions, "directions", x.device).to(torch.float64)
        if theta.shape[1] != x.shape[1]:
            raise ValueError(f"directions must be [k, {x.shape[1]}], got {tuple(theta.shape)}")
        if bool((theta.norm(dim=1) == 0).any()):
            raise ValueError("directions contains a zero vector")
    theta = (theta / theta.norm(dim=1, keepdim=True)).to(x.device)
    wpp = _wpp_sorted((x @ theta.T).sort(0).values, (y @ theta.T).sort(0).values, p)
    return (scale * wpp.mean().pow(1.0 / p)).to(dtype)
