"""A fast slice of benchmarks/causal_coverage.py (issue 17, acceptance a): one dataset of the six-node nonlinear
SCM with confounding, fitted by NUTS. Coverage of one interval could hold by luck, so the test also asks what
luck cannot give: the interval is narrow, it excludes the confounded answer E[Y | X = x] that the data show, and
the interventional means probrep samples per parameter draw equal the closed form at the same draw within their
Monte Carlo error. The 20-dataset coverage run and its binomial check live in the benchmark."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "causal_coverage.py"


@pytest.fixture(scope="module")
def coverage():
    spec = importlib.util.spec_from_file_location("causal_coverage", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_truth_is_the_closed_form(coverage):
    check = coverage.truth_by_monte_carlo(1.0, rows=200_000, seed=3)
    assert abs(check["mean"] - check["closed_form"]) < 4 * check["standard_error"]


def test_one_dataset_is_covered_for_the_right_reason(coverage):
    x, rows, query_rows = 1.0, 500, 4000
    data = coverage.dataset(0, rows)
    fitted = coverage.model().fit(data, method="nuts", num_warmup=150, num_samples=150, seed=0)
    exact = coverage.interventional_mean(fitted.draws, x)  # E[Y | do(X = x)] at every posterior draw
    low, high = coverage.interval(exact)
    truth = coverage.interventional_mean(coverage.TRUE, x)
    assert low <= truth <= high
    assert high - low < 0.5  # the posterior sd is ~0.08 here : a wide interval would cover anything
    naive = coverage.confounded_mean(data, x)
    assert not low - 0.2 <= naive <= high + 0.2  # the confounded answer is far outside (~1.7 vs ~1.2)

    draws = 40
    per_draw = fitted.do({"X": x}).sample(query_rows, seed=1, per_draw=True, num_draws=draws)["Y"]
    chosen = fitted._chosen(draws)
    mc_se = per_draw.std(axis=1) / np.sqrt(query_rows)
    z = (per_draw.mean(axis=1) - exact[chosen]) / mc_se
    assert np.all(np.abs(z) < 4.5), z  # 40 draws: a |z| > 4.5 has probability ~3e-4 if the sampler is right


def test_the_binomial_check(coverage):
    check = coverage.binomial_check(18, 20)
    assert check["acceptance_range_95"] == [15, 20] and check["consistent"]
    assert check["range_probability"] >= 0.95
    assert not coverage.binomial_check(14, 20)["consistent"]
