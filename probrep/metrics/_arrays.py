"""Shared pieces of the disentanglement metrics: input checks, histogram discretisation, discrete entropy and
mutual information, and the train/test split convention.

Conventions used by every array metric in :mod:`probrep.metrics`:

- ``factors`` is ``[N, K]`` (ground-truth factor classes, one column per factor) and ``codes`` is ``[N, D]``
  (one column per code dimension); numpy arrays, torch tensors (``.detach().cpu().numpy()``) or nested lists.
- A factor that takes a single value on the data a metric is fitted on has entropy 0 and carries nothing to
  predict; it is *excluded* (dSprites' colour is the usual case). Result objects list the kept columns in
  ``factors``. If no factor is left, a ``ValueError`` is raised.
- Mutual information and entropies are plug-in estimates in nats.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from probrep._checks import integer, probability
from probrep._checks import seed as check_seed

logger = logging.getLogger("probrep.metrics")


def to_numpy(values: Any, name: str) -> np.ndarray:
    """``values`` (numpy array, torch tensor or nested lists) as a numeric numpy array; ``TypeError`` otherwise."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().numpy()
    if isinstance(values, (str, bytes, dict, set)) or values is None:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(values).__name__}")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, could not convert {type(values).__name__}: {exc}") from exc
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    return array


def check_matrix(values: Any, name: str, columns: str, min_rows: int = 2) -> np.ndarray:
    """A finite 2-D array ``[N, columns]`` with ``N >= min_rows``; the error names ``name`` and the shape."""
    array = to_numpy(values, name)
    if array.ndim != 2:
        hint = " (use .reshape(-1, 1) for a single column)" if array.ndim == 1 else ""
        raise ValueError(f"{name} must have shape [N, {columns}], got shape {array.shape}{hint}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column ({columns}), got shape {array.shape}")
    if array.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]})")
    return array


def check_factors(
    values: Any,
    name: str = "factors",
    classes: bool = True,
    min_rows: int = 2,
    hint: str = "mig and modularity take discretize_factors=True",
) -> np.ndarray:
    """Factors ``[N, K]``; with ``classes=True`` they must be integer-valued (int dtype, or floats like 3.0).
    ``hint`` names the metric's own way to discretise continuous factors, for the error."""
    array = check_matrix(values, name, "K factors", min_rows)
    if classes and np.issubdtype(array.dtype, np.floating):
        if not np.all(array == np.round(array)):
            raise ValueError(
                f"{name} must hold integer factor classes, got non-integer values; for continuous factors "
                f"discretise them first ({hint})"
            )
        array = array.astype(np.int64)
    return array


def check_codes(values: Any, name: str = "codes", min_rows: int = 2) -> np.ndarray:
    """Codes ``[N, D]`` as float64."""
    return check_matrix(values, name, "D code dimensions", min_rows).astype(np.float64, copy=False)


def check_same_rows(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{a_name} and {b_name} must have the same number of rows N, got {a.shape[0]} and {b.shape[0]}"
        )


def discretize(values: np.ndarray, num_bins: int) -> np.ndarray:
    """Histogram discretisation per column, as disentanglement_lib: ``np.digitize(x, edges[:-1]) - 1``.

    ``edges = np.histogram_bin_edges(x, num_bins)`` splits ``[min x, max x]`` into ``num_bins`` equal bins
    (a constant column gets ``[x - 0.5, x + 0.5]``); the result is the bin index in ``0 .. num_bins - 1``.
    """
    num_bins = integer(num_bins, "num_bins", 2)
    out = np.empty(values.shape, dtype=np.int64)
    for j in range(values.shape[1]):
        edges = np.histogram_bin_edges(values[:, j], bins=num_bins)
        out[:, j] = np.digitize(values[:, j], edges[:-1]) - 1
    return out


def class_labels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column relabelled to ``0 .. C_k - 1`` (by sorted distinct value) -> (labels [N, K], sizes C [K])."""
    labels = np.empty(values.shape, dtype=np.int64)
    sizes = np.empty(values.shape[1], dtype=np.int64)
    for k in range(values.shape[1]):
        uniq, inverse = np.unique(values[:, k], return_inverse=True)
        labels[:, k] = inverse.reshape(-1)
        sizes[k] = uniq.size
    return labels, sizes


def entropies(labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Plug-in entropy in nats of each column of ``labels``: ``H = -sum_c p_c log p_c``, ``p_c = n_c / N``."""
    n = labels.shape[0]
    out = np.empty(labels.shape[1])
    for k in range(labels.shape[1]):
        counts = np.bincount(labels[:, k], minlength=int(sizes[k]))
        counts = counts[counts > 0]
        out[k] = float(np.sum(counts * (np.log(n) - np.log(counts))) / n)
    return out


def mutual_info_matrix(bins: np.ndarray, num_bins: int, labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Plug-in mutual information (nats) between every discrete code column and every factor -> ``[D, K]``.

    ``I(z_d; v_k) = sum_{b,c} p_bc log(p_bc / (p_b p_c))`` from the contingency table ``n_bc`` of bin ``b`` of
    code ``d`` and class ``c`` of factor ``k``. All D tables of one factor come from one ``np.bincount`` over
    the flat index ``(d * B + b) * C + c``. Values are clipped at 0 (float rounding of an exact 0), and a code
    that occupies a single bin (a constant) has exactly 0.
    """
    n, num_codes = bins.shape
    out = np.empty((num_codes, labels.shape[1]))
    log_n = np.log(n)
    code_counts = np.stack([np.bincount(bins[:, d], minlength=num_bins) for d in range(num_codes)])  # [D, B]
    offsets = (np.arange(num_codes, dtype=np.int64) * num_bins)[None, :]
    for k in range(labels.shape[1]):
        c = int(sizes[k])
        flat = ((offsets + bins) * c + labels[:, k, None]).reshape(-1)
        joint = np.bincount(flat, minlength=num_codes * num_bins * c).reshape(num_codes, num_bins, c)
        class_counts = np.bincount(labels[:, k], minlength=c)  # [C]
        nz = joint > 0
        d_idx, b_idx, c_idx = np.nonzero(nz)
        n_bc = joint[nz].astype(np.float64)
        terms = n_bc * (np.log(n_bc) + log_n - np.log(code_counts[d_idx, b_idx]) - np.log(class_counts[c_idx]))
        out[:, k] = np.bincount(d_idx, weights=terms, minlength=num_codes) / n
    # a code that falls in a single bin has entropy 0, so its mutual information with anything is exactly 0 (the
    # sum above leaves rounding noise of ~1e-16 there, which a "> 0" test would read as information)
    out[(code_counts > 0).sum(axis=1) <= 1] = 0.0
    return np.clip(out, 0.0, None)


def informative_factors(labels_or_values: np.ndarray, name: str = "factors") -> np.ndarray:
    """Indices of the factors with more than one distinct value (entropy > 0); ``ValueError`` if none."""
    keep = np.flatnonzero(np.ptp(labels_or_values, axis=0) > 0)
    if keep.size == 0:
        raise ValueError(f"every column of {name} is constant; a metric needs at least one factor that varies")
    return keep


def train_test(
    factors: Any,
    codes: Any,
    factors_test: Any,
    codes_test: Any,
    test_fraction: float,
    seed: int | np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(factors_train, codes_train, factors_test, codes_test)``.

    With explicit test arrays they are used as given; with neither, the rows of ``factors`` / ``codes`` are
    split by a seeded random permutation, ``round(N * test_fraction)`` of them for testing.
    """
    f = check_factors(factors, "factors")
    z = check_codes(codes, "codes")
    check_same_rows(f, "factors", z, "codes")
    if (factors_test is None) != (codes_test is None):
        missing = "codes_test" if codes_test is None else "factors_test"
        raise ValueError(
            f"pass both factors_test and codes_test, or neither (to split factors/codes); {missing} is missing"
        )
    if factors_test is not None:
        ft = check_factors(factors_test, "factors_test", min_rows=1)
        zt = check_codes(codes_test, "codes_test", min_rows=1)
        check_same_rows(ft, "factors_test", zt, "codes_test")
        if ft.shape[1] != f.shape[1]:
            raise ValueError(f"factors_test has {ft.shape[1]} factors but factors has {f.shape[1]}")
        if zt.shape[1] != z.shape[1]:
            raise ValueError(f"codes_test has {zt.shape[1]} code dimensions but codes has {z.shape[1]}")
        return f, z, ft, zt
    test_fraction = probability(test_fraction, "test_fraction")
    n = f.shape[0]
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n - n_test < 2:
        raise ValueError(f"test_fraction={test_fraction} of N={n} rows leaves no usable train or test set")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    perm = rng.permutation(n)
    test, train = perm[:n_test], perm[n_test:]
    return f[train], z[train], f[test], z[test]


def seed_int(seed: int | np.random.Generator) -> int:
    """An int ``random_state`` for scikit-learn from an int seed or a numpy Generator (drawn once)."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**31 - 1))
    return check_seed(seed)


@contextmanager
def convergence_to_log(what: str) -> Iterator[None]:
    """Turn scikit-learn ConvergenceWarnings into one log line (set once around all fits: the warnings
    module's state is process-wide, so it must not be changed from the worker threads)."""
    from sklearn.exceptions import ConvergenceWarning  # here, so that IRS and the checks load without sklearn

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        yield
    count = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if count:
        logger.warning("%d %s fit(s) hit max_iter before converging (default settings kept)", count, what)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
