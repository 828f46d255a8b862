"""Sums over all pairs of two sample sets, in blocks: the one block loop behind MMD, energy distance and KSD.

A sum over the ``n x m`` pairs of ``x [n, d]`` and ``y [m, d]`` visits ``block_size x block_size`` blocks of
the pair grid (:func:`blocks`), so memory stays ``O(block_size^2 + (n + m) d)`` whatever the sample sizes, on
the inputs' device. The pairs of one sample with itself (``y=None``) are symmetric: only blocks on or above the
diagonal are formed, those above counted twice, which halves the work. Sums accumulate in float64.

Inputs are standardised first (:func:`standardised`): centred on the pooled mean and divided by one power of two
(exact), so ``|a|^2`` neither overflows (inputs at 1e20 in float32) nor cancels more than it must; half precision
is computed in float32, and :func:`needs_float64` says when float32 would still cancel too much.

Two ways to fill a block: squared distances ``|x_i - y_j|^2`` (:func:`squared_distance_blocks`) for any radial
kernel, or, for the Gaussian kernel, the factorisation ``exp(-|a - b|^2 / 2h^2) = exp(-|a|^2 / 2h^2)
exp(a.b / h^2) exp(-|b|^2 / 2h^2)`` (:func:`rbf_sum`), one matrix product and one ``exp`` per block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch

from probrep._checks import integer

#: ``phi(d2, inplace)``: a kernel (or any function) of a block of squared distances; it may overwrite ``d2``
#: when ``inplace`` is true
Phi = Callable[[torch.Tensor, bool], torch.Tensor]


def block_size_for(block_size: int | None, device: torch.device) -> int:
    """``block_size`` checked, or the default for ``device`` (larger blocks keep a GPU busy)."""
    if block_size is None:
        return 8192 if device.type == "cuda" else 2048
    return integer(block_size, "block_size")


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd will track work on ``tensors`` (then blocks must not be overwritten in place)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def blocks(n: int, m: int, block_size: int, symmetric: bool) -> Iterator[tuple[slice, slice, float]]:
    """``(rows, cols, weight)`` over the blocks of the ``n x m`` pair grid, row block by row block.

    ``symmetric`` (the pairs of one sample with itself, ``n == m``): only blocks on or above the diagonal, with
    ``weight`` 2 above it and 1 on it (where ``rows == cols``); otherwise every block, weight 1.
    """
    for i0 in range(0, n, block_size):
        rows = slice(i0, min(i0 + block_size, n))
        for j0 in range(i0 if symmetric else 0, m, block_size):
            yield rows, slice(j0, min(j0 + block_size, m)), 2.0 if symmetric and i0 != j0 else 1.0


def sqdist(a: torch.Tensor, b: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``|a_i - b_j|^2 = |a_i|^2 + |b_j|^2 - 2 a_i . b_j`` (``a2``, ``b2`` the squared norms), clamped at 0."""
    if inplace:
        d2 = torch.addmm(b2[None, :], a, b.T, alpha=-2.0)
        return d2.add_(a2[:, None]).clamp_min_(0.0)
    return (a2[:, None] + b2[None, :] - 2.0 * (a @ b.T)).clamp_min(0.0)


def squared_distance_blocks(
    x: torch.Tensor, y: torch.Tensor | None, block_size: int
) -> Iterator[tuple[torch.Tensor, slice, slice, float]]:
    """``(d2, rows, cols, weight)`` over :func:`blocks`, ``d2`` the block's squared distances.

    With ``y=None`` the diagonal of each diagonal block is exactly 0 (a point's distance to itself). A block may
    be overwritten by the caller unless :func:`needs_grad`; the next block is a new tensor.
    """
    other = x if y is None else y
    inplace = not needs_grad(x, other)
    x2, y2 = x.pow(2).sum(1), other.pow(2).sum(1)
    for rows, cols, weight in blocks(x.shape[0], other.shape[0], block_size, symmetric=y is None):
        d2 = sqdist(x[rows], other[cols], x2[rows], y2[cols], inplace)
        if y is None and rows == cols:
            if inplace:
                d2.fill_diagonal_(0.0)
            else:
                d2 = d2 * (1.0 - torch.eye(d2.shape[0], dtype=d2.dtype, device=d2.device))
        yield d2, rows, cols, weight


def kernel_sum(x: torch.Tensor, y: torch.Tensor | None, phi: Phi, block_size: int) -> torch.Tensor:
    """``sum_ij phi(|x_i - y_j|^2)`` in float64 (``y=None``: over all ordered pairs of x, the diagonal included)."""
    inplace = not needs_grad(x, x if y is None else y)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for d2, _, _, weight in squared_distance_blocks(x, y, block_size):
        total = total + weight * phi(d2, inplace).sum(dtype=torch.float64)
    return total


def rbf_sum(
    x: torch.Tensor, y: torch.Tensor | None, bandwidths: Sequence[float], block_size: int
) -> torch.Tensor | None:
    """``sum_ij sum_h exp(-|x_i - y_j|^2 / (2 h^2))`` through the factorisation of the module docstring: about
    2.5x fewer passes over memory than forming distances.

    Used only when every exponent stays far from overflow (``max |x|^2 / h^2`` below 80 in float32, 700 in
    float64, 10 in float16; callers centre the inputs first); otherwise returns None and the caller forms
    distances with :func:`kernel_sum`.
    """
    other = x if y is None else y
    radius2 = float(torch.maximum(x.detach().pow(2).sum(1).max(), other.detach().pow(2).sum(1).max()))
    limit = {torch.float64: 700.0, torch.float16: 10.0}.get(x.dtype, 80.0)  # log of the largest finite value
    if radius2 / min(bandwidths) ** 2 >= limit:
        return None
    inplace = not needs_grad(x, other)
    scaled = [
        (h, torch.exp(-0.5 / h**2 * x.pow(2).sum(1)), torch.exp(-0.5 / h**2 * other.pow(2).sum(1))) for h in bandwidths
    ]
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for rows, cols, weight in blocks(x.shape[0], other.shape[0], block_size, symmetric=y is None):
        dots = x[rows] @ other[cols].T
        for k, (h, u, v) in enumerate(scaled):
            last = inplace and k == len(scaled) - 1
            e = dots.mul_(1.0 / h**2).exp_() if last else torch.exp(dots / h**2)
            total = total + weight * (u[rows] @ (e @ v[cols])).to(torch.float64)
    return total


def same_samples(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether the pairs of ``x`` with ``y`` are those of ``x`` with itself, so one symmetric sum serves for all
    three sums of a two-sample statistic: ``y`` is ``x``, or (when no gradient is tracked, which would flow
    differently through two tensors) ``y`` holds the same values."""
    if y is x:
        return True
    return not needs_grad(x, y) and x.shape == y.shape and bool(torch.equal(x, y))


def two_sample_sums(
    x: torch.Tensor, y: torch.Tensor, pair_sum: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor | None]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(S_xx, S_yy, S_xy)`` from ``pair_sum(a, b)`` (``b=None``: a with itself), or None if any is None.

    Equal samples (:func:`same_samples`) give one symmetric sum three times, so a statistic that vanishes on
    identical samples is exactly 0, not the rounding difference of a half-grid and a full-grid sum.
    """
    if same_samples(x, y):
        s = pair_sum(x, None)
        return None if s is None else (s, s, s)
    sums = (pair_sum(x, None), pair_sum(y, None), pair_sum(x, y))
    return None if any(s is None for s in sums) else sums


def power_of_two_scale(*tensors: torch.Tensor) -> float:
    """``2^(e - 1)`` with ``max |t| = f 2^e``, ``1/2 <= f < 1`` (1.0 for all-zero input): dividing by it is exact
    (short of subnormals) and brings every value into ``(-2, 2)``, however large or small the inputs are."""
    largest = max(float(t.detach().abs().max()) for t in tensors)
    if largest == 0.0 or not math.isfinite(largest):
        return 1.0
    return math.ldexp(1.0, math.frexp(largest)[1] - 1)


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16 / bfloat16 are computed in float32: their ``|a|^2`` overflows at |a| = 256 and their eps (1e-3)
    leaves nothing of ``|a|^2 + |b|^2 - 2 a.b`` for nearby points."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def standardised(x: torch.Tensor, y: torch.Tensor, same: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(x', y', scale)`` with ``x = scale x' + c``, ``y = scale y' + c``: both samples in the working dtype,
    centred on their pooled mean ``c`` (distances are shift-invariant; centring limits the cancellation in
    ``|a|^2 + |b|^2 - 2 a.b``) and divided by a power of two (so the squares cannot overflow, and ratios of
    distances are exactly as before). ``same`` (the pairs of ``y`` are those of ``x``) returns one tensor twice,
    so that :func:`two_sample_sums` forms the symmetric sum once."""
    dtype = working_dtype(x.dtype)
    x, y = x.to(dtype), y.to(dtype)
    first = power_of_two_scale(x, y)  # first into (-2, 2), so that the mean's sum cannot overflow either
    x, y = x / first, y / first
    center = torch.cat([x, y]).mean(0).detach()
    x, y = x - center, y - center
    second = power_of_two_scale(x, y)
    x, y = x / second, y / second
    return x, (x if same else y), first * second


#: float32 distance blocks are kept while every point lies within this many (squared) bandwidths of the centre:
#: the absolute error of ``|a - b|^2`` is about eps |a|^2, so the kernel's is about eps R^2 / h^2, here below
#: 1e-5; beyond it (two clusters at +-1e4 with h = 1: R^2 / h^2 = 1e8) the blocks are formed in float64
FLOAT32_RADIUS2 = 64.0


def needs_float64(x: torch.Tensor, y: torch.Tensor, length: float) -> bool:
    """Whether float32 distances of these (standardised) samples would cancel badly at the length scale
    ``length`` (a kernel's smallest bandwidth, in the same units)."""
    if x.dtype != torch.float32:
        return False
    radius2 = float(torch.maximum(x.detach().pow(2).sum(1).max(), y.detach().pow(2).sum(1).max()))
    return radius2 > FLOAT32_RADIUS2 * length**2
