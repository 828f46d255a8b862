"""``mcmc.sample``: InferenceData contents, closed-form posteriors for every kernel, identical draws to NumPyro's
own MCMC, divergences on NaN / infinite log densities, and input errors.

Moment checks are z-scores with ESS-based MCSEs (arviz), bounded by Phi^-1(1 - 0.01 / (2m)) for m statistics.
"""

import logging
import os
import subprocess
import sys

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS
from scipy.stats import norm

from probrep.inference import mcmc
from probrep.inference.mcmc.kernels import MALA

DATA = np.random.default_rng(0).normal(1.5, 2.0, size=40)
PRIOR_SD, NOISE_SD = 10.0, 2.0
POST_VAR = 1.0 / (1.0 / PRIOR_SD**2 + len(DATA) / NOISE_SD**2)
POST_MEAN = POST_VAR * DATA.sum() / NOISE_SD**2


def conjugate(y=None, n=40):
    """mu ~ N(0, 10^2); y_i ~ N(mu, 2^2): the posterior of mu is N(POST_MEAN, POST_VAR)."""
    mu = numpyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    numpyro.deterministic("mu_squared", mu**2)
    with numpyro.plate("data", n):
        numpyro.sample("y", dist.Normal(mu, NOISE_SD), obs=y)


def z_bound(m: int, alpha: float = 0.01) -> float:
    return float(norm.ppf(1 - alpha / (2 * m)))


def assert_posterior_moments(mu: np.ndarray, m: int = 2) -> None:
    """mu [chains, draws]: mean and variance of the conjugate posterior within the MCSE bound."""
    bound = z_bound(m)
    est, se = float(mu.mean()), float(az.mcse(mu, method="mean"))
    assert abs(est - POST_MEAN) < bound * se, (est, POST_MEAN, se)
    sq = (mu - POST_MEAN) ** 2
    est, se = float(sq.mean()), float(az.mcse(sq, method="mean"))
    assert abs(est - POST_VAR) < bound * se, (est, POST_VAR, se)


@pytest.fixture(scope="module")
def nuts_idata():
    return mcmc.sample(conjugate, y=DATA, num_warmup=300, num_samples=500, num_chains=2, seed=0, progress=False)


def test_inference_data_contents(nuts_idata):
    idata = nuts_idata
    assert {"posterior", "sample_stats", "observed_data"} <= set(idata.groups())
    assert idata.posterior["mu"].shape == (2, 500)
    np.testing.assert_allclose(idata.posterior["mu_squared"], idata.posterior["mu"] ** 2, rtol=1e-5)
    np.testing.assert_allclose(idata.observed_data["y"], DATA, rtol=1e-6)
    stats = idata.sample_stats
    assert {"diverging", "acceptance_rate", "step_size", "n_steps", "lp"} <= set(stats.data_vars)
    assert stats["diverging"].dtype == bool and int(stats["diverging"].sum()) == 0
    assert (stats["n_steps"] >= 1).all() and (stats["acceptance_rate"] >= 0).all()
    attrs = idata.posterior.attrs
    assert attrs["kernel"] == "nuts" and attrs["num_chains"] == 2
    assert attrs["grad_evals_sampling"] == int(stats["n_steps"].sum())
    for key in ("compile_seconds", "warmup_seconds", "sampling_seconds", "total_seconds"):
        assert key in attrs
    assert_posterior_moments(idata.posterior["mu"].values)


def test_summary_prints_diagnostics_and_time(nuts_idata, capsys):
    mcmc.print_summary(nuts_idata)
    out = capsys.readouterr().out
    for word in ("r_hat", "ess_bulk", "ess_tail", "divergences: 0 of 1000", "compile", "warm-up", "sampling"):
        assert word in out


def test_same_draws_as_numpyro_mcmc(nuts_idata):
    """Same seed, same kernel: the runner adds no randomness and no numerical change to NumPyro's MCMC."""
    reference = MCMC(
        NUTS(conjugate), num_warmup=300, num_samples=500, num_chains=2, chain_method="sequential", progress_bar=False
    )
    reference.run(jax.random.PRNGKey(0), y=DATA)
    expected = np.asarray(reference.get_samples(group_by_chain=True)["mu"])
    np.testing.assert_allclose(nuts_idata.posterior["mu"].values, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kernel", "chain_method", "kwargs"),
    [
        ("hmc", "sequential", {"num_steps": 5}),  # a fixed number of leap-frog steps
        ("mala", "vectorized", {}),
        (MALA(conjugate, dense_mass=True), "sequential", {}),
    ],
    ids=["hmc", "mala-vectorized", "mala-instance"],
)
def test_kernels_recover_the_conjugate_posterior(kernel, chain_method, kwargs):
    idata = mcmc.sample(
        conjugate,
        y=DATA,
        kernel=kernel,
        kernel_kwargs=kwargs or None,
        num_warmup=500,
        num_samples=2000,
        num_chains=4,
        chain_method=chain_method,
        seed=1,
        progress=False,
    )
    assert idata.posterior["mu"].shape == (4, 2000)
    assert_posterior_moments(idata.posterior["mu"].values)
    if isinstance(kernel, MALA):
        assert kernel._sample_fn is None  # the caller's instance was copied, not initialised
        assert (idata.sample_stats["n_steps"] == 1).all()
        assert abs(float(idata.sample_stats["acceptance_rate"].mean()) - 0.574) < 0.1


@pytest.mark.parametrize(("kernel", "bad"), [("nuts", np.nan), ("mala", -np.inf)], ids=["nuts-nan", "mala-inf"])
def test_nan_or_infinite_log_density_is_a_divergence_and_the_chain_goes_on(kernel, bad):
    """log p(x) = log N(x; 0, 1) for x <= 1 and NaN (or -inf) beyond: the chains sample the truncated normal,
    whose mean is -phi(1) / Phi(1), and report the rejected excursions as divergences."""

    def model():
        x = numpyro.sample("x", dist.Normal(0.0, 1.0))
        numpyro.factor("wall", jnp.where(x > 1.0, bad, 0.0))

    idata = mcmc.sample(model, kernel=kernel, num_warmup=300, num_samples=1500, num_chains=2, seed=3, progress=False)
    x = idata.posterior["x"].values
    assert np.isfinite(x).all() and x.max() <= 1.0
    assert int(idata.sample_stats["diverging"].sum()) > 0
    truth = -norm.pdf(1.0) / norm.cdf(1.0)
    assert abs(x.mean() - truth) < z_bound(1) * float(az.mcse(x, method="mean"))


def test_parallel_without_devices_falls_back_and_thinning(caplog):
    with caplog.at_level(logging.WARNING, logger="probrep.inference.mcmc.sampling"):
        idata = mcmc.sample(
            conjugate,
            y=DATA,
            kernel="mala",
            num_warmup=50,
            num_samples=60,
            num_chains=2,
            thinning=3,
            chain_method="parallel",
            progress=False,
        )
    if jax.local_device_count() < 2:
        assert "running the chains sequentially" in caplog.text
        assert idata.posterior.attrs["chain_method"] == "sequential"
    assert idata.posterior["mu"].shape == (2, 20)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="unknown kernel 'gibbs'"):
        mcmc.sample(conjugate, y=DATA, kernel="gibbs")
    with pytest.raises(TypeError, match="kernel must be one of"):
        mcmc.sample(conjugate, y=DATA, kernel=3)
    with pytest.raises(ValueError, match="unknown chain_method 'threads'"):
        mcmc.sample(conjugate, y=DATA, chain_method="threads")
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        mcmc.sample(conjugate, y=DATA, num_samples=0)
    with pytest.raises(TypeError, match="model must be a callable"):
        mcmc.sample("conjugate")
    with pytest.raises(ValueError, match=r"init_params\['mu'\] has shape \(3,\), expected \(4,\)"):
        mcmc.sample(conjugate, y=DATA, num_chains=4, init_params={"mu": jnp.zeros(3)})
    with pytest.raises(ValueError, match=r"unknown sites \['sigma'\]"):
        mcmc.sample(conjugate, y=DATA, num_chains=1, init_params={"mu": 0.0, "sigma": 1.0})
    with pytest.raises(ValueError, match="NaN or infinite"):
        mcmc.sample(conjugate, y=DATA, num_chains=1, init_params={"mu": jnp.nan})
    with pytest.raises(TypeError, match="kernel_kwargs for 'nuts'"):
        mcmc.sample(conjugate, y=DATA, kernel_kwargs={"no_such_option": 1})


PARALLEL_SCRIPT = """
import jax, numpy as np, numpyro, numpyro.distributions as dist
from probrep.inference import mcmc
def model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    numpyro.sample("y", dist.Normal(mu, 2.0).expand([40]), obs=y)
y = np.random.default_rng(0).normal(1.5, 2.0, 40)
kw = dict(y=y, kernel="mala", num_chains=2, num_warmup=100, num_samples=200, progress=False)
a = mcmc.sample(model, chain_method="parallel", **kw)
b = mcmc.sample(model, chain_method="sequential", **kw)
print(jax.local_device_count(), a.posterior.attrs["chain_method"], a.posterior["mu"].shape,
      float(np.abs(a.posterior["mu"].values - b.posterior["mu"].values).max()))
"""


def test_parallel_chains_on_two_devices_match_sequential():
    """One chain per (forced host) device; the same keys give the same chains as the sequential runner."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PARALLEL_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2", "parallel", "(2,", "200)", "0.0"]
