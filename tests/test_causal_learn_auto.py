"""``mechanisms="auto"`` and the non-additive families: affine flows against closed-form counterfactuals of a
heteroscedastic mechanism, and classifiers against the exact probabilities and noise intervals of discrete nodes."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from probrep.causal import SCM
from probrep.causal.compile import compile_expr
from probrep.causal.evidence import plan


def _scale(x):  # H's noise scale: heteroscedastic, from 0.2 to 0.8
    return 0.2 + 0.6 / (1 + np.exp(-3 * x))


MIXED = {"X": "Normal(0, 1)", "L": "1 + 2*X + Normal(0, 0.5)", "N": "sin(2*X) + Normal(0, 0.3)",
         "H": "X + (0.2 + 0.6*sigmoid(3*X))*Normal(0, 1)"}  # fmt: skip
N_ROWS = 2000
N_TRAIN = N_ROWS - round(0.2 * N_ROWS)
P_EFFECTIVE = 100  # as for the MLPs of test_causal_learn_networks.py


@pytest.fixture(scope="module")
def mixed():
    truth = SCM.from_equations(MIXED)
    data = {k: np.asarray(v) for k, v in truth.sample(N_ROWS, seed=0, backend="numpy").items()}
    return truth, data, SCM.from_graph([("X", "L"), ("X", "N"), ("X", "H")], data, mechanisms="auto")


def test_auto_picks_linear_where_linear_and_a_network_where_not_and_reports_why(mixed):
    _, _, scm = mixed
    report = scm.fit_report
    assert {n: report[n]["mechanism"] for n in MIXED} == {"X": "linear", "L": "linear", "N": "mlp", "H": "flow"}
    assert set(report["L"]["scores"]) == {"linear", "mlp", "flow"} and set(report["X"]["scores"]) == {"linear"}
    # the heteroscedastic node: the flow's held-out log-likelihood beats the additive families by far
    assert report["H"]["scores"]["flow"] > max(report["H"]["scores"]["mlp"], report["H"]["scores"]["linear"]) + 0.1
    assert report["N"]["scores"]["mlp"] > report["N"]["scores"]["linear"] + 0.5
    assert scm.equations["L"].startswith("1.0") or "*X + Normal(0, " in scm.equations["L"]
    assert report["H"]["heldout_loglik_per_row"] == report["H"]["scores"]["flow"]


def test_flow_counterfactuals_match_the_closed_form(mixed):
    # truth: H = X + h(X) U, so U = (H - X) / h(X) and, had X been x', H' = x' + h(x') U (closed form). The flow
    # gives H' = loc(x') + scale(x') (H - loc(X)) / scale(X): its error is the fitted loc's and scale's errors,
    # each of relative size sqrt(p / n_train) = 0.25 (p ~ 100 effective parameters, as for the MLPs), the scale's
    # multiplied by |U|: we allow 2 x 0.25 x scale(x') x (1 + |U|) per unit
    truth, data, scm = mixed
    mechanism = scm.compiled("numpy")["H"]  # loc(X) + scale(X) U_H
    fitted_scale = lambda x: mechanism({"X": x, "U_H": 1.0}) - mechanism({"X": x, "U_H": 0.0})  # noqa: E731
    errors, additive = [], []
    for i in range(30):
        evidence = {k: float(v[i]) for k, v in data.items()}  # every node observed: abduction is exact, no NUTS
        x_new = evidence["X"] + 1.0
        u = (evidence["H"] - evidence["X"]) / _scale(evidence["X"])
        want = x_new + _scale(x_new) * u
        assert np.isclose(truth.counterfactual(evidence, do={"X": x_new}, n=1)["counterfactual"]["H"][0], want)
        got = scm.counterfactual(evidence, do={"X": x_new}, n=1)["counterfactual"]["H"][0]
        tol = 2 * np.sqrt(P_EFFECTIVE / N_TRAIN) * fitted_scale(x_new) * (1 + abs(u))
        assert abs(got - want) < tol, (i, got, want, tol)
        errors.append(got - want)
        additive.append(u * (_scale(evidence["X"]) - _scale(x_new)))  # what an additive-noise model would miss
    assert np.sqrt(np.mean(np.square(errors))) < 0.5 * np.sqrt(np.mean(np.square(additive)))


def test_classifiers_learn_the_probabilities_and_confine_the_noise_exactly():
    # D ~ Bernoulli(sigmoid(2 X)) and a three-class C whose probabilities depend on X; R a root with frequencies
    classes = "where(X + Normal(0, 1) < -0.5, 0, where(X + Normal(0, 1) < 0.5, 1, 2))"
    truth = SCM.from_equations(
        {"X": "Normal(0, 1)", "R": "Categorical([0.2, 0.5, 0.3])", "D": "Bernoulli(sigmoid(2*X))", "C": classes}
    )
    data = {k: np.asarray(v) for k, v in truth.sample(3000, seed=0, backend="numpy").items()}
    graph = nx.DiGraph([("X", "D"), ("X", "C")])
    graph.add_node("R")
    scm = SCM.from_graph(graph, data, mechanisms={"D": "classifier"})
    report = scm.fit_report
    assert report["D"]["mechanism"] == "classifier" and report["R"]["mechanism"] == "classifier"
    assert report["C"]["mechanism"] in ("classifier", "mlp_classifier") and report["C"]["classes"] == [0, 1, 2]
    assert set(report["C"]["scores"]) == {"classifier", "mlp_classifier"}
    # a root's class probabilities are the data's frequencies, exactly
    r_noise = plan(scm, ["R"])["R"].how
    bounds = [float(compile_expr(r_noise.upper, "numpy")({"R": k})) for k in (0.0, 1.0)]
    assert np.allclose(bounds, np.cumsum([np.mean(data["R"] == k) for k in (0, 1)]))
    # P(D = 1 | do(X = x)) against sigmoid(2 x): a logistic fit on 2,400 rows has slope error ~ 0.1, so
    # probability error < 0.25 x 0.1 x |x| + 0.03, plus 4 MC standard errors of the mean of 20,000 draws
    for x in (-1.0, 0.0, 1.0):
        d = scm.do({"X": x}).sample(20_000, seed=1, backend="numpy")["D"]
        p = 1 / (1 + np.exp(-2 * x))
        assert abs(d.mean() - p) < 0.025 * abs(x) + 0.03 + 4 * np.sqrt(p * (1 - p) / len(d))
    # observing D = 1 at X = x confines U_D to [P(D = 0 | x), 1) (abduction and conditioning use this interval)
    how = plan(scm, ["X", "D"])["D"].how
    low, high = (float(compile_expr(e, "numpy")({"X": 0.5, "D": 1.0})) for e in (how.lower, how.upper))
    assert abs(low - 1 / (1 + np.exp(1.0))) < 0.03 and high == 1.0
