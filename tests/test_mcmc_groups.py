"""``mcmc.sample`` returns the groups ``az.from_numpyro`` gives: ``log_likelihood``, ``posterior_predictive``,
``prior`` and ``prior_predictive``, checked against closed forms of the conjugate normal model

    mu ~ N(0, 1),  y_i | mu ~ N(mu, 1)  (n observations):

the posterior of mu is N(sum y / (n + 1), 1 / (n + 1)), and each replicated y_i has posterior predictive mean
sum y / (n + 1) and variance 1 + 1 / (n + 1). Monte Carlo checks allow 4 standard errors (ESS-based for
correlated MCMC draws, sd / sqrt(N) for the independent prior draws). Runs are small: the suite stays fast.
"""

import warnings

import arviz as az
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from scipy.stats import norm

from probrep.inference import mcmc

Y = np.array([0.8, -0.4, 1.9, 1.1, 0.3, 1.4])
N = len(Y)
POST_MEAN = Y.sum() / (N + 1)  # also the posterior predictive mean of every y_i
PRED_VAR = 1.0 + 1.0 / (N + 1)
RUN = dict(num_warmup=300, num_samples=500, num_chains=2, seed=0, progress=False)
GROUPS = {"log_likelihood", "posterior_predictive", "prior", "prior_predictive"}


def conjugate(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    numpyro.deterministic("mu_plus_one", mu + 1.0)
    with numpyro.plate("data", N):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def extra_group_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "group" in str(w.message) or "posterior lacks" in str(w.message)]


@pytest.fixture(scope="module")
def idata():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = mcmc.sample(conjugate, y=Y, **RUN)
    assert extra_group_warnings(caught) == []
    return out


def test_all_groups_are_there_with_chain_draw_shapes(idata):
    assert GROUPS | {"posterior", "sample_stats", "observed_data"} == set(idata.groups())
    assert idata.log_likelihood["y"].shape == (2, 500, N)
    assert idata.posterior_predictive["y"].shape == (2, 500, N)
    assert idata.prior["mu"].shape == (1, 500)  # num_prior_samples defaults to num_samples
    assert idata.prior_predictive["y"].shape == (1, 500, N)
    assert set(idata.prior.data_vars) == {"mu", "mu_plus_one"}  # deterministic sites too, as in the posterior
    for group in ("log_likelihood", "posterior_predictive", "prior_predictive"):
        assert idata[group]["y"].dims[2:] == idata.observed_data["y"].dims  # the observations line up


def test_log_likelihood_is_the_normal_log_density_at_the_posterior_draws(idata):
    mu = idata.posterior["mu"].values.astype(np.float64)
    expected = norm.logpdf(Y, loc=mu[..., None], scale=1.0)
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected, rtol=1e-5, atol=1e-5)


def test_loo_and_waic_run(idata):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz's notes on Pareto k / WAIC variance with 6 points
        loo, waic = az.loo(idata, pointwise=True), az.waic(idata)
    assert loo.n_data_points == N and waic.n_data_points == N
    assert np.isfinite(loo.elpd_loo) and np.isfinite(waic.elpd_waic)
    # the log pointwise predictive density (WAIC's first term), from the closed-form log density above
    mu = idata.posterior["mu"].values.reshape(-1).astype(np.float64)
    lppd = np.log(norm.pdf(Y, loc=mu[:, None]).mean(0)).sum()
    assert abs((waic.elpd_waic + waic.p_waic) - lppd) < 1e-3


def test_prior_draws_are_standard_normal(idata):
    mu = idata.prior["mu"].values.reshape(-1)
    n = mu.size
    assert abs(mu.mean()) < 4 / np.sqrt(n)  # mean 0, sd 1
    assert abs((mu**2).mean() - 1.0) < 4 * np.sqrt(2.0 / n)  # E mu^2 = 1, Var mu^2 = 2
    assert np.std(mu) == pytest.approx(1.0, abs=4 / np.sqrt(2 * n))
    y0 = idata.prior_predictive["y"].values[0, :, 0]  # y_1 = mu + e ~ N(0, 2) under the prior
    assert abs((y0**2).mean() - 2.0) < 4 * np.sqrt(8.0 / n)


def test_posterior_predictive_matches_the_closed_form(idata):
    rep = idata.posterior_predictive["y"].values  # [chain, draw, N]
    assert not np.allclose(rep, Y)  # drawn afresh, not the data handed back
    mean = rep.mean(-1)  # [chain, draw]: mean of the N replicated y_i, expectation POST_MEAN
    assert abs(mean.mean() - POST_MEAN) < 4 * float(az.mcse(mean, method="mean"))
    sq = ((rep - POST_MEAN) ** 2).mean(-1)  # expectation PRED_VAR
    assert abs(sq.mean() - PRED_VAR) < 4 * float(az.mcse(sq, method="mean"))


def test_opt_outs_remove_their_groups_and_leave_the_others_unchanged(idata):
    no_pp = mcmc.sample(conjugate, y=Y, posterior_predictive=False, **RUN)
    assert set(no_pp.groups()) == set(idata.groups()) - {"posterior_predictive"}
    np.testing.assert_array_equal(no_pp.log_likelihood["y"], idata.log_likelihood["y"])
    np.testing.assert_array_equal(no_pp.prior["mu"], idata.prior["mu"])
    only_pp = mcmc.sample(conjugate, y=Y, log_likelihood=False, prior=False, **RUN)
    assert set(only_pp.groups()) == {"posterior", "sample_stats", "observed_data", "posterior_predictive"}
    np.testing.assert_array_equal(only_pp.posterior_predictive["y"], idata.posterior_predictive["y"])
    with pytest.raises(TypeError, match="prior must be True or False"):
        mcmc.sample(conjugate, y=Y, prior="yes")
    with pytest.raises(ValueError, match="num_prior_samples must be an integer >= 1"):
        mcmc.sample(conjugate, y=Y, num_prior_samples=0)


def test_a_model_without_data_gets_a_prior_only():
    """No observed site (a numpyro.factor term is not data): no log_likelihood nor predictive groups."""

    def model():
        x = numpyro.sample("x", dist.Normal(0.0, 1.0))
        numpyro.factor("tilt", -0.5 * x**2)  # posterior N(0, 1/2); the prior ignores factor terms

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = mcmc.sample(model, num_warmup=100, num_samples=100, num_chains=1, num_prior_samples=40, progress=False)
    assert extra_group_warnings(caught) == []
    assert set(out.groups()) == {"posterior", "sample_stats", "prior"}
    assert set(out.prior.data_vars) == {"x"} and out.prior["x"].shape == (1, 40)


def test_unplated_data_flat_prior_and_factor_terms():
    """``Normal(mu, 1)`` observed at a vector outside a plate is replicated in the data's shape; a flat
    (improper) prior cannot be drawn, so there is no prior group, quietly; a factor term is not data."""

    def model(y):
        mu = numpyro.sample("mu", dist.ImproperUniform(constraints.real, (), ()))
        numpyro.factor("nothing", jnp.zeros(()))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = mcmc.sample(model, Y, num_warmup=150, num_samples=100, num_chains=1, seed=2, progress=False)
    assert extra_group_warnings(caught) == []
    assert set(out.groups()) == {"posterior", "sample_stats", "observed_data", "log_likelihood", "posterior_predictive"}
    assert set(out.observed_data.data_vars) == {"y"} and set(out.log_likelihood.data_vars) == {"y"}
    assert out.posterior_predictive["y"].shape == (1, 100, N)
    mu = out.posterior["mu"].values.astype(np.float64)
    np.testing.assert_allclose(out.log_likelihood["y"], norm.logpdf(Y, mu[..., None]), rtol=1e-5, atol=1e-5)
