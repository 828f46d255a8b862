"""Unsupervised Disentanglement Ranking (UDR; Duan et al. 2020, "Unsupervised Model Selection for Variational
Disentangled Representation Learning"): rank trained models without ground-truth factors, by how similar each
model's representation is to the representations of the other models trained with other seeds.

The premise (the paper's): disentangled representations are alike across seeds up to permutation and sign of
their latents, while entangled ones differ, each in its own way. So a model whose latents match, one to one, the
latents of most other models is likely disentangled. No factor labels are needed, only every model's codes of
the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from probrep._checks import real
from probrep.metrics._arrays import check_codes, check_same_rows, seed_int, to_numpy

__all__ = ["UDRResult", "udr", "udr_pair"]

CORRELATIONS = ("lasso", "spearman")


@dataclass(frozen=True)
class UDRResult:
    """UDR: ``scores [M]`` (model m's UDR), ``pairwise [M, M]`` (``pairwise[i, j]`` = UDR_ij, NaN on the
    diagonal), ``informative`` (per model, the ``[D_m]`` bool mask of latents counted), ``ranking`` (model
    indices, best first) and the ``correlation`` used."""

    scores: np.ndarray
    pairwise: np.ndarray
    informative: list[np.ndarray]
    ranking: np.ndarray
    correlation: str


def _ranks(z: np.ndarray) -> np.ndarray:
    """Ranks of each column, ties given their average rank (as Spearman's coefficient needs)."""
    from scipy.stats import rankdata

    return rankdata(z, axis=0)


def _correlation_matrix(za: np.ndarray, zb: np.ndarray, kind: str, alpha: float, random_state: int) -> np.ndarray:
    """``R [D_a, D_b]`` >= 0: how strongly latent a of one model relates to latent b of the other."""
    if kind == "spearman":
        ra, rb = _ranks(za), _ranks(zb)
        ra, rb = ra - ra.mean(0), rb - rb.mean(0)
        na, nb = np.linalg.norm(ra, axis=0), np.linalg.norm(rb, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (ra.T @ rb) / np.outer(na, nb)
        return np.abs(np.nan_to_num(r, nan=0.0))  # a constant latent correlates with nothing
    from sklearn.linear_model import Lasso

    # one multi-output Lasso predicting model b's latents from model a's: coef_ is [D_b, D_a]
    model = Lasso(alpha=alpha, random_state=random_state).fit(za, zb)
    return np.abs(np.asarray(model.coef_).reshape(zb.shape[1], za.shape[1])).T


def udr_pair(r: Any, informative_a: Any = None, informative_b: Any = None) -> float:
    """UDR_ab of one similarity matrix ``R [D_a, D_b]`` (absolute values are taken), over informative latents.

        UDR_ab = 1 / (d_a + d_b) * ( sum_b I_b r_b^2 / sum_a R_ab  +  sum_a I_a r_a^2 / sum_b R_ab )

    with ``r_a = max_b R_ab`` and ``r_b = max_a R_ab`` over the informative latents, ``I`` the informative
    masks and ``d_a``, ``d_b`` their counts (Duan et al. 2020, eq. 2). Each term is 1 when a latent relates to
    exactly one latent of the other model, and ``1/n`` when it relates equally to ``n``. A latent whose row
    or column is all zero contributes 0. No informative latent in either model: 0.

    disentanglement_lib's ``relative_strength_disentanglement`` averages the two sums' *means* instead,
    ``(mean_b ... + mean_a ...) / 2``; the two agree when ``d_a = d_b``.
    """
    r = np.abs(np.asarray(to_numpy(r, "r"), dtype=np.float64))
    if r.ndim != 2:
        raise ValueError(f"r must be a matrix [D_a, D_b], got shape {r.shape}")
    ia = np.ones(r.shape[0], bool) if informative_a is None else np.asarray(informative_a, bool).reshape(-1)
    ib = np.ones(r.shape[1], bool) if informative_b is None else np.asarray(informative_b, bool).reshape(-1)
    if ia.size != r.shape[0] or ib.size != r.shape[1]:
        raise ValueError(f"informative masks of sizes {ia.size}, {ib.size} do not fit r of shape {r.shape}")
    r = r[ia][:, ib]
    if r.size == 0:
        return 0.0

    def strength(m: np.ndarray) -> np.ndarray:  # per row: (max of the row)^2 / (sum of the row); 0 for a zero row
        total = m.sum(axis=1)
        return np.divide(m.max(axis=1) ** 2, total, out=np.zeros_like(total), where=total > 0)

    return float((strength(r).sum() + strength(r.T).sum()) / (r.shape[0] + r.shape[1]))


def udr(
    codes_per_model: Sequence[Any],
    *,
    kl: Sequence[Any] | None = None,
    threshold: float = 0.01,
    correlation: str = "lasso",
    alpha: float = 0.1,
    seed: int = 0,
) -> UDRResult:
    """Unsupervised Disentanglement Ranking of M models from their codes of the same N inputs.

    For every ordered pair of models (i, j): each model's codes ``[N, D_m]`` are standardised per latent (mean
    0, standard deviation 1; uninformative latents are then set to 0), a similarity matrix ``R [D_i, D_j]`` is
    computed, and ``pairwise[i, j] = UDR_ij`` follows from :func:`udr_pair` over the informative latents. The
    model's score is the median over the other models,

        UDR_m = median_{i != m} pairwise[i, m]

    (as disentanglement_lib: with Lasso, R is not symmetric, and model m is the one being regressed on).

    Similarity ``R`` (``correlation``):

    - ``"lasso"`` (UDR_L, disentanglement_lib's default): ``|coef|`` of a Lasso regression (``alpha`` 0.1)
      predicting model j's standardised latents from model i's; R_ab is about 1 - alpha for an exact one-to-one
      match of latent a with latent b, up to sign.
    - ``"spearman"`` (UDR_S): ``|Spearman rank correlation|`` of every pair of latents (invariant to any
      monotone reparametrisation of a latent).

    Informative latents: ``kl[m] [D_m]``, the mean KL divergence of each latent's posterior from the prior, with
    ``KL > threshold`` (0.01, the paper's) counting as informative. Without ``kl``, a latent is informative when
    the variance of its code over the N inputs exceeds ``threshold`` (the "active units" criterion of Burda et
    al. 2016; for posterior means of a VAE, a collapsed latent sits at the prior mean for every input). The
    codes are the posterior means; latents need not have the same count in every model.

    Limits: UDR measures agreement between models, not disentanglement itself: models that entangle the factors
    in the *same* way (for example by a shared architectural bias) rank well, and a set of mostly entangled
    models gives the disentangled minority a low median. It needs several models (the paper uses about 5-50
    seeds per hyper-parameter setting).

    Args:
        codes_per_model: M >= 2 arrays ``[N, D_m]`` (numpy or torch), the same N inputs in the same order.
        kl: optional per-model ``[D_m]`` mean KL per latent.
        threshold: KL (or code variance) above which a latent counts as informative.
        correlation: ``"lasso"`` or ``"spearman"``.
        alpha: the Lasso penalty.
        seed: the Lasso's ``random_state`` (it only matters for its coordinate order).
    """
    if correlation not in CORRELATIONS:
        raise ValueError(f"correlation must be one of {CORRELATIONS}, got {correlation!r}")
    threshold = real(threshold, "threshold", nonnegative=True)
    alpha = real(alpha, "alpha", positive=True)
    if isinstance(codes_per_model, (str, bytes)) or len(codes_per_model) < 2:
        raise ValueError("udr needs the codes of at least 2 models (a list of [N, D] arrays)")
    codes = [check_codes(z, f"codes_per_model[{m}]") for m, z in enumerate(codes_per_model)]
    for m, z in enumerate(codes[1:], start=1):
        check_same_rows(codes[0], "codes_per_model[0]", z, f"codes_per_model[{m}]")
    if kl is not None:
        if len(kl) != len(codes):
            raise ValueError(f"kl has {len(kl)} entries for {len(codes)} models")
        kls = [to_numpy(k, f"kl[{m}]").astype(np.float64).reshape(-1) for m, k in enumerate(kl)]
        for m, (k, z) in enumerate(zip(kls, codes)):
            if k.size != z.shape[1]:
                raise ValueError(f"kl[{m}] has {k.size} entries for {z.shape[1]} latents")
        informative = [k > threshold for k in kls]
    else:
        informative = [z.var(axis=0) > threshold for z in codes]
    standard = []
    for z, mask in zip(codes, informative):
        std = z.std(axis=0)
        zs = (z - z.mean(axis=0)) / np.where(std > 0, std, 1.0)
        standard.append(zs * mask)  # uninformative latents carry nothing into the regressions
    rs = seed_int(seed)
    num = len(codes)
    pairwise = np.full((num, num), np.nan)
    for i in range(num):
        for j in range(num):
            if i != j:
                r = _correlation_matrix(standard[i], standard[j], correlation, alpha, rs)
                pairwise[i, j] = udr_pair(r, informative[i], informative[j])
    scores = np.array([np.median(np.delete(pairwise[:, m], m)) for m in range(num)])
    return UDRResult(
        scores=scores,
        pairwise=pairwise,
        informative=informative,
        ranking=np.argsort(-scores, kind="stable"),
        correlation=correlation,
    )
