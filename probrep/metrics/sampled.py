"""Disentanglement metrics that sample their own data: the FactorVAE score and the BetaVAE score.

Both take a ``dataset`` with ``factor_sizes`` (classes per factor), ``sample_factors(n, rng) -> int [n, K]``
and ``render(classes) -> images [n, ...]`` (:class:`probrep.data.DSprites` is one), and an ``encode``
callable from images to codes ``[n, D]`` (numpy or torch out). Images reach ``encode`` as numpy arrays, or as
torch tensors when ``encode`` is a ``torch.nn.Module`` or one of its bound methods (``vae.encode``), on that
module's device; ``inputs=`` / ``device=`` override this.

Speed: every random factor vector of a phase is drawn up front, in the order the protocol draws them (so the
numbers do not depend on the chunk size), then the distinct vectors are rendered and encoded ``chunk_size`` at
a time and each vote's statistic is computed for all votes at once. The encoder is the whole cost (dSprites:
2.9 million draws for the two scores, about 0.7 million distinct images), so each distinct factor vector is
encoded once (:class:`~probrep.metrics.CodeCache`; pass one to both scores to share it), which gives exactly
the numbers of encoding every draw for a deterministic encoder (posterior means, what disentanglement_lib
scores); ``cache=None`` encodes every draw as drawn, for an encoder that samples. Only factors with more than
one value are ever chosen as the fixed factor (disentanglement_lib's dSprites drops the constant colour factor
the same way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from probrep._checks import integer, real
from probrep.metrics._arrays import convergence_to_log, seed_int
from probrep.metrics._encoding import CodeCache, Lookup, make_encoder

logger = logging.getLogger("probrep.metrics")


@dataclass(frozen=True)
class FactorVAEResult:
    """FactorVAE score: ``score`` (eval accuracy), ``train_accuracy``, ``num_active_dims``, ``active [D]``,
    ``global_variance [D]``, ``classifier [D]`` (factor voted for by each code dimension, -1 if it got no
    votes) and the vote counts ``votes_train`` / ``votes_eval [K, D]`` (rows: all K dataset factors)."""

    score: float
    train_accuracy: float
    num_active_dims: int
    active: np.ndarray
    global_variance: np.ndarray
    classifier: np.ndarray
    votes_train: np.ndarray
    votes_eval: np.ndarray

    @property
    def factor_accuracy(self) -> np.ndarray:
        """``[K]``: the share of each factor's eval votes that land on a dimension the classifier gives that factor
        (NaN for a factor never voted on, such as a constant one; all NaN when no dimension is active). ``score`` is
        their vote-weighted mean, so this says which factors a score finds: a code with no dimension for a factor
        scores 0 on it, which caps the score at the share of the votes that fix the factors it has (3 of dSprites'
        5 factors: about 0.6)."""
        owned = self.classifier[None, :] == np.arange(self.votes_eval.shape[0])[:, None]
        hits = (self.votes_eval * owned).sum(axis=1)
        total = self.votes_eval.sum(axis=1)
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


@dataclass(frozen=True)
class BetaVAEResult:
    """BetaVAE score: ``score`` (eval accuracy of the linear classifier) and ``train_accuracy``."""

    score: float
    train_accuracy: float


def _check_dataset(dataset: Any) -> tuple[int, np.ndarray]:
    """(number of factors K, indices of the factors with more than one value)."""
    missing = [a for a in ("factor_sizes", "sample_factors", "render") if not hasattr(dataset, a)]
    if missing:
        raise TypeError(
            f"dataset must provide factor_sizes, sample_factors and render; {type(dataset).__name__} "
            f"lacks {', '.join(missing)}"
        )
    sizes = np.asarray(dataset.factor_sizes, dtype=np.int64).reshape(-1)
    if sizes.size == 0 or np.any(sizes < 1):
        raise ValueError(f"dataset.factor_sizes must be positive integers, got {tuple(dataset.factor_sizes)}")
    varying = np.flatnonzero(sizes > 1)
    if varying.size == 0:
        raise ValueError("dataset has no factor with more than one value; nothing to score")
    return int(sizes.size), varying


def _sample(dataset: Any, n: int, rng: np.random.Generator, num_factors: int) -> np.ndarray:
    factors = np.asarray(dataset.sample_factors(n, rng))
    if factors.shape != (n, num_factors):
        raise ValueError(f"dataset.sample_factors({n}, rng) must return shape {(n, num_factors)}, got {factors.shape}")
    return factors


def _fixed_factor_groups(
    dataset: Any, n: int, group: int, varying: np.ndarray, num_factors: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` groups of ``group`` factor vectors sharing the value of one random varying factor each."""
    ks = rng.choice(varying, size=n)
    factors = _sample(dataset, n * group, rng, num_factors).reshape(n, group, num_factors)
    rows = np.arange(n)
    factors[rows, :, ks] = factors[rows, 0, ks][:, None]
    return ks, factors


def _votes(
    lookup: Lookup, ks: np.ndarray, factors: np.ndarray, global_var: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """Vote counts ``[K, D]``: one vote (k, argmin_d Var_batch(z_d) / Var(z_d) over active d) per batch of
    ``factors [n, batch, K]``, all batches at once."""
    codes = lookup(factors)  # [n, batch, D]
    if codes.shape[-1] != global_var.size:
        raise ValueError(f"encode returned {codes.shape[-1]} code dimensions, earlier {global_var.size}")
    active_idx = np.flatnonzero(active)
    local = codes.var(axis=1, ddof=1)
    dims = active_idx[np.argmin(local[:, active_idx] / global_var[active_idx], axis=1)]
    votes = np.zeros((factors.shape[-1], global_var.size), dtype=np.int64)
    np.add.at(votes, (ks, dims), 1)
    return votes


def _check_common(batch_size: int, num_train: int, num_eval: int, chunk_size: int) -> None:
    integer(batch_size, "batch_size", 2)
    integer(num_train, "num_train")
    integer(num_eval, "num_eval")
    integer(chunk_size, "chunk_size")


def factor_vae_score(
    dataset: Any,
    encode: Callable[[Any], Any],
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
    seed: int | np.random.Generator = 0,
    progress: bool = True,
    *,
    chunk_size: int = 4096,
    inputs: str = "auto",
    device: str | torch.device | None = None,
    cache: CodeCache | None | str = "auto",
) -> FactorVAEResult:
    """FactorVAE disentanglement score (Kim & Mnih 2018), with disentanglement_lib's protocol and defaults.

    1. Global variances ``s_d^2 = Var(z_d)`` (ddof 1) of ``num_variance_estimate`` encoded random images.
       Active dimensions follow disentanglement_lib's ``prune_dims`` with its study setting
       ``threshold = 0.05``: ``sqrt(s_d^2) >= prune_threshold`` (a standard deviation, not a variance), and
       additionally ``s_d^2 > 0``. With no active dimension the score is 0 and a warning is logged.
    2. A vote: draw a factor k uniformly among the factors with more than one value, ``batch_size`` random
       factor vectors that all share one random value of factor k, encode them, and vote
       ``(k, argmin_d Var_batch(z_d) / s_d^2)`` over the active d, i.e. the smallest in-batch variance of
       the codes after dividing each dimension by its global standard deviation.
    3. The majority-vote classifier maps each dimension d to ``argmax_k V_train[k, d]`` (ties: lowest k);
       accuracy = ``sum_d V[c(d), d] / sum V``. ``score`` is the accuracy on ``num_eval`` fresh votes.

    ``num_active_dims`` is the number of active dimensions (disentanglement_lib reports D by mistake). The
    images are rendered and encoded ``chunk_size`` at a time (many votes per ``encode`` call), each distinct
    factor vector once (``cache``: ``"auto"`` a fresh :class:`~probrep.metrics.CodeCache`, or one shared with
    :func:`beta_vae_score`; ``None`` encodes every draw, for an encoder that samples; the module docstring says
    why the numbers are the same); a tqdm bar counts images encoded (``progress=False`` hides it).
    """
    _check_common(batch_size, num_train, num_eval, chunk_size)
    integer(num_variance_estimate, "num_variance_estimate", 2)
    real(prune_threshold, "prune_threshold", nonnegative=True)
    num_factors, varying = _check_dataset(dataset)
    encoder = make_encoder(encode, inputs, device)
    cache = _check_cache(cache, dataset, encode)
    rs = seed_int(seed)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(rs)
    total = num_variance_estimate + (num_train + num_eval) * batch_size
    with tqdm(total=total, desc="FactorVAE score", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        lookup = Lookup(dataset, encoder, _sizes(dataset), chunk_size, cache, bar)
        codes = lookup(_sample(dataset, num_variance_estimate, rng, num_factors))
        global_var = codes.var(axis=0, ddof=1)
        active = (np.sqrt(global_var) >= prune_threshold) & (global_var > 0)
        num_codes = global_var.size
        if not active.any():
            logger.warning("factor_vae_score: no active code dimension (all std < %g); score set to 0", prune_threshold)
            empty = np.zeros((num_factors, num_codes), dtype=np.int64)
            return FactorVAEResult(0.0, 0.0, 0, active, global_var, np.full(num_codes, -1), empty, empty.copy())
        train = _fixed_factor_groups(dataset, num_train, batch_size, varying, num_factors, rng)
        evals = _fixed_factor_groups(dataset, num_eval, batch_size, varying, num_factors, rng)
        votes_train = _votes(lookup, *train, global_var, active)
        votes_eval = _votes(lookup, *evals, global_var, active)
    classifier = np.where(votes_train.sum(axis=0) > 0, np.argmax(votes_train, axis=0), -1)
    cols = np.flatnonzero(classifier >= 0)
    train_acc = votes_train[classifier[cols], cols].sum() / votes_train.sum()
    eval_acc = votes_eval[classifier[cols], cols].sum() / votes_eval.sum()
    return FactorVAEResult(
        score=float(eval_acc),
        train_accuracy=float(train_acc),
        num_active_dims=int(active.sum()),
        active=active,
        global_variance=global_var,
        classifier=classifier,
        votes_train=votes_train,
        votes_eval=votes_eval,
    )


def _beta_pairs(
    dataset: Any, n: int, batch_size: int, varying: np.ndarray, num_factors: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels ``ks [n]`` and ``n`` batches of factor-vector pairs ``[n, batch, K]`` sharing factor ``ks[i]``."""
    ks = rng.choice(varying, size=n)
    first = _sample(dataset, n * batch_size, rng, num_factors).reshape(n, batch_size, num_factors)
    second = _sample(dataset, n * batch_size, rng, num_factors).reshape(n, batch_size, num_factors)
    rows = np.arange(n)
    second[rows, :, ks] = first[rows, :, ks]
    return ks, first, second


def _beta_features(lookup: Lookup, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Feature of each batch: mean over its pairs of |z(x1) - z(x2)| ``[n, D]``."""
    z = lookup(np.stack([first, second]))  # [2, n, batch, D]
    return np.abs(z[0] - z[1]).mean(axis=1)


def _sizes(dataset: Any) -> np.ndarray:
    return np.asarray(dataset.factor_sizes, dtype=np.int64).reshape(-1)


def _check_cache(cache: Any, dataset: Any, encode: Any) -> CodeCache | None:
    if isinstance(cache, str) and cache == "auto":
        cache = CodeCache()
    if cache is not None and not isinstance(cache, CodeCache):
        raise TypeError(f"cache must be 'auto', None or a CodeCache, got {type(cache).__name__}")
    if cache is not None:
        cache.bind(dataset, encode)
    return cache


def beta_vae_score(
    dataset: Any,
    encode: Callable[[Any], Any],
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    seed: int | np.random.Generator = 0,
    progress: bool = True,
    *,
    chunk_size: int = 4096,
    inputs: str = "auto",
    device: str | torch.device | None = None,
    cache: CodeCache | None | str = "auto",
) -> BetaVAEResult:
    """BetaVAE disentanglement score (Higgins et al. 2017), disentanglement_lib's scikit-learn version.

    Each point: draw a factor k uniformly among the factors with more than one value and ``batch_size`` pairs
    of random factor vectors ``(v1_b, v2_b)`` with ``v2_b[k] = v1_b[k]``; the feature is
    ``mean_b |z(x(v1_b)) - z(x(v2_b))|`` (per code dimension) and the label is k. A
    ``LogisticRegression`` (scikit-learn defaults, ``random_state=seed``) is fitted on ``num_train`` points;
    ``score`` is its accuracy on ``num_eval`` fresh points (``train_accuracy`` on the training points).
    Images are rendered and encoded ``chunk_size`` at a time, each distinct factor vector once (``cache`` as in
    :func:`factor_vae_score`); a tqdm bar counts images encoded.
    """
    _check_common(batch_size, num_train, num_eval, chunk_size)
    num_factors, varying = _check_dataset(dataset)
    encoder = make_encoder(encode, inputs, device)
    cache = _check_cache(cache, dataset, encode)
    rs = seed_int(seed)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(rs)
    total = 2 * (num_train + num_eval) * batch_size
    with tqdm(total=total, desc="BetaVAE score", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        lookup = Lookup(dataset, encoder, _sizes(dataset), chunk_size, cache, bar)
        y_train, *train = _beta_pairs(dataset, num_train, batch_size, varying, num_factors, rng)
        y_eval, *evals = _beta_pairs(dataset, num_eval, batch_size, varying, num_factors, rng)
        x_train, x_eval = _beta_features(lookup, *train), _beta_features(lookup, *evals)
    if x_eval.shape[1] != x_train.shape[1]:
        raise ValueError(f"encode returned {x_eval.shape[1]} code dimensions, earlier {x_train.shape[1]}")
    if np.unique(y_train).size < 2:
        raise ValueError("beta_vae_score: the training points cover a single factor; raise num_train")
    with convergence_to_log("LogisticRegression (BetaVAE score)"):
        model = LogisticRegression(random_state=rs)
        model.fit(x_train, y_train)
    return BetaVAEResult(
        score=float(np.mean(model.predict(x_eval) == y_eval)),
        train_accuracy=float(np.mean(model.predict(x_train) == y_train)),
    )
