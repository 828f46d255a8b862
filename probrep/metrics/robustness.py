"""Interventional Robustness Score (Suter et al. 2019), with the semantics of disentanglement_lib.

For each active latent ``l`` and generative factor ``i``: hold ``g_i`` at each of its values ``k``, measure how
far the latent still moves, ``d_ik = quantile_q |z_l - E[z_l | g_i = k]|`` over that group, average over the
values, and normalise by the latent's largest deviation ``max_dev_l = max_n |z_l - mean(z_l)|``:

    IRS[l, i] = 1 - mean_k d_ik / max_dev_l,   per_latent[l] = max_i IRS[l, i],
    score     = sum_l max_dev_l per_latent[l] / sum_l max_dev_l.

A latent that stays put when everything but its parent factor is intervened on scores near 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probrep._checks import probability
from probrep.metrics._arrays import check_codes, check_factors, check_same_rows, discretize


@dataclass
class IRSResult:
    """IRS and its parts. Rows of inactive (constant) latents are NaN in ``matrix``/``per_latent``, parent -1."""

    score: float
    matrix: np.ndarray  # [D, K]
    per_latent: np.ndarray  # [D]
    parents: np.ndarray  # [D], argmax factor of each latent
    active: np.ndarray  # [D], bool
    max_deviations: np.ndarray  # [D]
    num_active_dims: int


#: a code column whose values spread over less than this fraction of their magnitude is constant: float rounding
#: (a mean of equal values) leaves variances like 2.6e-31 that an exact "> 0" would read as an active latent
_CONSTANT_RTOL = 1e-12


def irs(factors, codes, diff_quantile: float = 0.99, num_bins: int | None = None) -> IRSResult:
    """Interventional Robustness Score of ``codes [N, D]`` with respect to ``factors [N, K]``.

    ``factors`` are discrete classes (integers, or floats like 3.0); continuous factors are refused with the error
    MIG and DCI give (grouping by every distinct value would make each group one point, and any code, even one
    independent of the factors, would score a perfect 1.0): give ``num_bins`` to discretise them into equal-width
    bins first. numpy arrays and torch tensors are accepted.

    disentanglement_lib bins every factor into 20 equal-width bins before IRS (``discretizer.num_bins = 20``), so
    a factor with more than 20 values (dSprites' orientation, 40, and positions, 32) scores differently there:
    ``num_bins=20`` gives disentanglement_lib's number.

    Scale-free: each code column is computed on in units of a power of two of its magnitude (exact, so the
    numbers are those of the plain formula), which keeps codes near the float64 limit (1e307) finite; a column
    that spreads over less than ``1e-12`` of its magnitude counts as constant (inactive).
    """
    g = check_factors(factors, classes=num_bins is None, hint="irs takes num_bins=, e.g. 20 as disentanglement_lib")
    z = check_codes(codes)
    check_same_rows(g, "factors", z, "codes")
    diff_quantile = probability(diff_quantile, "diff_quantile", open_interval=False)
    if num_bins is not None:
        g = discretize(g.astype(np.float64), num_bins)  # equal-width bins: numpy histogram edges, then digitize
    num_latents, num_factors = z.shape[1], g.shape[1]

    # z_l = zs_l * 2**exponent_l with |zs_l| < 1: every IRS[l, i] is a ratio within one column, so it is the same
    # in these units, and nothing below can overflow
    magnitude = np.abs(z).max(axis=0)
    exponent = np.frexp(magnitude)[1]
    zs = np.ldexp(z, -exponent[None, :])
    active = np.ptp(zs, axis=0) > _CONSTANT_RTOL * np.abs(zs).max(axis=0)
    max_dev_scaled = np.where(active, np.abs(zs - zs.mean(axis=0)).max(axis=0), 0.0)
    with np.errstate(over="ignore"):  # reported in the codes' units, where it may exceed float64 (then inf)
        max_dev = np.ldexp(max_dev_scaled, exponent)
    matrix = np.full((num_latents, num_factors), np.nan)
    per_latent = np.full(num_latents, np.nan)
    parents = np.full(num_latents, -1, dtype=np.int64)
    if not active.any():
        return IRSResult(0.0, matrix, per_latent, parents, active, max_dev, 0)

    za = zs[:, active]
    deviation = np.zeros((za.shape[1], num_factors))
    for i in range(num_factors):
        values, groups = np.unique(g[:, i], return_inverse=True)
        # group means for all values at once, then each group's quantile of |z - E[z | g_i = k]|
        counts = np.bincount(groups, minlength=len(values)).astype(np.float64)
        means = np.stack([np.bincount(groups, weights=za[:, l], minlength=len(values)) for l in range(za.shape[1])], 1)
        means /= counts[:, None]
        diffs = np.abs(za - means[groups])
        order = np.argsort(groups, kind="stable")
        bounds = np.cumsum(counts.astype(np.int64))[:-1]
        per_value = [np.percentile(block, 100.0 * diff_quantile, axis=0) for block in np.split(diffs[order], bounds)]
        deviation[:, i] = np.mean(per_value, axis=0)
    matrix_active = 1.0 - deviation / max_dev_scaled[active][:, None]
    matrix[active] = matrix_active
    per_latent[active] = matrix_active.max(axis=1)
    parents[active] = matrix_active.argmax(axis=1)
    # weights max_dev_l relative to the largest column's units (ratios of powers of two: exact, no overflow)
    weights = np.ldexp(max_dev_scaled[active], exponent[active] - exponent[active].max())
    score = float(np.average(per_latent[active], weights=weights))
    if not np.isfinite(score):  # cannot happen for finite codes; a NaN score must never be returned
        raise FloatingPointError(f"irs: the score came out {score}; please report this input")
    return IRSResult(score, matrix, per_latent, parents, active, max_dev, int(active.sum()))
