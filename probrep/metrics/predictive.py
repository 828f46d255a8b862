"""The disentanglement metrics that fit classifiers from codes to factors: DCI, SAP and explicitness.

All three take ``(factors, codes, factors_test=None, codes_test=None, *, test_fraction=1/3, seed=0,
n_jobs=-1)``: with explicit test arrays the classifiers are fitted on ``factors``/``codes`` and evaluated on
the test arrays; without them the rows are split once by a seeded permutation (default 1/3 for testing, the
10,000 / 5,000 ratio of disentanglement_lib's protocol). Factors that are constant on the training rows are
excluded (nothing to predict); results list the kept input columns in ``factors``.

Speed. The classifiers of different factors (or code/factor pairs) are independent, so they are fitted in
parallel threads (``joblib``, ``n_jobs=-1``: all cores). scikit-learn's tree builder and liblinear release
the GIL, so threads run concurrently without copying data to worker processes. Each fit gets the same fixed
``random_state``, so the fitted models, and every number returned, are identical for any ``n_jobs``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.svm import LinearSVC

from probrep.metrics._arrays import convergence_to_log, informative_factors, seed_int, train_test


@dataclass(frozen=True)
class DCIResult:
    """DCI scores. ``score`` is the disentanglement. Per kept factor (input columns ``factors``):
    ``importance [D, K']``, ``completeness_per_factor [K']``, ``factor_weights [K']``, ``accuracy_train`` and
    ``accuracy_test [K']``; per code: ``disentanglement_per_code [D]``, ``code_weights [D]``."""

    disentanglement: float
    completeness: float
    informativeness: float
    informativeness_train: float
    importance: np.ndarray
    disentanglement_per_code: np.ndarray
    completeness_per_factor: np.ndarray
    code_weights: np.ndarray
    factor_weights: np.ndarray
    accuracy_train: np.ndarray
    accuracy_test: np.ndarray
    factors: np.ndarray

    @property
    def score(self) -> float:
        return self.disentanglement


@dataclass(frozen=True)
class SAPResult:
    """SAP: ``score``, test accuracies ``matrix [D, K']`` and ``gaps [K']`` over the kept ``factors``."""

    score: float
    matrix: np.ndarray
    gaps: np.ndarray
    factors: np.ndarray


@dataclass(frozen=True)
class ExplicitnessResult:
    """Explicitness: ``score`` (test ROC AUC), ``score_train``, and ``per_factor`` / ``per_factor_train [K']``."""

    score: float
    score_train: float
    per_factor: np.ndarray
    per_factor_train: np.ndarray
    factors: np.ndarray


def _run(tasks: Sequence[Callable[[], Any]], cost: Sequence[float], n_jobs: int | None) -> list[Any]:
    """Run independent tasks, largest ``cost`` first (longest-processing-time order), in threads; input order out."""
    order = np.argsort(-np.asarray(cost, dtype=np.float64), kind="stable")
    workers = min(effective_n_jobs(n_jobs), len(tasks))
    if workers <= 1:
        results = [tasks[i]() for i in order]
    else:
        results = Parallel(n_jobs=workers, backend="threading")(delayed(tasks[i])() for i in order)
    out: list[Any] = [None] * len(tasks)
    for i, res in zip(order, results):
        out[i] = res
    return out


def _normalised_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of the (row-normalised, non-negative) ``p`` with log base ``base``; 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=1) / np.log(base)


def _dci_parts(importance: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r = np.abs(np.asarray(importance, dtype=np.float64))
    if r.ndim != 2 or r.shape[0] == 0 or r.shape[1] == 0:
        raise ValueError(f"importance must have shape [D, K] with D, K > 0, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("importance contains NaN or infinite values")
    num_codes, num_factors = r.shape
    total = r.sum()
    row, col = r.sum(axis=1), r.sum(axis=0)
    per_code = np.zeros(num_codes)
    per_factor = np.zeros(num_factors)
    used_rows, used_cols = row > 0, col > 0
    if num_factors == 1:
        per_code[used_rows] = 1.0
    else:
        per_code[used_rows] = 1.0 - _normalised_entropy(r[used_rows] / row[used_rows, None], num_factors)
    if num_codes == 1:
        per_factor[used_cols] = 1.0
    else:
        per_factor[used_cols] = 1.0 - _normalised_entropy((r[:, used_cols] / col[used_cols]).T, num_codes)
    if total == 0:
        return 0.0, 0.0, per_code, per_factor, np.zeros(num_codes), np.zeros(num_factors)
    rho_code, rho_factor = row / total, col / total
    return (
        float(np.sum(rho_code * per_code)),
        float(np.sum(rho_factor * per_factor)),
        per_code,
        per_factor,
        rho_code,
        rho_factor,
    )


def dci_from_importance(importance: Any) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix ``R [D, K]`` (Eastwood & Williams 2018).

        disentanglement = sum_d rho_d (1 - H_K(P_d.)),  P_dk = R_dk / sum_k R_dk,  rho_d = sum_k R_dk / sum R
        completeness    = sum_k rho_k (1 - H_D(P~_.k)), P~_dk = R_dk / sum_d R_dk, rho_k = sum_d R_dk / sum R

    ``H_K`` is the entropy with logarithm base K (so each term lies in [0, 1]), with ``0 log 0 = 0`` exactly
    (disentanglement_lib adds 1e-11 to R instead, which moves the scores by ~1e-9). A row or column of zeros
    has weight 0; an all-zero R scores 0; with K = 1 (D = 1) every used code (factor) term is 1.
    """
    d, c, *_ = _dci_parts(np.asarray(importance))
    return d, c


def _fit_gbt(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, random_state: int):
    model = GradientBoostingClassifier(random_state=random_state)
    model.fit(x_train, y_train)
    importance = np.abs(model.feature_importances_)
    return (
        importance,
        float(np.mean(model.predict(x_train) == y_train)),
        float(np.mean(model.predict(x_test) == y_test)),
    )


def _fit_histogram_gbt(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, random_state: int
):
    # scikit-learn's defaults, in LightGBM's terms: 100 rounds of depth-3 trees (at most 8 leaves), learning rate
    # 0.1, leaves of any size, no row or column subsampling, no regularisation; features binned into 255 bins
    from lightgbm import LGBMClassifier

    model = LGBMClassifier(
        n_estimators=100, learning_rate=0.1, max_depth=3, num_leaves=8, min_child_samples=1,
        min_child_weight=1e-3, min_split_gain=0.0, reg_lambda=0.0, subsample=1.0, colsample_bytree=1.0,
        importance_type="gain", random_state=random_state, n_jobs=1, deterministic=True, verbose=-1,
    )  # fmt: skip
    model.fit(x_train, y_train)
    gain = np.abs(np.asarray(model.feature_importances_, dtype=np.float64))
    importance = gain / gain.sum() if gain.sum() > 0 else gain  # normalised like scikit-learn's importances
    return (
        importance,
        float(np.mean(model.predict(x_train) == y_train)),
        float(np.mean(model.predict(x_test) == y_test)),
    )


DCI_ESTIMATORS = ("gbt", "lightgbm")


def dci(
    factors: Any,
    codes: Any,
    factors_test: Any = None,
    codes_test: Any = None,
    *,
    test_fraction: float = 1 / 3,
    seed: int | np.random.Generator = 0,
    n_jobs: int | None = -1,
    estimator: str = "gbt",
) -> DCIResult:
    """Disentanglement, Completeness and Informativeness (Eastwood & Williams 2018, as disentanglement_lib).

    For each kept factor k a ``GradientBoostingClassifier()`` with scikit-learn's default hyper-parameters
    (100 depth-3 trees, learning rate 0.1; ``random_state=seed``) predicts the factor's class from the codes.
    ``R_dk = |feature_importances_|`` of code d in factor k's model gives the importance matrix ``[D, K']``;
    disentanglement and completeness follow from R as in :func:`dci_from_importance`; informativeness is the
    mean test accuracy over factors (``informativeness_train`` the mean train accuracy).

    Fast, same definition: the K' models are fitted in parallel threads (``n_jobs``; the tree builder
    releases the GIL), largest class count first so the longest fit starts first, and the codes are cast
    once to float32, which ``GradientBoostingClassifier`` would otherwise do on every ``fit``/``predict``.
    The fitted models are identical for every ``n_jobs`` (checked by the tests).

    ``estimator="lightgbm"`` (``pip install lightgbm``) is the same measurement made fast: LightGBM's histogram
    gradient boosting with the same hyper-parameters (100 rounds, depth 3, learning rate 0.1, leaves of any
    size), ``R_dk`` = code d's total split gain in factor k's model, normalised to sum 1 as scikit-learn's
    importances are. It is not the identical number: LightGBM picks splits and measures their gain with the
    Newton (second-order) criterion and 255-bin histograms, scikit-learn with the first-order impurity decrease
    over every threshold, so the fast importances concentrate a little more. Exact cases (identity, duplicated
    codes) score exactly as the reference; on mixed codes disentanglement comes out about 0.03 higher and
    completeness about 0.02 (``tests/test_metrics_dci.py``; dSprites codes: ``benchmarks/metrics_timing.py``).
    Compare models with one estimator, and report which. As for the reference, the factors are fitted in
    ``n_jobs`` parallel threads, each fit single-threaded; 10,000 dSprites codes take seconds instead of minutes.

    Args:
        factors, codes: ``[N, K]`` integer classes and ``[N, D]`` codes to fit on (or to split, see below).
        factors_test, codes_test: held-out arrays; when both are omitted, ``round(N * test_fraction)`` random
            rows (permutation from ``seed``) are held out instead.
        seed: seeds the split and the classifiers.
        n_jobs: parallel fits (joblib convention: -1 all cores, 1 sequential).
        estimator: ``"gbt"`` (scikit-learn, disentanglement_lib's definition) or ``"lightgbm"`` (fast, above).
    """
    if estimator not in DCI_ESTIMATORS:
        raise ValueError(f"estimator must be one of {DCI_ESTIMATORS}, got {estimator!r}")
    if estimator == "lightgbm":
        try:
            import lightgbm  # noqa: F401
        except ImportError as err:
            raise ImportError("dci(estimator='lightgbm') needs LightGBM: pip install lightgbm") from err
    f_tr, z_tr, f_te, z_te = train_test(factors, codes, factors_test, codes_test, test_fraction, seed)
    keep = informative_factors(f_tr)
    rs = seed_int(seed)
    x_tr = np.ascontiguousarray(z_tr, dtype=np.float32)
    x_te = np.ascontiguousarray(z_te, dtype=np.float32)
    # one thread per fit, the factors in parallel threads (both libraries release the GIL): LightGBM's own OpenMP
    # threads spin-wait, and on a machine busy with other work that made a 2-thread fit slower than 1 thread
    fit = _fit_gbt if estimator == "gbt" else _fit_histogram_gbt
    tasks = [lambda k=k: fit(x_tr, f_tr[:, k], x_te, f_te[:, k], rs) for k in keep]
    cost = [np.unique(f_tr[:, k]).size for k in keep]
    fits = _run(tasks, cost, n_jobs)
    importance = np.stack([fit[0] for fit in fits], axis=1)
    acc_train = np.array([fit[1] for fit in fits])
    acc_test = np.array([fit[2] for fit in fits])
    d, c, per_code, per_factor, rho_code, rho_factor = _dci_parts(importance)
    return DCIResult(
        disentanglement=d,
        completeness=c,
        informativeness=float(acc_test.mean()),
        informativeness_train=float(acc_train.mean()),
        importance=importance,
        disentanglement_per_code=per_code,
        completeness_per_factor=per_factor,
        code_weights=rho_code,
        factor_weights=rho_factor,
        accuracy_train=acc_train,
        accuracy_test=acc_test,
        factors=keep,
    )


def _fit_svc(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, random_state: int):
    clf = LinearSVC(C=0.01, class_weight="balanced", random_state=random_state).fit(x_train[:, None], y_train)
    return float(np.mean(clf.predict(x_test[:, None]) == y_test))


def sap(
    factors: Any,
    codes: Any,
    factors_test: Any = None,
    codes_test: Any = None,
    *,
    test_fraction: float = 1 / 3,
    seed: int | np.random.Generator = 0,
    n_jobs: int | None = -1,
) -> SAPResult:
    """Separated Attribute Predictability (Kumar et al. 2018), discrete-factor form of disentanglement_lib.

    For every code dimension d and kept factor k a ``LinearSVC(C=0.01, class_weight="balanced")`` is fitted on
    the single feature ``z_d`` to predict ``v_k``; ``S_dk`` is its test accuracy. Then

        SAP = 1/K' sum_k (S_{(1)k} - S_{(2)k}),

    the mean over factors of the gap between the best and second-best dimension (second best 0 when D = 1).
    The D * K' fits run in parallel threads (``n_jobs``); liblinear's solver (scikit-learn's default choice of
    primal/dual for this shape) gets ``random_state=seed``. Train/test arguments as in :func:`dci`.
    """
    f_tr, z_tr, f_te, z_te = train_test(factors, codes, factors_test, codes_test, test_fraction, seed)
    keep = informative_factors(f_tr)
    rs = seed_int(seed)
    num_codes = z_tr.shape[1]
    pairs = [(d, k) for d in range(num_codes) for k in keep]
    tasks = [lambda d=d, k=k: _fit_svc(z_tr[:, d], f_tr[:, k], z_te[:, d], f_te[:, k], rs) for d, k in pairs]
    cost = [np.unique(f_tr[:, k]).size for _, k in pairs]
    with convergence_to_log("LinearSVC (SAP)"):
        accuracies = _run(tasks, cost, n_jobs)
    matrix = np.array(accuracies, dtype=np.float64).reshape(num_codes, keep.size)
    top = -np.sort(-matrix, axis=0)
    gaps = top[0] - (top[1] if num_codes > 1 else 0.0)
    return SAPResult(score=float(gaps.mean()), matrix=matrix, gaps=gaps, factors=keep)


def _ovr_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes that occur in ``y`` without being all of it."""
    aucs = []
    for j, c in enumerate(classes):
        positive = y == c
        if 0 < positive.sum() < y.size:
            aucs.append(roc_auc_score(positive, proba[:, j]))
    if not aucs:
        raise ValueError("explicitness: the evaluated factor has a single class seen in training; AUC is undefined")
    return float(np.mean(aucs))


def _fit_logistic(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, random_state: int):
    clf = LogisticRegression(random_state=random_state).fit(x_train, y_train)
    return (
        _ovr_auc(y_train, clf.predict_proba(x_train), clf.classes_),
        _ovr_auc(y_test, clf.predict_proba(x_test), clf.classes_),
    )


def explicitness(
    factors: Any,
    codes: Any,
    factors_test: Any = None,
    codes_test: Any = None,
    *,
    test_fraction: float = 1 / 3,
    seed: int | np.random.Generator = 0,
    n_jobs: int | None = -1,
) -> ExplicitnessResult:
    """Explicitness (Ridgeway & Zemel 2018, as disentanglement_lib): how linearly decodable each factor is.

    Codes are standardised with the training mean and standard deviation (a constant dimension is only
    centred). For each kept factor a ``LogisticRegression()`` (scikit-learn defaults: L2, C = 1, lbfgs,
    multinomial) is fitted on all codes; its explicitness is the mean over classes c of the one-vs-rest
    ROC AUC of ``p(c | z)`` on the test set (classes that are absent from, or are all of, the test labels
    are skipped). The score is the mean over factors; ``score_train`` is the same on the training set.
    A random representation scores about 0.5, a perfectly decodable one 1. Train/test arguments as in
    :func:`dci`; the per-factor fits run in parallel threads.
    """
    f_tr, z_tr, f_te, z_te = train_test(factors, codes, factors_test, codes_test, test_fraction, seed)
    keep = informative_factors(f_tr)
    rs = seed_int(seed)
    mean, std = z_tr.mean(axis=0), z_tr.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x_tr, x_te = (z_tr - mean) / std, (z_te - mean) / std
    tasks = [lambda k=k: _fit_logistic(x_tr, f_tr[:, k], x_te, f_te[:, k], rs) for k in keep]
    cost = [np.unique(f_tr[:, k]).size for k in keep]
    with convergence_to_log("LogisticRegression (explicitness)"):
        fits = _run(tasks, cost, n_jobs)
    train = np.array([fit[0] for fit in fits])
    test = np.array([fit[1] for fit in fits])
    return ExplicitnessResult(
        score=float(test.mean()), score_train=float(train.mean()), per_factor=test, per_factor_train=train, factors=keep
    )
