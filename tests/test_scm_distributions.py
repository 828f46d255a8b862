"""The distribution registry of the SCM language: each family's numpy sampler, Pyro and NumPyro distributions
agree (same parameterisation), and constraints name the offending parameter."""

import math

import numpy as np
import pytest
import sympy as sp
import torch

from probrep.causal import SCM, EquationError
from probrep.causal.distributions import FAMILIES, Noise

EXAMPLES = {
    "Normal": (1.0, 2.0),
    "Uniform": (-1.0, 3.0),
    "Laplace": (0.5, 1.5),
    "Exponential": (2.0,),
    "HalfNormal": (1.5,),
    "Gamma": (3.0, 2.0),
    "Beta": (2.0, 5.0),
    "StudentT": (5.0, 1.0, 2.0),
    "Cauchy": (0.0, 1.0),
    "Bernoulli": (0.3,),
    "Categorical": ((0.2, 0.3, 0.5),),
}
N = 40_000


def test_every_family_has_an_example():
    assert set(EXAMPLES) == set(FAMILIES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_numpy_draws_match_the_pyro_and_numpyro_distributions(name):
    noise = Noise("U", name, EXAMPLES[name])
    draws = noise.draw((N,), np.random.default_rng(0))
    pyro_dist, numpyro_dist = noise.distribution("pyro", "cpu"), noise.distribution("numpyro")
    values = torch.as_tensor(draws[:200], dtype=torch.long if name == "Categorical" else torch.get_default_dtype())
    # both libraries give the same density at the numpy draws: the parameterisations agree
    np.testing.assert_allclose(
        pyro_dist.log_prob(values).numpy(), np.asarray(numpyro_dist.log_prob(values.numpy())), rtol=1e-5, atol=1e-5
    )
    if name == "Cauchy":  # no mean: compare the median and quartiles instead
        np.testing.assert_allclose(np.quantile(draws, [0.25, 0.5, 0.75]), [-1.0, 0.0, 1.0], atol=0.05)
        return
    if name == "Categorical":  # torch gives it no mean (classes are labels); as numbers 0, 1, 2:
        k, probs = np.arange(3), np.asarray(EXAMPLES[name][0])
        mean, var = float(k @ probs), float(k**2 @ probs - (k @ probs) ** 2)
    else:
        mean, var = float(pyro_dist.mean), float(pyro_dist.variance)
    assert abs(draws.mean() - mean) < 4.5 * math.sqrt(var / N), (name, draws.mean(), mean)


@pytest.mark.parametrize(
    "text, match",
    [
        ("Normal(0, -1)", "Normal: scale must be > 0"),
        ("StudentT(-1)", "StudentT: df must be > 0"),
        ("Gamma(1, 0)", "Gamma: rate must be > 0"),
        ("Uniform(1, 0)", "Uniform: low must be < high"),
        ("Bernoulli(1.5)", "Bernoulli: probs must be in"),
        ("Categorical([0.5, 0.6])", "Categorical: probs must be >= 0 and sum to 1"),
        ("Categorical([X, 0.5])", "must be constants"),
        ("Gamma(X, 1)", "the parameters of Gamma must be constants"),
        ("StudentT(X)", "StudentT's df must be a constant"),
        ("StudentT(3, 1)", r"StudentT takes 3 argument\(s\) \(df, loc, scale\), got 2"),
    ],
)
def test_bad_parameters_name_the_parameter(text, match):
    with pytest.raises(EquationError, match=match):
        SCM.from_equations({"X": "Normal(0, 1)", "Y": text})


def test_parent_dependent_parameters_go_through_a_standard_noise():
    scm = SCM.from_equations({"X": "Normal(0, 1)", "Y": "Exponential(exp(X))", "Z": "StudentT(3, X, 2)"})
    assert scm.noises["U_Y"].describe() == "Exponential(1)"
    assert scm.noises["U_Z"].describe() == "StudentT(3, 0, 1)"
    x, u_y, u_z = (sp.Symbol(name, real=True) for name in ("X", "U_Y", "U_Z"))
    assert sp.simplify(scm.node("Y").expr - u_y * sp.exp(-x)) == 0
    assert sp.simplify(scm.node("Z").expr - (x + 2 * u_z)) == 0
