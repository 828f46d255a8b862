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


def irs(factors, codes, diff_quantile: float = 0.99, num_bins: int | None = None) -> IRSResult:
    """Interventional Robustness Score of ``codes [N, D]`` with respect to ``factors [N, K]``.

    ``factors`` are discrete values (any numbers), used as they are; give ``num_bins`` to discretise continuous
    factors into equal-width bins first. numpy arrays and torch tensors are accepted.

    disentanglement_lib bins every factor into 20 equal-width bins before IRS (``discretizer.num_bins = 20``), so
    a factor with more than 20 values (dSprites' orientation, 40, and positions, 32) scores differently there:
    ``num_bins=20`` gives disentanglement_lib's number.
    """
    g = check_factors(factors, classes=False)
    z = check_codes(codes)
    check_same_rows(g, "factors", z, "codes")
    diff_quantile = probability(diff_quantile, "diff_quantile", open_interval=False)
    if num_bins is not None:
        g = discretize(g.astype(np.float64), num_bins)  # equal-width bins: numpy histogram edges, then digitize
    num_latents, num_factors = z.shape[1], g.shape[1]

    active = z.var(axis=0) > 0.0
    max_dev = np.abs(z - z.mean(axis=0)).max(axis=0)
    matrix = np.full((num_latents, num_factors), np.nan)
    per_latent = np.full(num_latents, np.nan)
    parents = np.full(num_latents, -1, dtype=np.int64)
    if not active.any():
        return IRSResult(0.0, matrix, per_latent, parents, active, max_dev, 0)

    za = z[:, active]
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
    matrix_active = 1.0 - deviation / max_dev[active][:, None]
    matrix[active] = matrix_active
    per_latent[active] = matrix_active.max(axis=1)
    parents[active] = matrix_active.argmax(axis=1)
    weights = max_dev[active]
    score = (
        float(np.average(per_latent[active], weights=weights))
        if weights.sum() > 0
        else float(per_latent[active].mean())
    )
    return IRSResult(score, matrix, per_latent, parents, active, max_dev, int(active.sum()))
