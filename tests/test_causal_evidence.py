"""Evidence is never ignored: on deterministic nodes, on additive noise around any parent function, on discrete
(Bernoulli) outcomes. Each answer against an exact one (closed form or 1-D quadrature); tolerances for NUTS are
four Monte Carlo standard errors with a conservative effective sample size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import expit

from probrep.causal import SCM
from probrep.causal.evidence import EvidenceError


def posterior_mean(weight, lo=-9.0, hi=9.0):
    """E[X | evidence] for X ~ N(0, 1) and a likelihood ``weight(x)``, with its sd, by quadrature."""
    z = integrate.quad(lambda x: stats.norm.pdf(x) * weight(x), lo, hi, points=[0.0, 1.0], limit=200)[0]
    m1 = integrate.quad(lambda x: x * stats.norm.pdf(x) * weight(x), lo, hi, points=[0.0, 1.0], limit=200)[0] / z
    m2 = integrate.quad(lambda x: x * x * stats.norm.pdf(x) * weight(x), lo, hi, points=[0.0, 1.0], limit=200)[0] / z
    return m1, np.sqrt(m2 - m1 * m1)


def mc_tolerance(sd, n_eff=400):
    return 4 * sd / np.sqrt(n_eff)


def test_evidence_on_a_deterministic_node_pins_its_parent_exactly():
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Y": "2*X"})
    out = scm.counterfactual({"Y": 2.0}, do={"X": 0.0}, n=50)
    np.testing.assert_array_equal(out["factual"]["X"], 1.0)  # exact abduction: U_X = Y / 2, every draw
    np.testing.assert_array_equal(out["factual"]["Y"], 2.0)
    np.testing.assert_array_equal(out["counterfactual"]["Y"], 0.0)


def test_evidence_on_a_deterministic_node_constrains_a_chain():
    # Z = X + U_Z, Y = 2 Z: Y = 2 pins Z = 1, so X | Z = 1 ~ N(1/2, 1/2); do(X = 0) gives Z' = U_Z = 1 - X
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Z": "X + Normal(0, 1)", "Y": "2*Z"})
    out = scm.counterfactual({"Y": 2.0}, do={"X": 0.0}, n=2000, num_warmup=500)
    x = out["factual"]["X"]
    np.testing.assert_allclose(out["factual"]["Z"], 1.0, atol=1e-6)  # float32 draws
    assert abs(x.mean() - 0.5) < mc_tolerance(np.sqrt(0.5))
    assert abs(x.std() - np.sqrt(0.5)) < 0.1
    np.testing.assert_allclose(out["counterfactual"]["Z"], 1.0 - x, atol=1e-6)


def test_implied_deterministic_evidence_is_checked():
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Y": "2*X"})
    out = scm.counterfactual({"X": 1.5, "Y": 3.0}, do={"X": 0.0}, n=5)
    np.testing.assert_array_equal(out["counterfactual"]["Y"], 0.0)
    with pytest.raises(ValueError, match="impossible"):
        scm.counterfactual({"X": 1.5, "Y": 2.0}, do={"X": 0.0}, n=5)
    with pytest.raises(EvidenceError, match="already determined"):
        scm.condition({"X": [1.5], "Y": [3.0]})


@pytest.mark.parametrize(
    "mechanism, f",
    [("where(X > 1, 1, 0) + Normal(0, 0.2)", lambda x: np.where(x > 1, 1.0, 0.0)),
     ("max(X, 0) + Normal(0, 0.2)", lambda x: np.maximum(x, 0.0))],
)  # fmt: skip
def test_additive_noise_around_any_parent_function_is_abducted_exactly(mechanism, f):
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Y": mechanism})
    out = scm.counterfactual({"X": 2.0, "Y": 0.9}, do={"X": -1.0}, n=10)
    u = 0.9 - f(2.0)  # U_Y = Y - f(X), whatever f is
    np.testing.assert_allclose(out["noise"]["U_Y"], u, atol=1e-12)
    np.testing.assert_allclose(out["counterfactual"]["Y"], f(-1.0) + u, atol=1e-12)


def test_additive_noise_around_a_threshold_conditions_its_parent():
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Y": "where(X > 1, 1, 0) + Normal(0, 0.2)"})
    mean, sd = posterior_mean(lambda x: stats.norm.pdf(0.9 - (x > 1), scale=0.2))
    out = scm.counterfactual({"Y": 0.9}, do={"X": 0.0}, n=2000, num_warmup=1000)
    assert abs(out["factual"]["X"].mean() - mean) < mc_tolerance(sd)


def test_a_bernoulli_outcome_conditions_its_parent_and_its_noise():
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Y": "Bernoulli(sigmoid(X))"})
    mean, sd = posterior_mean(expit)
    out = scm.counterfactual({"Y": 1.0}, do={"X": 0.0}, n=2000, num_warmup=1000)
    x = out["factual"]["X"]
    assert abs(x.mean() - mean) < mc_tolerance(sd)
    # the noise given Y = 1 is uniform below sigmoid(X): every draw consistent with the evidence
    assert np.all(out["noise"]["U_Y"] < expit(x))
    # counterfactual Y' = 1[U < 1/2]: P(Y' = 1 | Y = 1) = E[min(1/2, s(X)) / s(X) | Y = 1], by quadrature
    z = integrate.quad(lambda v: stats.norm.pdf(v) * expit(v), -9, 9)[0]
    p = integrate.quad(lambda v: stats.norm.pdf(v) * min(0.5, expit(v)), -9, 9)[0] / z
    y_cf = out["counterfactual"]["Y"]
    assert set(np.unique(y_cf)) <= {0.0, 1.0}
    assert abs(y_cf.mean() - p) < mc_tolerance(np.sqrt(p * (1 - p)))


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_bernoulli_likelihood_in_the_conditioned_program(backend):
    # the factor of an observed Bernoulli row is log P(Y = y | X): log s(x) for y = 1, log(1 - s(x)) for y = 0
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Y": "Bernoulli(sigmoid(0.5 + 2*X))"})
    program = scm.condition({"Y": [1.0, 0.0, 1.0]}, backend=backend)
    u_x = np.array([0.3, -1.2, 2.0])
    want = np.where([1, 0, 1], np.log(expit(0.5 + 2 * u_x)), np.log(1 - expit(0.5 + 2 * u_x)))
    if backend == "numpyro":
        import jax.numpy as jnp
        from numpyro import handlers

        fixed = {"U_X": jnp.asarray(u_x), "U_Y_within": jnp.full(3, 0.25)}
        trace = handlers.trace(handlers.substitute(handlers.seed(program, 0), data=fixed)).get_trace()
        factor = np.asarray(trace["Y_given_parents"]["fn"].log_prob(0.0))
        u_y = np.asarray(trace["U_Y"]["value"])
    else:
        import torch
        from pyro import poutine

        fixed = {"U_X": torch.tensor(u_x, dtype=torch.float32), "U_Y_within": torch.full((3,), 0.25)}
        trace = poutine.trace(poutine.condition(program, data=fixed)).get_trace()
        factor = trace.nodes["Y_given_parents"]["fn"].log_prob(torch.zeros(3)).numpy()
        u_y = trace.nodes["U_Y"]["value"].numpy()
    np.testing.assert_allclose(factor, want, rtol=1e-5)
    s = expit(0.5 + 2 * u_x)
    np.testing.assert_allclose(u_y, np.where([1, 0, 1], 0.25 * s, s + 0.25 * (1 - s)), rtol=1e-5)


def test_evidence_that_cannot_be_used_is_refused_by_name():
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Y": "where(X + Normal(0, 1) > 0, 1, 0)"})
    with pytest.raises(EvidenceError, match="'Y'"):
        scm.condition({"Y": [1.0]})
