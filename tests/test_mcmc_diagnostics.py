"""MCMC tells a user when the draws are not usable (R-hat, ESS, divergences: Stan's limits), in the printed
summary and as warnings, and refuses a Pyro (torch) program with a message that says what to pass."""

import io

import numpy as np
import numpyro
import numpyro.distributions as dist
import pyro
import pytest
import torch

from probrep.inference import mcmc


def normal_model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


Y = np.random.default_rng(0).normal(1.0, 1.0, size=20)


def test_too_short_chains_warn_and_the_summary_says_why():
    with pytest.warns(mcmc.MCMCWarning, match=r"ess bulk down to \d+ < 400"):
        idata = mcmc.sample(normal_model, y=Y, kernel="nuts", num_chains=4, num_warmup=20, num_samples=30, seed=0,
                            progress=False)  # fmt: skip
    out = io.StringIO()
    mcmc.print_summary(idata, file=out)
    assert "WARNING: ess bulk" in out.getvalue()


def test_usable_chains_pass_quietly():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", mcmc.MCMCWarning)
        idata = mcmc.sample(normal_model, y=Y, kernel="nuts", num_chains=2, num_warmup=300, num_samples=600, seed=0,
                            progress=False)  # fmt: skip
    assert mcmc.diagnose(idata) == []
    assert "WARNING" not in mcmc.format_summary(idata)


def test_divergences_and_disagreeing_chains_are_named():
    import arviz as az

    rng = np.random.default_rng(1)
    draws = rng.normal(size=(4, 500)) + np.arange(4)[:, None]  # four chains around four different means
    diverging = np.zeros((4, 500), dtype=bool)
    diverging[0, :3] = True
    idata = az.from_dict(posterior={"theta": draws}, sample_stats={"diverging": diverging})
    problems = mcmc.diagnose(idata)
    assert any("R-hat" in p and "theta" in p for p in problems)
    assert any("3 divergent transitions" in p for p in problems)


def test_a_pyro_program_is_refused_with_what_to_pass():
    def pyro_model(y):
        mu = pyro.sample("mu", pyro.distributions.Normal(0.0, 10.0))
        pyro.sample("y", pyro.distributions.Normal(mu, 1.0), obs=y)

    with pytest.raises(TypeError, match="torch data"):
        mcmc.sample(pyro_model, torch.tensor(Y), progress=False)
    with pytest.raises(ValueError, match="no latent numpyro.sample site.*numpyro.sample"):
        mcmc.sample(pyro_model, Y, progress=False)
