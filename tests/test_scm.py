"""Structural causal models: parsing safety, sampling moments against the symbolic closed form on both
backends, interventions (also against NumPyro's handlers.do and Pyro's poutine.do), counterfactuals."""

import json
import math

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
import sympy as sp
import torch
from numpyro import handlers
from numpyro.diagnostics import effective_sample_size
from pyro import poutine

from probrep.causal import SCM, EquationError, Mechanism
from probrep.causal.gaussian import gaussian_counterfactual

LINEAR = {
    "A": "Normal(0, 1)",
    "B": "0.5*A + Normal(0, 0.8)",
    "C": "-A + 2*B + Normal(1, 0.5)",
    "D": "B - 0.3*C + Normal(0, 1)",
    "E": "0.7*D + A + Normal(0, 0.3)",
    "F": "E - C + Normal(2, 1)",
}
INTERVENTIONS = [None, {"C": 1.5}, {"C": "C + 2"}, {"B": "Normal(3, 1)"}]
N = 100_000
Z_BOUND = 4.5  # ~200 comparisons in this file: P(|z| > 4.5) = 7e-6 each, family-wise < 0.2%


def _moment_z_scores(samples: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """z-scores of sample means and covariances against the exact ones.

    Under Gaussianity Var(mean_i) = cov_ii / n and Var(cov_ij) = (cov_ii cov_jj + cov_ij^2) / n.
    Entries that are exactly constant (an intervened node) must match to float precision instead."""
    n = len(samples)
    emp_mean, emp_cov = samples.mean(0), np.cov(samples.T)
    var = np.diag(cov)
    se_mean = np.sqrt(var / n)
    se_cov = np.sqrt((np.outer(var, var) + cov**2) / n)
    const = var < 1e-12
    assert np.allclose(emp_mean[const], mean[const], atol=1e-5)
    z_mean = np.abs(emp_mean - mean)[~const] / se_mean[~const]
    keep = np.outer(~const, ~const)
    z_cov = np.abs(emp_cov - cov)[keep] / se_cov[keep]
    return np.concatenate([z_mean, z_cov])


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
@pytest.mark.parametrize("intervention", INTERVENTIONS, ids=["observational", "hard", "shift", "stochastic"])
def test_linear_gaussian_moments_match_closed_form(backend, intervention):
    scm = SCM.from_equations(LINEAR)
    if intervention is not None:
        scm = scm.do(intervention)
    draws = scm.sample(N, seed=1, backend=backend, **({"device": "cpu"} if backend == "pyro" else {}))
    assert list(draws) == scm.nodes == list("ABCDEF")
    samples = np.stack([np.asarray(v, dtype=np.float64) for v in draws.values()], 1)
    mean, cov = scm.gaussian()
    assert _moment_z_scores(samples, mean, cov).max() < Z_BOUND


def test_closed_form_by_hand_for_the_design_example():
    scm = SCM.from_equations({"Z": "Normal(0, 1)", "X": "2*Z + Normal(0, 0.5)", "Y": "X - Z + Normal(0, 1)"})
    mean, cov = scm.gaussian()
    # X = 2Z + e1, Y = Z + e1 + e2: Var X = 4.25, Var Y = 2.25, Cov(X, Y) = 2 + 0.25, Cov(Z, X) = 2, Cov(Z, Y) = 1
    np.testing.assert_allclose(cov, [[1, 2, 1], [2, 4.25, 2.25], [1, 2.25, 2.25]], atol=1e-12)
    np.testing.assert_allclose(mean, 0, atol=1e-12)
    shifted = scm.do({"X": "X + 1"}).gaussian()
    np.testing.assert_allclose(shifted[0], [0, 1, 1], atol=1e-12)
    hard = scm.do({"X": 3.0})
    assert list(hard.graph.predecessors("X")) == []  # incoming edges cut
    np.testing.assert_allclose(hard.gaussian()[1], [[1, 0, -1], [0, 0, 0], [-1, 0, 2]], atol=1e-12)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_do_program_equals_the_ppl_do_handler(backend):
    scm = SCM.from_equations(LINEAR)
    n = 50_000
    if backend == "numpyro":
        program = handlers.do(scm.to_numpyro(), data={"C": jnp.full(n, 1.5)})
        ours = handlers.seed(scm.do({"C": 1.5}).to_numpyro(), jax.random.PRNGKey(3))(n)
        theirs = handlers.seed(program, jax.random.PRNGKey(4))(n)
    else:
        program = poutine.do(scm.to_pyro(device="cpu"), data={"C": torch.full((n,), 1.5)})
        torch.manual_seed(3)
        ours = scm.do({"C": 1.5}).to_pyro(device="cpu")(n)
        theirs = program(n)
    a = np.stack([np.asarray(ours[k], dtype=float) for k in scm.nodes], 1)
    b = np.stack([np.asarray(theirs[k], dtype=float) for k in scm.nodes], 1)
    # two independent samples of the same distribution: the difference of means has variance 2 var / n
    var = a.var(0)
    live = var > 1e-12
    z = np.abs(a.mean(0) - b.mean(0))[live] / np.sqrt(2 * var[live] / n)
    assert z.max() < Z_BOUND
    np.testing.assert_allclose(b[:, ~live], a[:, ~live])
    np.testing.assert_allclose(np.cov(a.T), np.cov(b.T), atol=6 * np.sqrt(2 * np.outer(var, var).max() / n))


def test_sampling_is_seeded_and_compiled_once():
    scm = SCM.from_equations(LINEAR)
    a, b = scm.sample(1000, seed=5), scm.sample(1000, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(scm.sample(1000, seed=6)["A"], a["A"])
    assert ("numpyro_sampler", 1000) in scm._cache


def test_nonlinear_functions_and_distributions_sample_on_all_backends():
    scm = SCM.from_equations(
        {
            "G": "Gamma(2, 1)",
            "S": "Bernoulli(sigmoid(G - 2))",
            "K": "Categorical([0.2, 0.3, 0.5])",
            "X": "where(S > 0.5, sqrt(G), -log(1 + G)) + softplus(K) * Uniform(0, 1)",
            "Y": "max(X, 0) + min(abs(X), 1) + tanh(X) * Beta(2, 3) + StudentT(4) + Cauchy(0, 0.1)",
        }
    )
    for backend in ("numpyro", "pyro", "numpy"):
        d = {k: np.asarray(v, dtype=float) for k, v in scm.sample(4000, seed=0, backend=backend).items()}
        assert set(np.unique(d["S"])) <= {0.0, 1.0} and set(np.unique(d["K"])) <= {0.0, 1.0, 2.0}
        # E[S] = E[sigmoid(G - 2)] with G ~ Gamma(2, 1); by quadrature: 0.4205...
        g = np.linspace(1e-6, 60, 200_001)
        expected = np.trapezoid(g * np.exp(-g) / (1 + np.exp(-(g - 2))), g)
        assert abs(d["S"].mean() - expected) < 4.5 * math.sqrt(expected * (1 - expected) / 4000), backend
        assert abs(d["K"].mean() - 1.3) < 4.5 * math.sqrt(0.61 / 4000), backend
        np.testing.assert_allclose(d["X"][d["S"] == 1] - np.sqrt(d["G"][d["S"] == 1]) >= 0, True)


def test_counterfactual_exact_in_nonlinear_additive_noise_model():
    scm = SCM.from_equations({"Z": "Normal(0, 1)", "X": "2*Z + Normal(0, 0.5)", "Y": "exp(X) * Z + Laplace(0, 1)"})
    evidence = {"Z": 0.3, "X": 1.1, "Y": 2.0}
    out = scm.counterfactual(evidence, do={"X": -0.5}, n=5)
    # by hand: U_Y = Y - exp(X) Z; Y' = exp(-0.5) Z + U_Y
    u_y = 2.0 - math.exp(1.1) * 0.3
    for node, value in evidence.items():
        np.testing.assert_array_equal(out["factual"][node], value)
    np.testing.assert_allclose(out["counterfactual"]["Y"], math.exp(-0.5) * 0.3 + u_y, rtol=1e-12)
    np.testing.assert_array_equal(out["counterfactual"]["Z"], 0.3)
    # a shift intervention uses the node's own (abducted) natural value: X' = X + 1
    shift = scm.counterfactual(evidence, do={"X": "X + 1"}, n=3)
    np.testing.assert_allclose(shift["counterfactual"]["X"], 2.1, rtol=1e-12)
    np.testing.assert_allclose(shift["counterfactual"]["Y"], math.exp(2.1) * 0.3 + u_y, rtol=1e-12)


def test_counterfactual_by_nuts_matches_the_gaussian_closed_form():
    # Y has two noise terms and X is unobserved, so abduction is a posterior over (U_X, U_Y, U_Y_2)
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Y": "X + Normal(0, 1) + Normal(0, 2)"})
    evidence, do = {"Y": 2.0}, {"X": 1.0}
    exact = gaussian_counterfactual(scm, evidence, do)
    # by hand: U_X | Y=2 ~ N(2/6, 1 - 1/6); Y' = 1 + (Y - U_X) ~ N(3 - 1/3, 5/6)
    np.testing.assert_allclose(exact["mean"], [1.0, 3 - 1 / 3], atol=1e-12)
    np.testing.assert_allclose(exact["cov"][1, 1], 5 / 6, atol=1e-12)
    n = 4000
    out = scm.counterfactual(evidence, do=do, n=n, seed=0, num_warmup=500)
    np.testing.assert_allclose(out["factual"]["Y"], 2.0, rtol=1e-5)
    # compare every abducted noise term and the counterfactual Y with z-scores from their own ESS
    checks = [(out["noise"][name], m, math.sqrt(exact["noise_cov"][i, i]))
              for i, (name, m) in enumerate(zip(exact["noise_names"], exact["noise_mean"]))]  # fmt: skip
    checks.append((out["counterfactual"]["Y"], exact["mean"][1], math.sqrt(exact["cov"][1, 1])))
    for draws, mean, sd in checks:
        ess = float(effective_sample_size(draws[None, :]))
        assert ess > 500
        assert abs(draws.mean() - mean) < Z_BOUND * sd / math.sqrt(ess)
        assert abs(draws.var() - sd**2) < Z_BOUND * math.sqrt(2 / ess) * sd**2


def test_hostile_text_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    attacks = [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w')",
        "X.__class__.__bases__",
        "(lambda: 1)()",
        "[x for x in ()]",
        "X[0]",
        "eval('1')",
        "Normal(0, 1).sample()",
        "Normal(loc=0, scale=1)",
        "'text'",
    ]
    for text in attacks:
        with pytest.raises(EquationError) as info:
            SCM.from_equations({"X": "Normal(0, 1)", "Y": text})
        assert "'Y'" in str(info.value), text
    with pytest.raises(EquationError, match="'__import__'"):
        SCM.from_equations({"Y": f"__import__('os').system('touch {marker}')"})
    with pytest.raises(EquationError):
        SCM.from_dict({"format": 1, "nodes": [{"name": "Y", "equation": f"open('{marker}', 'w')"}]})
    assert not marker.exists()


def test_structural_errors_name_the_problem():
    with pytest.raises(EquationError, match="cycle: X -> Y -> X|cycle: Y -> X -> Y"):
        SCM.from_equations({"X": "Y + Normal(0, 1)", "Y": "X + Normal(0, 1)"})
    with pytest.raises(EquationError, match="self-loop"):
        SCM.from_equations({"X": "X + Normal(0, 1)"})
    with pytest.raises(EquationError, match="unknown name 'W'"):
        SCM.from_equations({"X": "W + Normal(0, 1)"})
    with pytest.raises(EquationError, match="duplicate node 'X'"):
        SCM.from_equations([("X", "Normal(0, 1)"), ("X", "Normal(0, 2)")])
    with pytest.raises(EquationError, match="not finite"):
        SCM.from_equations({"X": "1e999 * Normal(0, 1)"})
    with pytest.raises(EquationError, match="scale must be > 0"):
        SCM.from_equations({"X": "Normal(0, -1)"})
    with pytest.raises(EquationError, match="unknown function 'erf'"):
        SCM.from_equations({"X": "erf(Normal(0, 1))"})
    with pytest.raises(ValueError, match="unknown intervened node"):
        SCM.from_equations({"X": "Normal(0, 1)"}).do({"Q": 1.0})
    with pytest.raises(ValueError, match="not linear in X"):
        SCM.from_equations({"X": "Normal(0, 1)", "Y": "X**2 + Normal(0, 1)"}).gaussian()


def test_graph_constructor_sympy_equations_and_json_round_trip(tmp_path):
    x = sp.Symbol("X")
    g = nx.DiGraph()
    g.add_node("X", equation="Normal(0, 1)")
    g.add_node("Y", equation=3 * x + sp.Function("Normal")(0, 2))
    g.add_edge("X", "Y")
    scm = SCM(g)
    assert scm.nodes == ["X", "Y"] and list(scm.graph.edges()) == [("X", "Y")]
    np.testing.assert_allclose(scm.gaussian()[1], [[1, 3], [3, 13]], atol=1e-12)
    path = scm.save(tmp_path / "scm.json")
    again = SCM.load(path)
    assert again.equations == scm.equations
    assert json.loads(path.read_text())["format"] == 1


def test_callable_mechanisms_degrade_gracefully():
    scm = SCM.from_equations(
        {"X": "Normal(0, 1)", "Y": Mechanism(lambda x, u: torch.tanh(x) + 0.1 * u, parents=["X"], arrays="torch")}
    )
    y = scm.sample(2000, seed=0, backend="pyro", device="cpu")
    resid = (y["Y"] - torch.tanh(y["X"])) / 0.1
    assert abs(resid.mean().item()) < 4.5 / math.sqrt(2000) and abs(resid.std().item() - 1) < 0.1
    with pytest.raises(ValueError, match="callable mechanism"):
        scm.gaussian()
    with pytest.raises(ValueError, match="callable"):
        scm.to_dict()
    with pytest.raises(ValueError, match="cannot condition on node 'Y'"):
        scm.condition({"Y": [0.0]})
    with pytest.warns(DeprecationWarning, match="arrays="):  # the old name, which read like SCM.sample's backend
        assert Mechanism(torch.tanh, parents=["X"], noise=(), backend="jax").arrays == "jax"


def test_cli_sample_with_interventions_and_graph(tmp_path, capsys):
    from probrep import cli

    path = SCM.from_equations({"Z": "Normal(0, 1)", "X": "2*Z + Normal(0, 0.5)", "Y": "X - Z"}).save(
        tmp_path / "scm.json"
    )
    out = tmp_path / "rows.csv"
    args = ["scm", "sample", str(path), "--n", "200", "--backend", "numpy", "--out", str(out)]
    assert cli.main([*args, "--do", "X=1.5", "--do", "Z=Z+1"]) == 0
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert out.read_text().splitlines()[0] == "Z,X,Y"
    np.testing.assert_allclose(table[:, 1], 1.5)
    np.testing.assert_allclose(table[:, 2], 1.5 - table[:, 0], atol=1e-6)
    assert abs(table[:, 0].mean() - 1) < 4.5 / math.sqrt(200)
    assert cli.main(["scm", "graph", str(path), "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert cli.main([*args, "--do", "X"]) == 2 and "NODE=VALUE" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "nodes": [{"name": "X", "equation": "__import__(\'os\')"}]}')
    assert cli.main(["scm", "sample", str(bad), "--out", str(out)]) == 2
    assert "'__import__'" in capsys.readouterr().err


def test_a_misspelt_name_lists_the_distributions_and_suggests_the_nearest():
    with pytest.raises(EquationError, match=r"'Normall'; did you mean 'Normal'\?.*distributions: .*Laplace"):
        SCM.from_equations({"X": "Normall(0, 1)"})
    with pytest.raises(EquationError, match=r"did you mean 'sigmoid'\?"):
        SCM.from_equations({"X": "Normal(0, 1)", "Y": "sigmoide(X) + Normal(0, 1)"})
