"""Mechanisms learned from a graph and data, against the SCM that generated the data (exact answers: a
linear-Gaussian truth, whose interventional means and counterfactuals have closed forms)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from probrep.causal import SCM

TRUTH = {"Z": "Normal(1, 1)", "X": "2*Z + Normal(0, 0.5)", "Y": "X - 3*Z + 0.5 + Normal(0, 1)"}
EDGES = [("Z", "X"), ("Z", "Y"), ("X", "Y")]


@pytest.fixture(scope="module")
def learned():
    truth = SCM.from_equations(TRUTH)
    data = {k: np.asarray(v) for k, v in truth.sample(5000, seed=0, backend="numpy").items()}
    return truth, data, SCM.from_graph(EDGES, data)


def test_interventional_means_within_monte_carlo_error_of_the_truth(learned):
    _, _, scm = learned
    # E[Y | do(X = x)] = x - 3 E[Z] + 0.5 = x - 2.5; the fitted coefficients have sd ~ 1/sqrt(5000) x the scales
    for x in (-1.0, 0.0, 2.0):
        rows = scm.do({"X": x}).sample(40_000, seed=1, backend="numpy")["Y"]
        mc = rows.std() / np.sqrt(len(rows))
        fit = 4 * np.sqrt((1 + 9 + 1 + x**2) / 5000)  # coefficient error of the fitted mechanisms, generously
        assert abs(rows.mean() - (x - 2.5)) < 4 * mc + fit


def test_counterfactuals_per_unit_within_the_fitted_noise_scale(learned):
    # exact abduction of U_Y = Y - f(X, Z) under the fitted f: per unit, the counterfactual differs from the truth
    # by the error of the fitted coefficients times the unit's values, far below the noise scale (1)
    truth, data, scm = learned
    for i in range(5):
        evidence = {k: float(v[i]) for k, v in data.items()}
        got = scm.counterfactual(evidence, do={"X": 0.0}, n=2)["counterfactual"]["Y"][0]
        want = truth.counterfactual(evidence, do={"X": 0.0}, n=2)["counterfactual"]["Y"][0]
        assert abs(got - want) < 0.1 * scm.fit_report["Y"]["sigma"] * (1 + abs(evidence["X"]) + abs(evidence["Z"]))


def test_the_report_and_the_file(learned, tmp_path):
    _, _, scm = learned
    assert scm.fit_report["X"]["parents"] == ["Z"] and abs(scm.fit_report["X"]["sigma"] - 0.5) < 0.02
    assert scm.fit_report["X"]["r2"] > 0.9 and np.isfinite(scm.fit_report["Y"]["heldout_loglik_per_row"])
    again = SCM.load(scm.save(tmp_path / "learned.json"))  # plain JSON: no pickle
    assert again.equations == scm.equations
    assert SCM.from_graph(nx.DiGraph(EDGES), learned[1]).equations == scm.equations  # DiGraph or edge list


def test_bad_input_names_the_problem(learned):
    import pandas as pd

    _, data, _ = learned
    with pytest.raises(ValueError, match="cycle"):
        SCM.from_graph([("X", "Y"), ("Y", "X")], data)
    with pytest.raises(ValueError, match=r"nodes \['W'\] are missing from the data"):
        SCM.from_graph(EDGES + [("W", "Y")], data)
    with pytest.raises(ValueError, match=r"columns \['Q'\] name no node"):
        SCM.from_graph(EDGES, pd.DataFrame({**data, "Q": data["X"]}))
    for bad_value, shown in ((np.nan, "nan"), (np.inf, "inf")):
        bad = {**data, "Y": data["Y"].copy()}
        bad["Y"][3] = bad_value
        with pytest.raises(ValueError, match=f"column 'Y' has a non-finite value \\({shown}\\) at row 3"):
            SCM.from_graph(EDGES, bad)
    with pytest.raises(ValueError, match="mechanism 'spline' for node 'Y' is not one of"):
        SCM.from_graph(EDGES, data, mechanisms={"Y": "spline"})
    with pytest.raises(ValueError, match="mechanism 'classifier' for node 'Y': its values are not"):
        SCM.from_graph(EDGES, data, mechanisms={"Y": "classifier"})
    with pytest.raises(ValueError, match=r"mechanisms given for \['Q'\]"):
        SCM.from_graph(EDGES, data, mechanisms={"Q": "mlp"})
    with pytest.raises(ValueError, match="holdout must be a fraction"):
        SCM.from_graph(EDGES, data, holdout=1.0)
    with pytest.raises(TypeError, match=r"unknown training options \['epochs'\]"):
        SCM.from_graph(EDGES, data, mechanisms="mlp", epochs=3)
    # a parameter without a prior: the equations use a name that is neither a node nor a declared parameter
    with pytest.raises(ValueError, match="equation of node 'X' uses unknown name 'a'"):
        SCM.from_equations({"Z": "Normal(0, 1)", "X": "a*Z + b + Normal(0, 1)"}, parameters={"b": "Normal(0, 1)"})


def test_network_fits_are_seeded_locally_and_leave_global_random_state_alone(learned):
    import torch

    _, data, _ = learned
    small = {k: v[:300] for k, v in data.items()}
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    fits = [SCM.from_graph(EDGES, small, mechanisms="mlp", seed=s, max_epochs=3, hidden=(4,)) for s in (0, 0, 1)]
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    described = [f.to_dict() for f in fits]
    assert described[0] == described[1] and described[0]["functions"] != described[2]["functions"]
    assert fits[0].fit_report["Y"]["epochs"] == 3 and fits[0].fit_report["Y"]["mechanism"] == "mlp"
