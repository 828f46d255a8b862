"""Symmetry-based disentanglement (Higgins et al. 2018) measured on a factor grid: does each factor's group action
(a step of a translation or a cyclic factor: dSprites' position x, y and orientation) act on the codes as one
linear map, the same wherever it is applied, and on its own part of the code space?

A linear variant of the linear symmetry-based disentanglement (LSBD) idea of Tonnaer et al. 2022, stated so it
needs no chosen group representation: the map of each factor is fitted from the data, and checked on held-out
pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from probrep._checks import integer
from probrep.metrics._arrays import check_codes, check_factors, check_same_rows

__all__ = ["SymmetryResult", "symmetry"]


@dataclass(frozen=True)
class SymmetryResult:
    """Per evaluated factor (input columns ``factors``): ``equivariance [K']`` (the score's terms),
    ``predictability [K']`` and ``action [K']`` (the two R^2 it is the smaller of), ``num_pairs [K']``,
    ``moved_dims [K']`` (participation ratio of the displacement), ``axis_alignment [K']`` and the maps
    ``A [K', D, D]``, ``b [K', D]`` fitted on all pairs; between factors, ``overlap [K', K']`` (cosine of the
    displacement second moments; 1 on the diagonal) and ``separation`` = 1 - mean off-diagonal overlap.
    ``score`` is the mean equivariance."""

    score: float
    equivariance: np.ndarray
    predictability: np.ndarray
    action: np.ndarray
    num_pairs: np.ndarray
    moved_dims: np.ndarray
    axis_alignment: np.ndarray
    overlap: np.ndarray
    separation: float
    A: np.ndarray
    b: np.ndarray
    factors: np.ndarray


def _periods(cyclic: Any, num_factors: int, f: np.ndarray) -> dict[int, int]:
    """``{column: period}`` from a mapping, a sequence of columns (period: that column's max + 1) or None."""
    if cyclic is None:
        return {}
    items = cyclic.items() if isinstance(cyclic, Mapping) else ((k, None) for k in cyclic)
    out = {}
    for k, period in items:
        k = integer(k, "cyclic column", 0)
        if k >= num_factors:
            raise ValueError(f"cyclic column {k} is out of range for {num_factors} factors")
        out[k] = int(f[:, k].max()) + 1 if period is None else integer(period, f"period of cyclic column {k}", 2)
    return out


def _pairs(f: np.ndarray, k: int, period: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (i, j) with ``f[j] = f[i]`` except ``f[j, k] = f[i, k] + 1`` (mod ``period`` if cyclic).

    Rows are keyed by a mixed-radix integer of their factor values; the first row of a repeated key stands for
    it. A cyclic step from ``period - 1`` goes to 0; rows with ``f[:, k] >= period`` are not sources."""
    radix = f.max(axis=0).astype(np.int64) + 1
    if period is not None:
        radix[k] = max(int(radix[k]), period)
    strides = np.concatenate([np.cumprod(radix[::-1])[::-1][1:], [1]]).astype(np.int64)
    keys = f.astype(np.int64) @ strides
    uniq, first = np.unique(keys, return_index=True)
    v = f[:, k]
    if period is None:
        source = v + 1 < radix[k]
        target_keys = keys + strides[k]
    else:
        source = v < period
        target_keys = keys + (np.where(v + 1 == period, -(period - 1), 1) * strides[k])
    src = np.flatnonzero(source)
    # sources themselves deduplicated: one pair per distinct factor row
    src = src[np.isin(src, first)]
    pos = np.searchsorted(uniq, target_keys[src])
    found = (pos < uniq.size) & (uniq[np.minimum(pos, uniq.size - 1)] == target_keys[src])
    return src[found], first[pos[found]]


def _fit_affine(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``y ~ x A^T + b`` (minimum-norm solution when x is rank-deficient) -> (A [D, D], b [D])."""
    design = np.hstack([x, np.ones((len(x), 1))])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef[:-1].T, coef[-1]


def symmetry(
    factors: Any,
    codes: Any,
    *,
    which: Sequence[int] | None = None,
    cyclic: Mapping[int, int] | Sequence[int] | None = None,
    seed: int = 0,
    min_pairs: int = 10,
) -> SymmetryResult:
    """Linear equivariance of the codes under each factor's unit step, and the separation of what each moves.

    Inputs are codes on a factor grid: ``factors [N, K]`` integer classes (the group element: a step of factor
    k adds 1 to its class, modulo its period for a ``cyclic`` factor) and ``codes [N, D]`` of the same rows. A
    full grid is not needed: every pair of rows that differ by one step of factor k, and nowhere else, is used.

    Equivariance. For factor k, with pairs ``(z_i, z_j)`` (z_j: the code after the step), one affine map
    ``z_j ~ A_k z_i + b_k`` is fitted by least squares. If the representation carries the action linearly,
    one map explains every pair (Higgins et al.'s ``rho(g) z(x) = z(g x)``, with an affine ``rho`` because a
    translation of the world may translate the codes). The map is cross-fitted: pairs are split in two halves
    (seeded), the map fitted on one half predicts the other, so that a map with ``D^2 + D`` parameters cannot
    fit noise. With the held-out residual sum of squares ``SSR = sum ||z_j - A z_i - b||^2``,

        predictability_k = 1 - SSR / sum ||z_j - mean z_j||^2     (baseline: the map predicts nothing)
        action_k         = 1 - SSR / sum ||z_j - z_i||^2          (baseline: the step does nothing)
        equivariance_k   = max(0, min(predictability_k, action_k)),   score = mean_k equivariance_k

    Both baselines are needed: codes that ignore the factor are trivially "equivariant" (A = I, the trivial
    representation), which the action term scores 0 (a step that moves nothing scores 0 by definition), and
    pure noise is unpredictable, which the predictability term scores about 0. Identity codes of a translation
    factor (z_j = z_i + e_k), any invertible linear or orthogonal transform of them (A = M A M^-1, b = M b),
    and codes of a cyclic factor on a circle (cos, sin of 2 pi v / period; A a rotation) score exactly 1.

    Separation (which part of the code space each step moves). ``S_k = mean (z_j - z_i)(z_j - z_i)^T``:

        moved_dims_k     = (tr S_k)^2 / tr(S_k^2)    participation ratio: 1 for a step along one direction,
                                                     2 for a rotation in a plane (a cyclic factor on a circle)
        overlap_kl       = tr(S_k S_l) / (||S_k||_F ||S_l||_F),   separation = 1 - mean_{k != l} overlap_kl
        axis_alignment_k = max_d S_k[d, d] / tr S_k  share of the displacement on the single code dimension it
                                                     moves most

    ``overlap`` and ``separation`` are unchanged by any orthogonal change of basis (rotated identity codes keep
    separation 1: disentanglement in the group-theoretic sense is a decomposition into subspaces, not into
    axes); ``axis_alignment`` is the basis-dependent part (1 for identity codes, lower for rotated ones).

    Limits. (1) Linear: a representation that carries the action through a nonlinear map scores below 1 (the
    LSBD view; a smooth nonlinear code of a cyclic factor can be made linear by a different encoder). (2) One
    step: equivariance of the unit step implies it for multiples only if the map composes, which a linear map
    does by construction; but a translation factor's codes must also be consistent at the grid's edge, which is
    not tested (the step from the last value is not a pair). (3) A linear code of a cyclic factor (the class
    number itself) is not equivariant at the wrap, and scores below 1 when the factor is declared cyclic: that
    is the right answer, the code puts the last angle far from the first. (4) dSprites' orientation values run
    from 0 to 2 pi inclusive over 40 classes, so class 39 is class 0's angle: declare ``cyclic={k: 39}``; and a
    square (an ellipse) is unchanged by a quarter (half) turn, so the group acts with a stabiliser, and an
    encoder that maps equal images to equal codes is still equivariant. (5) Codes that are not functions of the
    factors (sampled codes, noise dimensions) count their noise as residual.

    Args:
        factors, codes: ``[N, K]`` integer classes and ``[N, D]`` codes.
        which: factor columns to evaluate (default: every column with at least ``min_pairs`` pairs).
        cyclic: cyclic columns: ``{column: period}``, or a sequence of columns (period: the column's max + 1).
        seed: seeds the split of the pairs into the two halves.
        min_pairs: the fewest pairs a factor needs (each half must be able to fit the map).
    """
    f = check_factors(factors, "factors")
    z = check_codes(codes, "codes")
    check_same_rows(f, "factors", z, "codes")
    min_pairs = integer(min_pairs, "min_pairs", 2)
    num_factors = f.shape[1]
    periods = _periods(cyclic, num_factors, f)
    if f.min() < 0:
        raise ValueError("factors must hold non-negative classes (0, 1, ...) so that a step adds 1")
    columns = range(num_factors) if which is None else [integer(k, "which entries", 0) for k in which]
    rng = np.random.default_rng(seed)
    kept, rows = [], []
    for k in columns:
        if k >= num_factors:
            raise ValueError(f"which column {k} is out of range for {num_factors} factors")
        i, j = _pairs(f, k, periods.get(k))
        if i.size >= min_pairs:
            kept.append(k)
            rows.append((i, j))
        elif which is not None:
            raise ValueError(f"factor column {k} has {i.size} step pairs in the grid; it needs {min_pairs}")
    if not kept:
        raise ValueError(
            f"no factor has {min_pairs} pairs of rows that differ by one step of it alone; symmetry needs codes "
            "on a factor grid (every neighbour of a row present for some rows)"
        )
    dim = z.shape[1]
    out = {name: np.zeros(len(kept)) for name in ("eq", "pred", "act", "moved", "axis")}
    maps_a, maps_b, moments = np.zeros((len(kept), dim, dim)), np.zeros((len(kept), dim)), []
    for n, (i, j) in enumerate(rows):
        x, y = z[i], z[j]
        half = rng.permutation(len(i)) < len(i) // 2
        ssr = 0.0
        for fit, test in ((half, ~half), (~half, half)):
            a, b = _fit_affine(x[fit], y[fit])
            ssr += float(np.sum((y[test] - x[test] @ a.T - b) ** 2))
        sst = float(np.sum((y - y.mean(axis=0)) ** 2))
        step = y - x
        ssd = float(np.sum(step**2))
        # scale-free exact zeros: an SSR at rounding level of the data counts as 0
        tiny = 1e-24 * max(float(np.sum(y**2)), 1.0)
        ssr = 0.0 if ssr <= tiny else ssr
        out["pred"][n] = 1.0 - ssr / sst if sst > 0 else 0.0
        out["act"][n] = 1.0 - ssr / ssd if ssd > tiny else 0.0
        out["eq"][n] = max(0.0, min(out["pred"][n], out["act"][n]))
        maps_a[n], maps_b[n] = _fit_affine(x, y)
        moment = step.T @ step / len(step)
        moments.append(moment)
        trace, frob2 = float(np.trace(moment)), float(np.sum(moment**2))
        out["moved"][n] = trace**2 / frob2 if frob2 > 0 else 0.0
        out["axis"][n] = float(np.max(np.diag(moment)) / trace) if trace > 0 else 0.0
    overlap = np.eye(len(kept))
    norms = [np.linalg.norm(m) for m in moments]
    for p in range(len(kept)):
        for q in range(p + 1, len(kept)):
            cos = float(np.sum(moments[p] * moments[q]) / (norms[p] * norms[q])) if norms[p] * norms[q] > 0 else 0.0
            overlap[p, q] = overlap[q, p] = cos
    off = overlap[~np.eye(len(kept), dtype=bool)]
    return SymmetryResult(
        score=float(out["eq"].mean()),
        equivariance=out["eq"],
        predictability=out["pred"],
        action=out["act"],
        num_pairs=np.array([len(i) for i, _ in rows]),
        moved_dims=out["moved"],
        axis_alignment=out["axis"],
        overlap=overlap,
        separation=float(1.0 - off.mean()) if off.size else 1.0,
        A=maps_a,
        b=maps_b,
        factors=np.array(kept),
    )
