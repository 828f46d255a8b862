"""What a representation is good for downstream: sample-efficient prediction of the factors (Locatello et al.
2020, "A Sober Look at the Unsupervised Learning of Disentangled Representations and their Evaluation") and the
unfairness of such predictions with respect to another factor (Locatello et al. 2019, "On the Fairness of
Disentangled Representations"), in disentanglement_lib's definitions, on arrays.

Arrays and the train/test convention are :mod:`probrep.metrics.predictive`'s: ``(factors, codes, factors_test=None,
codes_test=None, *, test_fraction=1/3, seed=0, n_jobs=-1)``; factors constant on the training rows are excluded.

Classifiers (``model``):

- ``"logistic"``: disentanglement_lib's ``logistic_regression_cv``, scikit-learn's ``LogisticRegressionCV(Cs=10,
  cv=KFold(5))`` (L2 penalty, C picked from 10 values in [1e-4, 1e4] by 5-fold cross-validation, unshuffled
  folds: the rows are already in random order); on codes standardised with the training rows' mean and
  standard deviation, so that the solver converges on any code scale (the penalty is chosen by validation, so
  the scale would only move which C wins). With fewer than 10 rows the folds are too small to validate on, and
  ``LogisticRegression()`` (C = 1) is fitted instead.
- ``"gbt"``: gradient-boosted trees as disentanglement_lib's ``GradientBoostingClassifier()`` (100 depth-3
  trees, learning rate 0.1), fitted with LightGBM's histogram algorithm (as ``dci(estimator="lightgbm")``):
  seconds instead of minutes; not bit-identical to scikit-learn's trees.
- ``"sklearn_gbt"``: scikit-learn's ``GradientBoostingClassifier()``, disentanglement_lib's exact predictor (slow).

A training set holding a single class of a factor cannot be fitted; the "classifier" then predicts that class.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from joblib import effective_n_jobs

from probrep._checks import integer
from probrep.metrics._arrays import (
    check_same_rows,
    convergence_to_log,
    informative_factors,
    seed_int,
    to_numpy,
    train_test,
)

__all__ = ["DownstreamResult", "FairnessResult", "downstream", "fairness", "unfairness", "MODELS"]

logger = logging.getLogger("probrep.metrics")

MODELS = ("logistic", "gbt", "sklearn_gbt")


class _Constant:
    """The prediction of a training set with one class: that class."""

    def __init__(self, label: Any) -> None:
        self.label = label

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.label)


def _fit(model: str, x: np.ndarray, y: np.ndarray, random_state: int):
    classes = np.unique(y)
    if classes.size == 1:
        return _Constant(classes[0])
    if model == "logistic":
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.model_selection import KFold

        if len(y) < 10:
            return LogisticRegression(random_state=random_state).fit(x, y)
        extra: dict[str, Any] = {}
        if "use_legacy_attributes" in LogisticRegressionCV().get_params():
            # scikit-learn >= 1.9 announces new defaults; these are today's meaning, stated so it stays quiet
            extra = {"use_legacy_attributes": False, "l1_ratios": (0.0,)}
        return LogisticRegressionCV(
            Cs=10, cv=KFold(n_splits=5), scoring="accuracy", random_state=random_state, **extra
        ).fit(x, y)
    if model == "sklearn_gbt":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(random_state=random_state).fit(x, y)
    from lightgbm import LGBMClassifier

    # scikit-learn's GradientBoostingClassifier defaults in LightGBM's terms (as predictive._fit_histogram_gbt);
    # min_data_in_bin=1 so that a training set of 10 rows still gets its thresholds
    return LGBMClassifier(
        n_estimators=100, learning_rate=0.1, max_depth=3, num_leaves=8, min_child_samples=1, min_data_in_bin=1,
        min_child_weight=1e-3, min_split_gain=0.0, reg_lambda=0.0, subsample=1.0, colsample_bytree=1.0,
        random_state=random_state, n_jobs=1, deterministic=True, verbose=-1,
    ).fit(x, y)  # fmt: skip


@contextmanager
def _fitting(what: str) -> Iterator[None]:
    """Around a batch of small fits: one BLAS thread (a few-thousand-row logistic regression loses more to
    thread start-up and contention than it gains, many times over on a busy machine) and convergence warnings
    as one log line."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), convergence_to_log(what):
        yield


def _check_models(models: Any) -> tuple[str, ...]:
    models = (models,) if isinstance(models, str) else tuple(models)
    if not models:
        raise ValueError(f"models must name at least one of {MODELS}")
    for m in models:
        if m not in MODELS:
            raise ValueError(f"unknown model {m!r}: expected one of {MODELS}")
    return models


def _standardise(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant code is only centred
    return [(a - mean) / std for a in (x_train, *others)]


@dataclass(frozen=True)
class DownstreamResult:
    """Downstream accuracy. ``accuracy [M, S, K']``: test accuracy of model ``models[m]`` trained on ``sizes[s]``
    labelled rows, for kept factor ``factors[k]`` (input column); ``accuracy_train`` the same on those rows;
    ``mean_accuracy [M, S]`` the mean over factors; ``efficiency[model]`` = mean accuracy at 100 / at
    ``sizes[-1]`` (None unless both 100 and a larger size ran); ``skipped``: requested sizes larger than the
    training set."""

    models: tuple[str, ...]
    sizes: tuple[int, ...]
    skipped: tuple[int, ...]
    accuracy: np.ndarray
    accuracy_train: np.ndarray
    mean_accuracy: np.ndarray
    efficiency: dict[str, float | None]
    factors: np.ndarray

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per model, mean test accuracy by size (str keys), per-factor accuracies, efficiency."""
        return {
            model: {
                "accuracy": {str(n): float(self.mean_accuracy[m, s]) for s, n in enumerate(self.sizes)},
                "accuracy_per_factor": {
                    str(n): [float(a) for a in self.accuracy[m, s]] for s, n in enumerate(self.sizes)
                },
                "efficiency": self.efficiency[model],
            }
            for m, model in enumerate(self.models)
        } | {"sizes": list(self.sizes), "skipped": list(self.skipped), "factors": [int(k) for k in self.factors]}


def downstream(
    factors: Any,
    codes: Any,
    factors_test: Any = None,
    codes_test: Any = None,
    *,
    sizes: Sequence[int] = (10, 100, 1000, 10000),
    models: Sequence[str] | str = ("logistic", "gbt"),
    test_fraction: float = 1 / 3,
    seed: int | np.random.Generator = 0,
    n_jobs: int | None = -1,
) -> DownstreamResult:
    """Test accuracy of predicting each factor from the codes with few labels, and the sample efficiency.

    As disentanglement_lib's ``downstream_task``: for every training size n in ``sizes`` and every kept factor
    k, a classifier ``models[m]`` (module docstring) is fitted on n labelled rows to predict factor k's class
    from all codes; ``accuracy[m, s, k]`` is its accuracy on the test rows. The n rows are the first n of one
    seeded permutation of the training rows, so the training sets are nested (the 100 rows contain the 10),
    which makes the comparison between sizes less noisy than fresh draws (disentanglement_lib samples a fresh
    training and test set for every size). Sizes larger than the training set are skipped, with a log note,
    and listed in ``skipped``.

    Sample efficiency (Locatello et al. 2020, Section 5: "the average accuracy based on 100 samples divided by
    the average accuracy based on 10 000 samples"), per model:

        efficiency = mean_k accuracy(n = 100, k) / mean_k accuracy(n = N_max, k)

    with ``N_max`` the largest size that ran (10,000 with the defaults and enough rows; report ``sizes`` with
    the number, a smaller ``N_max`` gives a larger ratio). None when 100 did not run or nothing larger did.

    Args:
        factors, codes: ``[N, K]`` integer classes and ``[N, D]`` codes; the training pool (or the rows to
            split, when the test arrays are omitted).
        sizes: numbers of labelled training rows (positive integers, any order; run in increasing order).
        models: names from :data:`MODELS`.
        seed: seeds the split, the subsets and the classifiers.
        n_jobs: threads fitting the factors' classifiers side by side, one thread each (LightGBM's own
            threads spin-wait: on a busy 2-core machine a 2-thread fit ran 30 times slower).
    """
    models = _check_models(models)
    sizes_in = sorted({integer(n, "sizes entries", 1) for n in sizes})
    if not sizes_in:
        raise ValueError("sizes must hold at least one training size")
    f_tr, z_tr, f_te, z_te = train_test(factors, codes, factors_test, codes_test, test_fraction, seed)
    keep = informative_factors(f_tr)
    ran = tuple(n for n in sizes_in if n <= len(f_tr))
    skipped = tuple(n for n in sizes_in if n > len(f_tr))
    if skipped:
        logger.info("downstream: sizes %s skipped, the training set has %d rows", list(skipped), len(f_tr))
    if not ran:
        raise ValueError(f"every size in {sizes_in} is larger than the {len(f_tr)} training rows")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    order = rng.permutation(len(f_tr))
    rs = seed_int(seed)
    acc = np.zeros((len(models), len(ran), keep.size))
    acc_train = np.zeros_like(acc)

    def one(s: int, m: int, j: int) -> None:
        rows = order[: ran[s]]
        x_tr, x_te = _standardise(z_tr[rows], z_te)
        y = f_tr[rows, keep[j]]
        clf = _fit(models[m], x_tr, y, rs)
        acc[m, s, j] = np.mean(clf.predict(x_te) == f_te[:, keep[j]])
        acc_train[m, s, j] = np.mean(clf.predict(x_tr) == y)

    jobs = [(s, m, j) for s in range(len(ran)) for m in range(len(models)) for j in range(keep.size)]
    with _fitting("LogisticRegressionCV (downstream)"), ThreadPoolExecutor(effective_n_jobs(n_jobs)) as pool:
        list(pool.map(lambda job: one(*job), jobs))
    mean = acc.mean(axis=2)
    efficiency: dict[str, float | None] = {}
    for m, model in enumerate(models):
        ok = 100 in ran and ran[-1] > 100 and mean[m, -1] > 0
        efficiency[model] = float(mean[m, ran.index(100)] / mean[m, -1]) if ok else None
    return DownstreamResult(models, ran, skipped, acc, acc_train, mean, efficiency, keep)


def unfairness(predictions: Any, sensitive: Any) -> tuple[float, float]:
    """(mean, max) total-variation distance between the predictions given each sensitive value and overall.

    ``predictions`` and ``sensitive`` are 1-D class labels of the same rows. With ``n_pc`` the number of rows
    predicted ``p`` with sensitive value ``c``, ``n_c = sum_p n_pc`` and ``n = sum_c n_c``:

        P(p) = sum_c n_pc / n,   P(p | c) = n_pc / n_c,   TV_c = 1/2 sum_p |P(p | c) - P(p)|
        mean = sum_c (n_c / n) TV_c,   max = max_c TV_c

    disentanglement_lib's ``inter_group_fairness`` (it computes the same in float32; this is float64). 0 is
    demographic parity: the prediction distribution does not depend on the sensitive value.
    """
    p, c = to_numpy(predictions, "predictions"), to_numpy(sensitive, "sensitive")
    if p.ndim != 1 or c.ndim != 1:
        raise ValueError(f"predictions and sensitive must be 1-D class labels, got shapes {p.shape} and {c.shape}")
    check_same_rows(p[:, None], "predictions", c[:, None], "sensitive")
    if p.size == 0:
        raise ValueError("predictions and sensitive are empty")
    _, p_idx = np.unique(p, return_inverse=True)
    _, c_idx = np.unique(c, return_inverse=True)
    counts = np.zeros((p_idx.max() + 1, c_idx.max() + 1))
    np.add.at(counts, (p_idx, c_idx), 1.0)
    per_class = counts.sum(axis=0)
    overall = counts.sum(axis=1) / counts.sum()
    tv = 0.5 * np.abs(counts / per_class - overall[:, None]).sum(axis=0)
    return float(np.sum(tv * per_class) / per_class.sum()), float(tv.max())


@dataclass(frozen=True)
class FairnessResult:
    """Unfairness: ``mean [K', K']`` and ``max [K', K']`` (row: target factor, column: sensitive factor, both
    indices into ``factors``; NaN on the diagonal and for pairs not evaluated), ``score`` (mean over targets of
    the mean over sensitive factors of ``mean``: disentanglement_lib's ``mean_fairness:mean_pred:mean_sens``),
    ``score_max`` (the same of ``max``), and the target classifiers' test ``accuracy [K']`` (NaN if unused)."""

    score: float
    score_max: float
    mean: np.ndarray
    max: np.ndarray
    accuracy: np.ndarray
    model: str
    factors: np.ndarray


def _columns(which: Any, keep: np.ndarray, name: str) -> list[int]:
    """Positions in ``keep`` of the input columns ``which`` (None: all kept)."""
    if which is None:
        return list(range(keep.size))
    cols = [which] if isinstance(which, (int, np.integer)) else list(which)
    out = []
    for col in cols:
        col = integer(col, f"{name} entries", 0)
        if col not in keep:
            raise ValueError(f"{name} column {col} is not a kept factor (kept: {keep.tolist()}; constant ones drop)")
        out.append(int(np.flatnonzero(keep == col)[0]))
    return out


def fairness(
    factors: Any,
    codes: Any,
    factors_test: Any = None,
    codes_test: Any = None,
    *,
    target: Any = None,
    sensitive: Any = None,
    model: str = "gbt",
    test_fraction: float = 1 / 3,
    seed: int | np.random.Generator = 0,
    n_jobs: int | None = -1,
) -> FairnessResult:
    """Unfairness of classifiers on the representation (Locatello et al. 2019, disentanglement_lib's
    ``compute_fairness``) for target factors with respect to sensitive factors.

    For each target factor i a classifier ``model`` (disentanglement_lib: ``GradientBoostingClassifier``; the
    default ``"gbt"`` is its LightGBM stand-in) is fitted on the training rows to predict factor i from the
    codes. For each sensitive factor j != i, the test predictions are grouped by factor j's value c and

        unfairness_mean[i, j] = sum_c (n_c / n) TV(P(pred | v_j = c), P(pred)),  unfairness_max[i, j] = max_c TV

    (:func:`unfairness`). ``score`` averages ``mean`` over sensitive factors, then over targets.

    Observational, not interventional: disentanglement_lib draws one set of factors and renders it once per
    value c of the sensitive factor (``do(v_j = c)``), so every group sees the same other factors. Here the
    groups are the test rows with ``v_j = c``. The two estimate the same quantity when the sensitive factor is
    independent of the others (dSprites' uniform sampling), and coincide exactly on a full factor grid; with
    correlated factors the observational number also counts the dependence that the data itself carries.

    Small groups. TV between an empirical distribution of ``n_c`` predictions and the overall one is biased
    upwards: a classifier independent of the sensitive factor, with P predicted classes spread evenly, still
    scores about ``sqrt(P / (2 pi n_c))`` (while that is well below 1). disentanglement_lib uses 100 rows per
    sensitive value; compare representations at equal test sizes, and use several thousand test rows for
    factors with tens of values.

    Args:
        target, sensitive: input factor columns (an int or a sequence; default all kept factors).
        model: one of :data:`MODELS`; other arguments as :func:`downstream`.
    """
    (model,) = _check_models(model)
    f_tr, z_tr, f_te, z_te = train_test(factors, codes, factors_test, codes_test, test_fraction, seed)
    keep = informative_factors(f_tr)
    targets, sens = _columns(target, keep, "target"), _columns(sensitive, keep, "sensitive")
    if not any(i != j for i in targets for j in sens):
        raise ValueError("fairness needs a sensitive factor other than the target")
    x_tr, x_te = _standardise(z_tr, z_te) if model == "logistic" else (z_tr, z_te)
    rs = seed_int(seed)
    mean = np.full((keep.size, keep.size), np.nan)
    worst = np.full_like(mean, np.nan)
    accuracy = np.full(keep.size, np.nan)
    with _fitting("LogisticRegressionCV (fairness)"), ThreadPoolExecutor(effective_n_jobs(n_jobs)) as pool:
        preds = list(pool.map(lambda i: _fit(model, x_tr, f_tr[:, keep[i]], rs).predict(x_te), targets))
    for i, pred in zip(targets, preds):
        accuracy[i] = np.mean(pred == f_te[:, keep[i]])
        for j in sens:
            if j != i:
                mean[i, j], worst[i, j] = unfairness(pred, f_te[:, keep[j]])
    rows = [i for i in targets if np.isfinite(mean[i]).any()]
    return FairnessResult(
        score=float(np.mean([np.nanmean(mean[i]) for i in rows])),
        score_max=float(np.mean([np.nanmean(worst[i]) for i in rows])),
        mean=mean,
        max=worst,
        accuracy=accuracy,
        model=model,
        factors=keep,
    )
