"""One table of f-divergences, their variational lower bound, and Monte Carlo estimates.

Convention: ``D_f(P||Q) = E_Q[f(p/q)]`` in nats, with f convex on ``u >= 0`` and ``f(1) = 0`` (except GAN, as in
Nowozin et al.: ``f(1) = -log 4`` and ``D_GAN = 2 JS - log 4``). Each entry holds

* ``f(u)`` and ``f_log(l) = f(exp(l))`` (the same function, stable for log density ratios),
* ``f_prime(u) = f'(u)``,
* the convex conjugate ``f*(t) = sup_{u >= 0} (t u - f(u))`` (``+inf`` outside its domain) and that domain,
* the output activation ``g_f`` of f-GAN (Nowozin et al. 2016) mapping a critic's raw output ``v in R`` into the
  domain of ``f*``, its inverse, and ``f*(g_f(v))`` written out stably,
* ``optimal_critic(l)``: the raw output ``v* = g_f^{-1}(f'(exp(l)))`` at which the bound is tight.

The variational lower bound (Nguyen, Wainwright and Jordan 2010; Nowozin et al. 2016) holds for every critic v:

    D_f(P||Q) >= E_P[g_f(v(x))] - E_Q[f*(g_f(v(x)))],     with equality at  g_f(v) = f'(p/q).

Differences from Nowozin et al.'s Table 2, each so that the name means the usual quantity:

* Jensen-Shannon uses ``f(u) = (u log u - (u + 1) log((u + 1)/2)) / 2``, so ``D_f = JS(P, Q) <= log 2``
  (their f is twice this); its activation is ``g(v) = (log 2 - softplus(-v)) / 2``, with optimum ``v* = log p/q``.
* The conjugates are taken over ``u >= 0`` (density ratios are non-negative): Pearson's is ``t + t^2/4`` for
  ``t >= -2`` and ``-1`` below, total variation's is ``max(t, -1/2)`` for ``t <= 1/2``. They equal Nowozin's on
  ``t >= -2`` and ``|t| <= 1/2`` respectively and are never larger, so bounds are never looser.
* The alpha family (Amari) ``f(u) = (u^a - 1 - a (u - 1)) / (a (a - 1))`` (a = 2 is half Pearson, a = 1/2
  twice squared Hellinger, a = -1 half Neyman; a -> 1 is KL, a -> 0 reverse KL) uses
  ``g(v) = (exp((a - 1) v) - 1) / (a - 1)``, whose optimum is ``v* = log p/q``.

The GAN entry's bound is minus the logistic loss of a P-vs-Q classifier with logit v, which is what
:mod:`probrep.divergences.density_ratio` (FactorVAE's total-correlation discriminator) minimises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from probrep._checks import one_of, real
from probrep.divergences._util import Estimate, as_tensor, check_finite, mean_and_stderr

Fn = Callable[[torch.Tensor], torch.Tensor]
LOG2 = math.log(2.0)


@dataclass(frozen=True)
class Interval:
    """An interval ``(low, high)`` of the real line; ``high_closed`` says whether ``high`` belongs to it."""

    low: float
    high: float
    high_closed: bool = False

    def contains(self, t: torch.Tensor) -> torch.Tensor:
        upper = t <= self.high if self.high_closed else t < self.high
        return upper & (t > self.low)

    def __str__(self) -> str:
        return f"({self.low}, {self.high}{']' if self.high_closed else ')'}"


@dataclass(frozen=True)
class FDivergence:
    """One row of the f-divergence table (see the module docstring)."""

    name: str
    formula: str
    f: Fn
    f_log: Fn
    f_prime: Fn
    conjugate: Fn
    domain: Interval
    activation: Fn
    activation_inverse: Fn
    conjugate_activation: Fn
    optimal_critic: Fn
    alpha: float | None = None

    def __repr__(self) -> str:
        extra = f", alpha={self.alpha}" if self.alpha is not None else ""
        return f"FDivergence({self.name!r}{extra}: f(u) = {self.formula}, dom f* = {self.domain})"


def _inf_outside(domain: Interval, t: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return torch.where(domain.contains(t), value, torch.full_like(value, math.inf))


def _xexp(l: torch.Tensor) -> torch.Tensor:
    """``exp(l) * l`` with the limit 0 at ``l = -inf``."""
    return torch.where(torch.isneginf(l), torch.zeros_like(l), torch.exp(l) * l)


def _safe(fn: Fn, domain: Interval) -> Fn:
    """Evaluate ``fn`` only inside ``domain`` (no NaN warnings or NaN gradients from outside), ``+inf`` outside."""

    def conj(t: torch.Tensor) -> torch.Tensor:
        inside = domain.contains(t)
        probe = torch.where(inside, t, torch.full_like(t, min(0.0, domain.high - 1.0)))  # a point inside
        return torch.where(inside, fn(probe), torch.full_like(t, math.inf))

    return conj


def _kl() -> FDivergence:
    dom = Interval(-math.inf, math.inf)
    return FDivergence(
        "kl",
        "u log u",
        f=lambda u: torch.xlogy(u, u),
        f_log=_xexp,
        f_prime=lambda u: torch.log(u) + 1.0,
        conjugate=lambda t: torch.exp(t - 1.0),
        domain=dom,
        activation=lambda v: v,
        activation_inverse=lambda t: t,
        conjugate_activation=lambda v: torch.exp(v - 1.0),
        optimal_critic=lambda l: l + 1.0,
    )


def _reverse_kl() -> FDivergence:
    dom = Interval(-math.inf, 0.0)
    return FDivergence(
        "reverse_kl",
        "-log u",
        f=lambda u: -torch.log(u),
        f_log=lambda l: -l,
        f_prime=lambda u: -1.0 / u,
        conjugate=_safe(lambda t: -1.0 - torch.log(-t), dom),
        domain=dom,
        activation=lambda v: -torch.exp(-v),
        activation_inverse=lambda t: -torch.log(-t),
        conjugate_activation=lambda v: v - 1.0,
        optimal_critic=lambda l: l,
    )


def _pearson_conjugate(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t >= -2.0, t + 0.25 * t * t, torch.full_like(t, -1.0))


def _pearson() -> FDivergence:
    return FDivergence(
        "pearson",
        "(u - 1)^2",
        f=lambda u: (u - 1.0) ** 2,
        f_log=lambda l: torch.expm1(l) ** 2,
        f_prime=lambda u: 2.0 * (u - 1.0),
        conjugate=_pearson_conjugate,
        domain=Interval(-math.inf, math.inf),
        activation=lambda v: v,
        activation_inverse=lambda t: t,
        conjugate_activation=_pearson_conjugate,
        optimal_critic=lambda l: 2.0 * torch.expm1(l),
    )


def _neyman() -> FDivergence:
    dom = Interval(-math.inf, 1.0)
    return FDivergence(
        "neyman",
        "(1 - u)^2 / u",
        f=lambda u: (1.0 - u) ** 2 / u,
        f_log=lambda l: 4.0 * torch.sinh(0.5 * l) ** 2,
        f_prime=lambda u: 1.0 - u**-2,
        conjugate=_safe(lambda t: 2.0 - 2.0 * torch.sqrt(1.0 - t), dom),
        domain=dom,
        activation=lambda v: -torch.expm1(v),
        activation_inverse=lambda t: torch.log1p(-t),
        conjugate_activation=lambda v: 2.0 - 2.0 * torch.exp(0.5 * v),
        optimal_critic=lambda l: -2.0 * l,
    )


def _squared_hellinger() -> FDivergence:
    dom = Interval(-math.inf, 1.0)
    return FDivergence(
        "squared_hellinger",
        "(sqrt(u) - 1)^2",
        f=lambda u: (torch.sqrt(u) - 1.0) ** 2,
        f_log=lambda l: torch.expm1(0.5 * l) ** 2,
        f_prime=lambda u: 1.0 - torch.rsqrt(u),
        conjugate=_safe(lambda t: t / (1.0 - t), dom),
        domain=dom,
        activation=lambda v: -torch.expm1(v),
        activation_inverse=lambda t: torch.log1p(-t),
        conjugate_activation=lambda v: torch.expm1(-v),
        optimal_critic=lambda l: -0.5 * l,
    )


def _total_variation() -> FDivergence:
    dom = Interval(-math.inf, 0.5, high_closed=True)
    return FDivergence(
        "total_variation",
        "|u - 1| / 2",
        f=lambda u: 0.5 * (u - 1.0).abs(),
        f_log=lambda l: 0.5 * torch.expm1(l).abs(),
        f_prime=lambda u: 0.5 * torch.sign(u - 1.0),
        conjugate=_safe(lambda t: t.clamp_min(-0.5), dom),
        domain=dom,
        activation=lambda v: 0.5 * torch.tanh(v),
        activation_inverse=lambda t: torch.atanh(2.0 * t),
        conjugate_activation=lambda v: 0.5 * torch.tanh(v),
        # T* = sign(p/q - 1)/2 sits on the boundary of tanh's range: v* = +-inf (0 where p = q)
        optimal_critic=lambda l: torch.where(l == 0, torch.zeros_like(l), torch.sign(l) * math.inf),
    )


def _jensen_shannon() -> FDivergence:
    dom = Interval(-math.inf, 0.5 * LOG2)
    return FDivergence(
        "jensen_shannon",
        "(u log u - (u + 1) log((u + 1) / 2)) / 2",
        f=lambda u: 0.5 * (torch.xlogy(u, u) - (u + 1.0) * (torch.log1p(u) - LOG2)),
        # u (l - softplus(l)) = -u softplus(-l): no cancellation of two large terms
        f_log=lambda l: 0.5 * (torch.exp(l) * (LOG2 - F.softplus(-l)) + LOG2 - F.softplus(l)),
        f_prime=lambda u: 0.5 * (LOG2 + torch.log(u) - torch.log1p(u)),
        conjugate=_safe(lambda t: -0.5 * torch.log(2.0 - torch.exp(2.0 * t)), dom),
        domain=dom,
        activation=lambda v: 0.5 * (LOG2 - F.softplus(-v)),
        activation_inverse=lambda t: torch.logit(0.5 * torch.exp(2.0 * t)),
        conjugate_activation=lambda v: 0.5 * (F.softplus(v) - LOG2),
        optimal_critic=lambda l: l,
    )


def _gan() -> FDivergence:
    dom = Interval(-math.inf, 0.0)
    return FDivergence(
        "gan",
        "u log u - (u + 1) log(u + 1)",
        f=lambda u: torch.xlogy(u, u) - (u + 1.0) * torch.log1p(u),
        f_log=lambda l: -torch.exp(l) * F.softplus(-l) - F.softplus(l),
        f_prime=lambda u: torch.log(u) - torch.log1p(u),
        conjugate=_safe(lambda t: -torch.log(-torch.expm1(t)), dom),
        domain=dom,
        activation=lambda v: -F.softplus(-v),  # log sigmoid(v)
        activation_inverse=lambda t: t - torch.log(-torch.expm1(t)),  # logit(exp(t))
        conjugate_activation=F.softplus,  # -log(1 - sigmoid(v))
        optimal_critic=lambda l: l,
    )


def _alpha(a: float) -> FDivergence:
    c = a * (a - 1.0)
    if a > 1.0:
        dom = Interval(-math.inf, math.inf)

        def conjugate(t: torch.Tensor) -> torch.Tensor:
            # below t = -1/(a-1) the supremum over u >= 0 sits at u = 0: f*(t) = -f(0) = -1/a
            return (torch.clamp_min(1.0 + (a - 1.0) * t, 0.0) ** (a / (a - 1.0)) - 1.0) / a

    else:
        dom = Interval(-math.inf, 1.0 / (1.0 - a))
        conjugate = _safe(lambda t: ((1.0 + (a - 1.0) * t) ** (a / (a - 1.0)) - 1.0) / a, dom)
    return FDivergence(
        "alpha",
        f"(u^a - 1 - a (u - 1)) / (a (a - 1)), a = {a:g}",
        f=lambda u: (u**a - 1.0 - a * (u - 1.0)) / c,
        f_log=lambda l: (torch.expm1(a * l) - a * torch.expm1(l)) / c,
        f_prime=lambda u: (u ** (a - 1.0) - 1.0) / (a - 1.0),
        conjugate=conjugate,
        domain=dom,
        activation=lambda v: torch.expm1((a - 1.0) * v) / (a - 1.0),
        activation_inverse=lambda t: torch.log1p((a - 1.0) * t) / (a - 1.0),
        conjugate_activation=lambda v: torch.expm1(a * v) / a,
        optimal_critic=lambda l: l,
        alpha=a,
    )


_TABLE: dict[str, Callable[[], FDivergence]] = {
    "kl": _kl,
    "reverse_kl": _reverse_kl,
    "pearson": _pearson,
    "neyman": _neyman,
    "squared_hellinger": _squared_hellinger,
    "total_variation": _total_variation,
    "jensen_shannon": _jensen_shannon,
    "gan": _gan,
}
F_DIVERGENCES: tuple[str, ...] = (*_TABLE, "alpha")
# the fixed entries, built once at import: one per name of _TABLE, so it never grows (alpha entries are built per
# call, since alpha is a continuous parameter); FDivergence is frozen, so sharing the instances is safe
_CACHE: dict[str, FDivergence] = {name: make() for name, make in _TABLE.items()}


def get_f_divergence(name: str | FDivergence, alpha: float | None = None) -> FDivergence:
    """The table entry for ``name`` (one of :data:`F_DIVERGENCES`); ``"alpha"`` needs ``alpha`` not in {0, 1}."""
    if isinstance(name, FDivergence):
        if alpha is not None and alpha != name.alpha:
            raise ValueError(f"alpha={alpha} given with an FDivergence entry of alpha={name.alpha}")
        return name
    if not isinstance(name, str):
        raise TypeError(f"name must be a string or FDivergence, got {type(name).__name__}")
    key = name.strip().lower()
    if key == "alpha":
        if alpha is None:
            raise ValueError("the alpha family needs alpha=, e.g. get_f_divergence('alpha', alpha=0.5)")
        a = real(alpha, "alpha")
        if a in (0.0, 1.0):
            which = "reverse_kl" if a == 0.0 else "kl"
            raise ValueError(f"alpha={alpha} is the limit of the family: use name={which!r}")
        return _alpha(a)
    if key not in _CACHE:
        raise ValueError(f"unknown f-divergence {name!r}: expected one of {list(F_DIVERGENCES)}")
    if alpha is not None:
        raise ValueError(f"alpha= applies only to name='alpha', not {name!r}")
    return _CACHE[key]


def _critic_outputs(v: torch.Tensor, name: str) -> torch.Tensor:
    v = as_tensor(v, name)
    if v.numel() == 0:
        raise ValueError(f"{name} is empty")
    if torch.isnan(v).any():
        raise ValueError(f"{name} contains NaN")
    return v


def f_bound_terms(
    v_p: torch.Tensor, v_q: torch.Tensor, name: str | FDivergence = "kl", *, alpha: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-sample terms ``g_f(v_p)`` and ``f*(g_f(v_q))`` of :func:`f_lower_bound`."""
    fd = get_f_divergence(name, alpha)
    v_p, v_q = _critic_outputs(v_p, "v_p"), _critic_outputs(v_q, "v_q")
    if v_p.device != v_q.device:
        raise ValueError(f"v_p is on {v_p.device} but v_q is on {v_q.device}")
    return fd.activation(v_p), fd.conjugate_activation(v_q)


def f_lower_bound(
    v_p: torch.Tensor, v_q: torch.Tensor, name: str | FDivergence = "kl", *, alpha: float | None = None
) -> torch.Tensor:
    """``E_P[g_f(v)] - E_Q[f*(g_f(v))] <= D_f(P||Q)`` from critic outputs on samples of P and of Q.

    Differentiable; maximise it over the critic to estimate ``D_f`` (tight where ``v = optimal_critic(log p/q)``).
    """
    a, b = f_bound_terms(v_p, v_q, name, alpha=alpha)
    return a.mean() - b.mean()


def monte_carlo_divergence(
    log_p: torch.Tensor,
    log_q: torch.Tensor,
    name: str | FDivergence = "kl",
    *,
    sampled_from: str = "q",
    alpha: float | None = None,
) -> Estimate:
    """``D_f(P||Q)`` from both log densities evaluated at the same samples, with its standard error.

    ``sampled_from="q"``: samples of Q, ``D = E_Q[f(p/q)]``; ``"p"``: samples of P, ``D = E_P[f(p/q) q/p]``.
    """
    fd = get_f_divergence(name, alpha)
    log_p, log_q = as_tensor(log_p, "log_p"), as_tensor(log_q, "log_q")
    if log_p.shape != log_q.shape:
        raise ValueError(f"log_p and log_q must have the same shape, got {tuple(log_p.shape)} and {tuple(log_q.shape)}")
    if log_p.numel() < 2:
        raise ValueError(f"need at least 2 samples, got {log_p.numel()}")
    check_finite(log_p, "log_p")
    check_finite(log_q, "log_q")
    one_of(sampled_from, "sampled_from", ("p", "q"))
    l = (log_p - log_q).reshape(-1)
    terms = fd.f_log(l) if sampled_from == "q" else fd.f_log(l) * torch.exp(-l)
    value, stderr = mean_and_stderr(terms)
    return Estimate(value, stderr, l.numel())
