"""Variational lower bounds on mutual information from a critic's score matrix (Poole et al. 2019).

``scores[i, j] = T(x_i, y_j)`` for a batch of joint draws ``(x_i, y_i) ~ p(x, y)``: the diagonal holds joint
pairs, the off-diagonal entries pairs from the product of marginals. Every bound here is parametrised so that it
is tight (in expectation, for the tight ones) at the log density ratio ``T = log p(y|x) / p(y)``:

* NWJ ``1 + E_p[T] - E_{p(x)p(y)}[e^T]``: the KL row of the f table with ``v = T + 1`` (Nguyen et al.'s critic);
* TUBA: NWJ with a baseline, ``T - log a(y)``;
* DV/MINE ``E_p[T] - log E_{p(x)p(y)}[e^T]``; MINE's gradient replaces the batch ``E[e^T]`` in the denominator by a
  moving average;
* InfoNCE ``log B + mean_i (T_ii - logsumexp_j T_ij)``, never above ``log B``;
* JS-trained NWJ: the value of NWJ, the gradient of the Jensen-Shannon (GAN row) bound;
* the interpolated bound, between TUBA (``alpha = 0``) and a leave-one-out InfoNCE (``alpha = 1``).

All return differentiable scalars. :func:`correlated_gaussians` and :func:`correlated_gaussian_log_ratio` give
a test bed with known MI: ``x ~ N(0, I_d)``, ``y = rho x + sqrt(1 - rho^2) e``, ``I = -(d/2) log(1 - rho^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from probrep._checks import integer, probability, real
from probrep.divergences._util import as_tensor
from probrep.divergences.fdiv import f_bound_terms


def _check_scores(scores: torch.Tensor) -> torch.Tensor:
    scores = as_tensor(scores, "scores")
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square matrix [B, B] (diagonal = joint pairs), got {tuple(scores.shape)}")
    if scores.shape[0] < 2:
        raise ValueError(f"scores needs a batch of at least 2, got {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("scores contains NaN")
    return scores


def _split(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(diagonal [B], off-diagonal entries [B (B - 1)])."""
    off = ~torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    return scores.diagonal(), scores[off]


def _log_baseline(log_baseline, scores: torch.Tensor) -> torch.Tensor:
    b = as_tensor(log_baseline, "log_baseline").to(device=scores.device, dtype=scores.dtype)
    if b.dim() == 0:
        return b.expand(scores.shape[0])
    if b.shape != (scores.shape[0],):
        raise ValueError(f"log_baseline must be a scalar or [B] = [{scores.shape[0]}], got {tuple(b.shape)}")
    return b


def nwj_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    """``1 + mean_i T_ii - mean_{i != j} exp(T_ij)``: the f table's KL bound at critic ``v = T + 1``."""
    diag, off = _split(_check_scores(scores))
    a, b = f_bound_terms(diag + 1.0, off + 1.0, "kl")
    return a.mean() - b.mean()


def tuba_lower_bound(scores: torch.Tensor, log_baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """TUBA: NWJ of ``T(x, y) - log a(y)`` with ``log_baseline[j] = log a(y_j)`` (scalar or [B])."""
    scores = _check_scores(scores)
    return nwj_lower_bound(scores - _log_baseline(log_baseline, scores)[None, :])


def _log_mean_exp(values: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(values, dim=0) - math.log(values.numel())


def dv_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan: ``mean_i T_ii - log mean_{i != j} exp(T_ij)`` (>= NWJ for the same scores)."""
    diag, off = _split(_check_scores(scores))
    return diag.mean() - _log_mean_exp(off)


def mine_lower_bound(
    scores: torch.Tensor, log_ema: torch.Tensor | None = None, momentum: float = 0.99
) -> tuple[torch.Tensor, torch.Tensor]:
    """MINE (Belghazi et al. 2018): the DV value, with the bias-corrected gradient; returns ``(bound, log_ema)``.

    ``ema <- momentum ema + (1 - momentum) mean_{i != j} exp(T_ij)`` (started at the first batch's value, kept in
    log space). The gradient of the second term is ``grad(mean exp T) / ema`` instead of ``/ mean exp T``.
    Pass the returned ``log_ema`` to the next call (state in, state out).
    """
    momentum = real(momentum, "momentum", nonnegative=True, below=1.0)
    diag, off = _split(_check_scores(scores))
    lme = _log_mean_exp(off)
    current = lme.detach()
    if log_ema is None:
        new = current
    else:
        log_ema = as_tensor(log_ema, "log_ema").to(current)
        if momentum == 0.0:
            new = current
        else:
            new = torch.logaddexp(math.log(momentum) + log_ema, math.log1p(-momentum) + current)
    # value log mean exp T; gradient (mean exp T / ema) grad log mean exp T = grad(mean exp T) / ema
    second = current + torch.exp(current - new) * (lme - current)
    return diag.mean() - second, new


def infonce_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE (van den Oord et al. 2018): ``log B + mean_i (T_ii - logsumexp_j T_ij)`` <= log B."""
    scores = _check_scores(scores)
    return math.log(scores.shape[0]) + (scores.diagonal() - torch.logsumexp(scores, dim=1)).mean()


def js_nwj_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    """NWJ's value with the gradient of the Jensen-Shannon (GAN) bound ``E_p[log s(T)] + E_pq[log(1 - s(T))]``.

    Both are maximised by ``T = log p(y|x)/p(y)``: the critic trains with JS's low variance and is read with NWJ.
    """
    diag, off = _split(_check_scores(scores))
    a, b = f_bound_terms(diag, off, "gan")
    js = a.mean() - b.mean()
    return nwj_lower_bound(scores).detach() + (js - js.detach())


def _leave_one_out_logsumexp(scores: torch.Tensor) -> torch.Tensor:
    """``L[l, j] = log sum_{k != l} exp(scores[k, j])`` in O(B^2), stable: off the column's maximum
    ``lse + log1p(-exp(s - lse))`` (the argument is at most 1/2), at the maximum a logsumexp with it removed."""
    top = scores.argmax(dim=0, keepdim=True)
    masked = scores.scatter(0, top, -math.inf)
    lse = torch.logsumexp(scores, dim=0, keepdim=True)
    general = lse + torch.log1p(-torch.exp(masked - lse))
    at_max = torch.logsumexp(masked, dim=0, keepdim=True)
    is_max = torch.zeros_like(scores, dtype=torch.bool).scatter(0, top, True)
    return torch.where(is_max, at_max.expand_as(scores), general)


def interpolated_lower_bound(
    scores: torch.Tensor, alpha: float, log_baseline: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Poole et al.'s interpolated bound ``I_alpha``, unbiased over the batch with ``K = B - 1``.

    With ``m(y; x_1:K) = mean_k exp T(x_k, y)`` and ``a = alpha m + (1 - alpha) q(y)`` (``log q = log_baseline``):
    ``I_alpha = 1 + E[T(x_1, y) - log a] - E_{independent y}[exp T(x_1, y) / a]``. For column ``y_j``, the joint
    term averages over which ``x_l`` (l != j) is left out of ``x_1:K``; the marginal term uses all ``x_k``, k != j,
    which are independent of ``y_j``. ``alpha = 0`` is TUBA; ``alpha = 1`` is at most ``log(B - 1)``.
    """
    scores = _check_scores(scores)
    alpha = probability(alpha, "alpha", open_interval=False)
    b = scores.shape[0]
    log_q = _log_baseline(log_baseline, scores)[None, :]
    log_m = _leave_one_out_logsumexp(scores) - math.log(b - 1)  # [l, j]: mean over k != l for column j
    log_alpha = math.log(alpha) if alpha > 0 else -math.inf
    log_rest = math.log1p(-alpha) if alpha < 1 else -math.inf
    log_a = torch.logaddexp(log_alpha + log_m, log_rest + log_q)  # [l, j]
    off = ~torch.eye(b, dtype=torch.bool, device=scores.device)
    joint = (scores.diagonal()[None, :] - log_a)[off].mean()
    marginal = torch.exp((scores - log_a.diagonal()[None, :])[off]).mean()  # mask first: exp(T_jj) may overflow
    return 1.0 + joint - marginal


MI_BOUNDS: dict[str, Callable[..., torch.Tensor]] = {
    "nwj": nwj_lower_bound,
    "tuba": tuba_lower_bound,
    "dv": dv_lower_bound,
    "infonce": infonce_lower_bound,
    "js_nwj": js_nwj_lower_bound,
    "interpolated": interpolated_lower_bound,
}


def mi_lower_bound(scores: torch.Tensor, name: str, **kwargs) -> torch.Tensor:
    """Dispatch to a stateless bound of :data:`MI_BOUNDS` by name (MINE keeps state: call it directly)."""
    if name not in MI_BOUNDS:
        hint = " (mine keeps a moving average: call mine_lower_bound)" if name == "mine" else ""
        raise ValueError(f"unknown MI bound {name!r}: expected one of {list(MI_BOUNDS)}{hint}")
    return MI_BOUNDS[name](scores, **kwargs)


# ------------------------------------------------------------------------------------- Gaussian test bed
def correlation_for_mi(mi: float, dim: int) -> float:
    """``rho`` with ``-(d/2) log(1 - rho^2) = mi``."""
    mi, dim = real(mi, "mi", nonnegative=True), integer(dim, "dim")
    return math.sqrt(-math.expm1(-2.0 * mi / dim))


def correlated_gaussians(
    mi: float, dim: int, batch_size: int, generator: torch.Generator | None = None, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(x, y, rho)``: ``x ~ N(0, I_d)``, ``y = rho x + sqrt(1 - rho^2) e`` with ``I(X; Y) = mi`` nats."""
    rho = correlation_for_mi(mi, dim)
    x = torch.randn(batch_size, dim, generator=generator, dtype=dtype)
    e = torch.randn(batch_size, dim, generator=generator, dtype=dtype)
    return x, rho * x + math.sqrt(1.0 - rho * rho) * e, rho


def correlated_gaussian_log_ratio(x: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
    """The exact critic ``scores[i, j] = log p(y_j | x_i) - log p(y_j)`` for :func:`correlated_gaussians`:
    ``-(d/2) log(1 - rho^2) - |y_j - rho x_i|^2 / (2 (1 - rho^2)) + |y_j|^2 / 2``."""
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"x and y must both be [B, d], got {tuple(x.shape)} and {tuple(y.shape)}")
    s = 1.0 - rho * rho
    y2 = y.pow(2).sum(1)
    dist = y2[None, :] - 2.0 * rho * (x @ y.T) + rho * rho * x.pow(2).sum(1)[:, None]
    return -0.5 * x.shape[1] * math.log(s) - dist / (2.0 * s) + 0.5 * y2[None, :]
