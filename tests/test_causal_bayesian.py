"""SCMs with unknown parameters, fitted to data, against the exact posterior of a conjugate model: Bayesian
linear regression with known noise, ``X = a Z + b + N(0, 1)``, priors ``a, b ~ N(0, 10^2)``. The posterior of
(a, b) is Gaussian with precision ``A^T A + I / 100`` and mean ``cov A^T x`` (A = [z, 1]). Tolerances for draws
are four Monte Carlo standard errors with a conservative effective sample size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from probrep.causal import SCM
from probrep.causal.parse import EquationError

PRIORS = {"a": "Normal(0, 10)", "b": "Normal(0, 10)"}


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    z = rng.normal(size=200)
    x = 2.0 * z + 1.0 + rng.normal(size=200)
    design = np.stack([z, np.ones_like(z)], 1)
    cov = np.linalg.inv(design.T @ design + np.eye(2) / 100)
    scm = SCM.from_equations({"Z": "Normal(0, 1)", "X": "a*Z + b + Normal(0, 1)"}, parameters=PRIORS)
    fitted = scm.fit({"Z": z, "X": x}, method="nuts", num_samples=800, num_warmup=400, seed=1)
    return scm, z, x, cov @ design.T @ x, np.sqrt(np.diag(cov)), fitted


def test_nuts_recovers_the_exact_posterior(regression):
    _, _, _, mean, sd, fitted = regression
    for i, name in enumerate("ab"):
        draws = fitted.draws[name]
        assert abs(draws.mean() - mean[i]) < 4 * sd[i] / np.sqrt(200)
        assert abs(draws.std() / sd[i] - 1) < 0.2
    assert "posterior" in fitted.inference_data.groups()


def test_the_effect_carries_the_parameters_uncertainty(regression):
    # X's response to Z is a per draw, exactly (the same noise in both arms): the interval is a's posterior's
    _, _, _, mean, sd, fitted = regression
    effect = fitted.effect("Z", "X", values=(0.0, 1.0), n=50, num_draws=400)
    chosen = fitted._chosen(400)
    np.testing.assert_allclose(effect.per_draw, fitted.draws["a"][chosen], rtol=1e-9)
    assert abs(effect.estimate - mean[0]) < 4 * sd[0] / np.sqrt(200)
    exact = stats.norm(mean[0], sd[0]).ppf([0.05, 0.95])
    assert np.all(np.abs(np.array(effect.interval) - exact) < 0.25 * sd[0] + 4 * sd[0] / np.sqrt(200))


def test_queries_integrate_over_the_draws(regression):
    _, _, _, mean, sd, fitted = regression
    # counterfactual: given Z = 1, X = 3.5, setting Z = 0 gives X' = 3.5 - a for each draw
    out = fitted.counterfactual({"Z": 1.0, "X": 3.5}, do={"Z": 0.0}, n=400, num_draws=200)
    assert abs(out["counterfactual"]["X"].mean() - (3.5 - mean[0])) < 4 * sd[0] / np.sqrt(100)
    per_draw = fitted.do({"Z": 1.0}).sample(300, per_draw=True, num_draws=50)
    assert per_draw["X"].shape == (50, 300)
    assert abs(per_draw["X"].mean() - mean.sum()) < 4 * np.sqrt(1 / 15000 + sd.sum() ** 2 / 50)


def test_map_and_svi(regression):
    scm, z, x, mean, sd, _ = regression
    point = scm.fit({"Z": z, "X": x}, method="map", steps=3000, lr=0.05)
    assert point.num_draws == 1
    np.testing.assert_allclose([point.draws["a"][0], point.draws["b"][0]], mean, atol=0.01)  # Gaussian: mode = mean
    approx = scm.fit({"Z": z, "X": x}, method="svi", steps=3000, lr=0.02, num_samples=500)
    for i, name in enumerate("ab"):
        assert abs(approx.draws[name].mean() - mean[i]) < 0.5 * sd[i]


def test_parameters_are_part_of_the_model_description():
    scm = SCM.from_equations({"Z": "Normal(0, 1)", "X": "a*Z + Normal(0, s)"},
                             parameters={"a": "Normal(0, 10)", "s": "HalfNormal(5)"})  # fmt: skip
    again = SCM.from_dict(scm.to_dict())
    assert again.parameters == scm.parameters and again.nodes == ["Z", "X"]
    fixed = scm.with_parameters({"a": 2.0, "s": 0.5})
    assert fixed.parameters == {} and SCM.from_dict(fixed.to_dict()).equations == fixed.equations
    for backend in ("numpy", "numpyro", "pyro"):  # unfitted: the parameters come from the prior, once per call
        assert set(scm.sample(10, seed=0, backend=backend)) == {"Z", "X"}


def test_bad_input_names_the_problem(regression):
    scm, z, x, *_ = regression
    with pytest.raises(ValueError, match=r"columns \['W'\] name no node"):
        scm.fit({"Z": z, "W": x})
    bad = x.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match="column 'X' has a non-finite value .* at row 7"):
        scm.fit({"Z": z, "X": bad})
    with pytest.raises(EquationError, match="unknown name 'c'"):
        SCM.from_equations({"X": "c*2 + Normal(0, 1)"}, parameters={"a": "Normal(0, 1)"})
    with pytest.raises(EquationError, match="parameter 'a' is also a node"):
        SCM.from_equations({"a": "Normal(0, 1)"}, parameters={"a": "Normal(0, 1)"})
    with pytest.raises(EquationError, match="one continuous distribution"):
        SCM.from_equations({"X": "a + Normal(0, 1)"}, parameters={"a": "Bernoulli(0.5)"})
    with pytest.raises(ValueError, match="no parameters to fit"):
        SCM.from_equations({"X": "Normal(0, 1)"}).fit({"X": x})
    with pytest.raises(ValueError, match="needs the parameters"):
        scm.counterfactual({"X": 1.0}, do={"Z": 0.0})


def test_a_dataframe_is_data():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    z = rng.normal(size=100)
    frame = pd.DataFrame({"Z": z, "X": 0.5 * z + rng.normal(size=100)})
    scm = SCM.from_equations({"Z": "Normal(0, 1)", "X": "a*Z + Normal(0, 1)"}, parameters={"a": "Normal(0, 10)"})
    assert scm.fit(frame, method="map", steps=500, lr=0.05).num_draws == 1


def _logistic_map(x, t, prior_sd, iterations=30):
    """Newton's method for the posterior mode of t ~ Bernoulli(sigmoid(a x + b)), a, b ~ Normal(0, prior_sd)."""
    design = np.column_stack([x, np.ones_like(x)])
    beta = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-design @ beta))
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + np.eye(2) / prior_sd**2
        beta = beta + np.linalg.solve(hessian, design.T @ (t - p) - beta / prior_sd**2)
    return beta


def test_a_binary_outcome_fits_its_logistic_maximum_with_extreme_logits():
    # covariates on a raw scale (as earnings in thousands are): at NumPyro's initial values the logits reach
    # +-100, where 1 - sigmoid(z) is 0 in float32; the likelihood must stay finite and the fit must find the MLE
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 25.0, 600)
    t = (rng.uniform(size=600) < 1.0 / (1.0 + np.exp(-(0.2 * x - 1.0)))).astype(float)
    scm = SCM.from_equations(
        {"X": "Normal(0, 25)", "T": "Bernoulli(sigmoid(a*X + b))"},
        parameters={"a": "Normal(0, 10)", "b": "Normal(0, 10)"},
    )
    fitted = scm.fit({"X": x, "T": t}, method="map", steps=3000, lr=0.02, seed=0)
    a, b = _logistic_map(x, t, prior_sd=10.0)
    assert fitted.draws["a"][0] == pytest.approx(a, abs=2e-3)
    assert fitted.draws["b"][0] == pytest.approx(b, abs=2e-2)
    # the fit's program integrates the outcome's position in its interval out: no per-row latent site
    from numpyro import handlers

    from probrep.causal.programs import make_program

    program = make_program(scm, "numpyro", observed={"X": x, "T": t}, per_row=False)
    trace = handlers.trace(handlers.seed(program, 0)).get_trace()
    assert not [k for k in trace if k.endswith("_within")]
    latent = {k for k, site in trace.items() if site["type"] == "sample" and not site["is_observed"]}
    assert latent == {"U_a", "U_b"}  # the parameters' own noise only
