"""Information-theoretic disentanglement metrics: Mutual Information Gap (Chen et al. 2018), modularity
(Ridgeway & Zemel 2018), the discrete mutual information they share, and the total correlation of a Gaussian
fitted to the codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from probrep._checks import integer
from probrep.metrics._arrays import (
    check_codes,
    check_factors,
    check_same_rows,
    class_labels,
    discretize,
    entropies,
    informative_factors,
    mutual_info_matrix,
)

__all__ = ["MIGResult", "ModularityResult", "mig", "modularity", "gaussian_total_correlation", "discrete_mutual_info"]


@dataclass(frozen=True)
class MIGResult:
    """Mutual Information Gap: ``score``; ``mutual_info [D, K]`` (nats, all input factors); over the kept factors
    (input columns ``factors``): ``entropy [K']`` (nats) and the normalised ``gaps [K']``."""

    score: float
    mutual_info: np.ndarray
    entropy: np.ndarray
    gaps: np.ndarray
    factors: np.ndarray


@dataclass(frozen=True)
class ModularityResult:
    """Modularity: ``score``, ``per_code [D]`` and the ``mutual_info [D, K']`` over the kept ``factors``."""

    score: float
    per_code: np.ndarray
    mutual_info: np.ndarray
    factors: np.ndarray


def _discrete_inputs(
    factors: Any, codes: Any, num_bins: int, discretize_factors: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Validated inputs -> (code bins [N, D], factor labels [N, K], factor sizes [K], num_bins)."""
    num_bins = integer(num_bins, "num_bins", 2)
    f = check_factors(factors, "factors", classes=not discretize_factors)
    z = check_codes(codes, "codes")
    check_same_rows(f, "factors", z, "codes")
    bins = discretize(z, num_bins)
    if discretize_factors:
        f = discretize(f.astype(np.float64), num_bins)
    labels, sizes = class_labels(f)
    return bins, labels, sizes, num_bins


def discrete_mutual_info(factors: Any, codes: Any, num_bins: int = 20, discretize_factors: bool = False) -> np.ndarray:
    """Plug-in mutual information ``[D, K]`` (nats) between histogram-discretised codes and factor classes.

    ``I(z_d; v_k) = sum_{b,c} p_bc log(p_bc / (p_b p_c))``, codes binned by ``num_bins`` equal-width bins per
    dimension (``np.digitize(z, np.histogram(z, num_bins)[1][:-1])``, as disentanglement_lib).
    """
    bins, labels, sizes, num_bins = _discrete_inputs(factors, codes, num_bins, discretize_factors)
    return mutual_info_matrix(bins, num_bins, labels, sizes)


def mig(factors: Any, codes: Any, num_bins: int = 20, discretize_factors: bool = False) -> MIGResult:
    """Mutual Information Gap (Chen et al. 2018; disentanglement_lib's ``discrete_mig``).

        MIG = 1/K' sum_k (I(z_{j1}; v_k) - I(z_{j2}; v_k)) / H(v_k)

    where ``j1``, ``j2`` are the code dimensions with the largest and second-largest mutual information with
    factor ``v_k``, the codes are discretised into ``num_bins`` (20) equal-width histogram bins per dimension,
    and ``I`` and ``H`` are plug-in estimates in nats. The mean runs over the K' factors with ``H(v_k) > 0``.
    With a single code dimension the second-largest information is taken as 0.

    Args:
        factors: ``[N, K]`` integer factor classes (any values, used as labels); continuous factors need
            ``discretize_factors=True`` (binned like the codes).
        codes: ``[N, D]`` representation, e.g. posterior means.
        num_bins: histogram bins per code dimension (>= 2).
    """
    bins, labels, sizes, num_bins = _discrete_inputs(factors, codes, num_bins, discretize_factors)
    keep = informative_factors(labels)
    mi = mutual_info_matrix(bins, num_bins, labels, sizes)
    h = entropies(labels[:, keep], sizes[keep])
    top = -np.sort(-mi[:, keep], axis=0)
    second = top[1] if top.shape[0] > 1 else np.zeros(keep.size)
    gaps = (top[0] - second) / h
    return MIGResult(score=float(np.mean(gaps)), mutual_info=mi, entropy=h, gaps=gaps, factors=keep)


def modularity(factors: Any, codes: Any, num_bins: int = 20, discretize_factors: bool = False) -> ModularityResult:
    """Modularity (Ridgeway & Zemel 2018, as disentanglement_lib) from the discretised mutual information.

    For each code dimension ``d``, with ``m_dk = I(z_d; v_k)`` over the K' kept factors, ``theta_d = max_k m_dk``
    and the template ``t_dk = theta_d`` at the argmax and 0 elsewhere:

        delta_d = sum_k (m_dk - t_dk)^2 / (theta_d^2 (K' - 1)),   modularity_d = 1 - delta_d,

    and the score is the mean of ``modularity_d`` over all D dimensions. A dimension that carries no
    information about any factor (``theta_d = 0``, e.g. a constant code) scores 0, as in disentanglement_lib.
    With a single kept factor (K' = 1) every informative dimension scores 1. Codes are binned as in :func:`mig`.
    """
    bins, labels, sizes, num_bins = _discrete_inputs(factors, codes, num_bins, discretize_factors)
    keep = informative_factors(labels)
    mi = mutual_info_matrix(bins, num_bins, labels[:, keep], sizes[keep])
    sq = mi**2
    theta_sq = sq.max(axis=1)
    informative = theta_sq > 0
    per_code = np.zeros(mi.shape[0])
    if keep.size == 1:
        per_code[informative] = 1.0
    else:
        delta = (sq.sum(axis=1) - theta_sq)[informative] / (theta_sq[informative] * (keep.size - 1))
        per_code[informative] = 1.0 - delta
    return ModularityResult(score=float(per_code.mean()), per_code=per_code, mutual_info=mi, factors=keep)


def gaussian_total_correlation(codes: Any) -> float:
    """Total correlation (nats) of the Gaussian with the codes' sample covariance ``Sigma``:

        TC = KL(N(0, Sigma) || prod_d N(0, Sigma_dd)) = 0.5 (sum_d log Sigma_dd - log det Sigma),

    computed as ``-0.5 log det R`` with ``R`` the correlation matrix (the same number, better conditioned).
    It is 0 for uncorrelated codes and does not depend on the scale of each dimension. Raises ``ValueError``
    for constant dimensions and for a singular covariance (exactly collinear codes, where TC is infinite).
    """
    z = check_codes(codes, "codes")
    if z.shape[1] == 1:
        return 0.0
    cov = np.cov(z, rowvar=False)
    var = np.diag(cov)
    constant = np.flatnonzero(var <= 0)
    if constant.size:
        raise ValueError(f"codes has constant dimensions {constant.tolist()}: their total correlation is undefined")
    scale = 1.0 / np.sqrt(var)
    corr = cov * scale[:, None] * scale[None, :]
    sign, logdet = np.linalg.slogdet(corr)
    if sign <= 0 or not np.isfinite(logdet):
        raise ValueError("codes covariance is singular (some dimensions are exactly collinear): TC is infinite")
    return float(max(-0.5 * logdet, 0.0))
