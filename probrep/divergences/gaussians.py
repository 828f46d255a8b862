"""Closed forms between Gaussians ``P = N(loc_p, cov_p)`` and ``Q = N(loc_q, cov_q)``: the references every
divergence estimator of :mod:`probrep.divergences` is tested against.

A covariance is a matrix ``[d, d]``, a vector ``[d]`` (diagonal) or a scalar (``var * I``); a location is a
scalar (1-D) or ``[d]``. Results are float64 0-dim tensors on the location's device. f-divergences follow the
table of :mod:`probrep.divergences.fdiv` (``D_f(P||Q) = E_Q[f(p/q)]``, nats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from probrep.divergences._util import as_tensor

_F64 = torch.float64


def _params(loc, cov, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    loc = as_tensor(loc, f"loc_{which}").to(_F64)
    cov = as_tensor(cov, f"cov_{which}").to(device=loc.device, dtype=_F64)
    if loc.dim() > 1:
        raise ValueError(f"loc_{which} must be a scalar or a vector [d], got shape {tuple(loc.shape)}")
    loc = loc.reshape(-1)
    d = loc.shape[0]
    if cov.dim() == 0:
        cov = cov * torch.eye(d, dtype=_F64, device=loc.device)
    elif cov.dim() == 1:
        if cov.shape[0] != d:
            raise ValueError(f"cov_{which} has {cov.shape[0]} diagonal entries but loc_{which} has dimension {d}")
        cov = torch.diag(cov)
    elif cov.dim() != 2 or cov.shape != (d, d):
        raise ValueError(f"cov_{which} must be [d, d] = [{d}, {d}], [d] or a scalar, got shape {tuple(cov.shape)}")
    if not bool(torch.isfinite(loc).all() and torch.isfinite(cov).all()):
        raise ValueError(f"loc_{which} / cov_{which} contain NaN or infinite values")
    if not torch.allclose(cov, cov.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"cov_{which} is not symmetric")
    if torch.linalg.cholesky_ex(cov).info != 0:
        raise ValueError(f"cov_{which} is not positive definite")
    return loc, cov


def _pair(loc_p, cov_p, loc_q, cov_q):
    mp, sp = _params(loc_p, cov_p, "p")
    mq, sq = _params(loc_q, cov_q, "q")
    if mp.shape != mq.shape:
        raise ValueError(f"P has dimension {mp.shape[0]} but Q has dimension {mq.shape[0]}")
    return mp, sp, mq.to(mp.device), sq.to(mp.device)


def _logdet(a: torch.Tensor) -> torch.Tensor:
    return torch.linalg.slogdet(a)[1]


def gaussian_kl(loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """``KL(P||Q) = (tr(Sq^-1 Sp) + (mq - mp)' Sq^-1 (mq - mp) - d + log|Sq|/|Sp|) / 2``."""
    mp, sp, mq, sq = _pair(loc_p, cov_p, loc_q, cov_q)
    diff = mq - mp
    solve = torch.linalg.solve(sq, torch.cat([sp, diff[:, None]], dim=1))
    return 0.5 * (torch.trace(solve[:, :-1]) + diff @ solve[:, -1] - mp.shape[0] + _logdet(sq) - _logdet(sp))


def log_power_integral(alpha: float, loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """``log int p^a q^(1-a) dx`` (``+inf`` where the integral diverges).

    With precisions ``Pp, Pq``: ``A = a Pp + (1-a) Pq`` (must be positive definite), ``b = a Pp mp + (1-a) Pq mq``,
    ``c = a mp' Pp mp + (1-a) mq' Pq mq``: ``-log|A|/2 - a log|Sp|/2 - (1-a) log|Sq|/2 + (b' A^-1 b - c)/2``.
    """
    mp, sp, mq, sq = _pair(loc_p, cov_p, loc_q, cov_q)
    a = float(alpha)
    pp, pq = torch.linalg.inv(sp), torch.linalg.inv(sq)
    big_a = a * pp + (1.0 - a) * pq
    big_a = 0.5 * (big_a + big_a.T)
    if torch.linalg.eigvalsh(big_a).min() <= 0:
        return torch.tensor(math.inf, dtype=_F64, device=mp.device)
    b = a * pp @ mp + (1.0 - a) * pq @ mq
    c = a * mp @ pp @ mp + (1.0 - a) * mq @ pq @ mq
    quad = b @ torch.linalg.solve(big_a, b)
    return -0.5 * _logdet(big_a) - 0.5 * a * _logdet(sp) - 0.5 * (1.0 - a) * _logdet(sq) + 0.5 * (quad - c)


def gaussian_bhattacharyya_coefficient(loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """``BC = int sqrt(p q) = exp(-D_B)``, ``D_B = d' S^-1 d / 8 + log(|S| / sqrt(|Sp| |Sq|)) / 2``, S = (Sp+Sq)/2."""
    mp, sp, mq, sq = _pair(loc_p, cov_p, loc_q, cov_q)
    s = 0.5 * (sp + sq)
    diff = mp - mq
    db = diff @ torch.linalg.solve(s, diff) / 8.0 + 0.5 * (_logdet(s) - 0.5 * (_logdet(sp) + _logdet(sq)))
    return torch.exp(-db)


def gaussian_squared_hellinger(loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """``int (sqrt p - sqrt q)^2 = 2 (1 - BC)`` (the table's ``f(u) = (sqrt(u) - 1)^2``; at most 2)."""
    return 2.0 * (1.0 - gaussian_bhattacharyya_coefficient(loc_p, cov_p, loc_q, cov_q))


def gaussian_pearson(loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """Pearson ``chi^2(P||Q) = int p^2/q - 1``; ``+inf`` unless ``2 Sp^-1 - Sq^-1`` is positive definite."""
    return torch.expm1(log_power_integral(2.0, loc_p, cov_p, loc_q, cov_q))


def gaussian_neyman(loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """Neyman ``chi^2(P||Q) = int q^2/p - 1`` (Pearson with P and Q swapped)."""
    return gaussian_pearson(loc_q, cov_q, loc_p, cov_p)


def gaussian_alpha_divergence(alpha: float, loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """Amari alpha-divergence ``(int p^a q^(1-a) - 1) / (a (a - 1))``, a not in {0, 1}."""
    a = float(alpha)
    if a in (0.0, 1.0):
        raise ValueError(f"alpha={alpha} is a limit of the family: use gaussian_kl")
    return torch.expm1(log_power_integral(a, loc_p, cov_p, loc_q, cov_q)) / (a * (a - 1.0))


def gaussian_total_variation_1d(loc_p, var_p, loc_q, var_q) -> torch.Tensor:
    """``TV = (1/2) int |p - q| = P(A) - Q(A)`` with ``A = {p > q}``, from the roots of ``log p = log q``."""
    mp, sp, mq, sq = _pair(loc_p, var_p, loc_q, var_q)
    if mp.shape[0] != 1:
        raise ValueError(f"gaussian_total_variation_1d is for 1-D Gaussians, got dimension {mp.shape[0]}")
    m1, v1, m2, v2 = mp[0], sp[0, 0], mq[0], sq[0, 0]
    s1, s2 = v1.sqrt(), v2.sqrt()

    def mass(lo, hi):  # P((lo, hi)) - Q((lo, hi))
        cdf = torch.special.ndtr
        return (cdf((hi - m1) / s1) - cdf((lo - m1) / s1)) - (cdf((hi - m2) / s2) - cdf((lo - m2) / s2))

    inf = torch.tensor(math.inf, dtype=_F64, device=mp.device)
    # log p - log q = a x^2 + b x + c
    a = 0.5 * (1.0 / v2 - 1.0 / v1)
    b = m1 / v1 - m2 / v2
    c = 0.5 * (m2**2 / v2 - m1**2 / v1) - 0.5 * torch.log(v1 / v2)
    if float(a) == 0.0:
        if float(b) == 0.0:
            return torch.zeros((), dtype=_F64, device=mp.device)
        root = -c / b
        return mass(root, inf) if float(b) > 0 else mass(-inf, root)
    disc = (b * b - 4.0 * a * c).clamp_min(0.0)
    r1, r2 = sorted([(-b - disc.sqrt()) / (2.0 * a), (-b + disc.sqrt()) / (2.0 * a)], key=float)
    if float(a) < 0:  # concave: p > q between the roots
        return mass(r1, r2)
    return mass(-inf, r1) + mass(r2, inf)


def _bandwidths(bandwidth: float | Sequence[float]) -> list[float]:
    hs = [float(bandwidth)] if isinstance(bandwidth, (int, float)) else [float(h) for h in bandwidth]
    if not hs or any(not (h > 0 and math.isfinite(h)) for h in hs):
        raise ValueError(f"bandwidth must be positive and finite, got {bandwidth}")
    return hs


def _expected_rbf(diff: torch.Tensor, cov: torch.Tensor, h: float) -> torch.Tensor:
    """``E exp(-|Z|^2 / (2 h^2))`` for ``Z ~ N(diff, cov)``:
    ``|I + cov/h^2|^-1/2 exp(-diff' (cov + h^2 I)^-1 diff / 2)``."""
    eye = torch.eye(cov.shape[0], dtype=_F64, device=cov.device)
    quad = diff @ torch.linalg.solve(cov + h * h * eye, diff)
    return torch.exp(-0.5 * _logdet(eye + cov / (h * h)) - 0.5 * quad)


def gaussian_mmd2_rbf(loc_p, cov_p, loc_q, cov_q, bandwidth: float | Sequence[float]) -> torch.Tensor:
    """``MMD^2 = E k(X, X') + E k(Y, Y') - 2 E k(X, Y)`` for ``k = sum_h exp(-|x - y|^2 / (2 h^2))``."""
    mp, sp, mq, sq = _pair(loc_p, cov_p, loc_q, cov_q)
    zero = torch.zeros_like(mp)
    total = torch.zeros((), dtype=_F64, device=mp.device)
    for h in _bandwidths(bandwidth):
        total = total + _expected_rbf(zero, 2 * sp, h) + _expected_rbf(zero, 2 * sq, h)
        total = total - 2.0 * _expected_rbf(mp - mq, sp + sq, h)
    return total


def _psd_sqrt(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(0.5 * (a + a.T))
    return (v * w.clamp_min(0.0).sqrt()) @ v.T


def gaussian_w2(loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """2-Wasserstein distance: ``W2^2 = |mp - mq|^2 + tr(Sp + Sq - 2 (Sp^1/2 Sq Sp^1/2)^1/2)``; returns W2."""
    mp, sp, mq, sq = _pair(loc_p, cov_p, loc_q, cov_q)
    root = _psd_sqrt(sp)
    cross = _psd_sqrt(root @ sq @ root)
    w2sq = (mp - mq).pow(2).sum() + torch.trace(sp + sq - 2.0 * cross)
    return w2sq.clamp_min(0.0).sqrt()


def _isotropic_variance(cov: torch.Tensor, which: str) -> torch.Tensor:
    v = cov.diagonal().mean()
    if not torch.allclose(cov, v * torch.eye(cov.shape[0], dtype=_F64, device=cov.device), rtol=1e-12, atol=0):
        raise ValueError(f"gaussian_energy_distance needs an isotropic cov_{which} (var * I)")
    return v


def _expected_norm(mean_sq: float, var: float, d: int) -> float:
    """``E|Z|`` for ``Z ~ N(m, var I_d)``, ``|m|^2 = mean_sq``: the noncentral chi mean
    ``sqrt(2 var) Gamma((d+1)/2) / Gamma(d/2) 1F1(-1/2; d/2; -|m|^2 / (2 var))``."""
    from scipy.special import gammaln, hyp1f1

    ratio = math.exp(gammaln((d + 1) / 2) - gammaln(d / 2))
    return math.sqrt(2 * var) * ratio * float(hyp1f1(-0.5, d / 2, -mean_sq / (2 * var)))


def gaussian_energy_distance(loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """Squared energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` for isotropic covariances."""
    mp, sp, mq, sq = _pair(loc_p, cov_p, loc_q, cov_q)
    vp, vq = float(_isotropic_variance(sp, "p")), float(_isotropic_variance(sq, "q"))
    d = mp.shape[0]
    dist2 = float((mp - mq).pow(2).sum())
    value = 2 * _expected_norm(dist2, vp + vq, d) - _expected_norm(0.0, 2 * vp, d) - _expected_norm(0.0, 2 * vq, d)
    return torch.tensor(value, dtype=_F64, device=mp.device)


def gaussian_fisher_divergence(loc_p, cov_p, loc_q, cov_q) -> torch.Tensor:
    """``E_P |grad log p - grad log q|^2 = |Sq^-1 (mp - mq)|^2 + tr(M Sp M)``, ``M = Sq^-1 - Sp^-1``."""
    mp, sp, mq, sq = _pair(loc_p, cov_p, loc_q, cov_q)
    pq = torch.linalg.inv(sq)
    m = pq - torch.linalg.inv(sp)
    shift = pq @ (mp - mq)
    return shift @ shift + torch.trace(m @ sp @ m)
