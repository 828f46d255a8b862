"""MALA / ULA as NumPyro kernels and their pure JAX step: known answers, with tolerances from Monte Carlo error.

Every moment check is a z-score: (estimate - truth) / MCSE, with the MCSE from arviz (ESS-based). A correct
sampler gives z ~ N(0, 1); a test with m such statistics allows |z| <= Phi^-1(1 - 0.01 / (2m)) (Bonferroni, a
1% chance that a correct sampler fails for an arbitrary seed; the seeds here are fixed).
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import torch
from numpyro.infer import MCMC
from scipy.stats import norm

from probrep.inference.mcmc import adaptation
from probrep.inference.mcmc.kernels import MALA, ULA
from probrep.inference.mcmc.langevin import init, step


def z_bound(m: int, alpha: float = 0.01) -> float:
    return float(norm.ppf(1 - alpha / (2 * m)))


def z_scores(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """draws [chains, draws, k] of statistics whose expectations are ``truth`` [k]."""
    est = draws.mean(axis=(0, 1))
    mcse = np.array([float(az.mcse(draws[..., j], method="mean")) for j in range(draws.shape[-1])])
    return (est - truth) / mcse


D = 50
MEAN = np.linspace(-2.0, 2.0, D)
VAR = np.logspace(-1.0, 1.0, D)  # variances over two orders of magnitude


def gaussian_50d():
    numpyro.sample("x", dist.Normal(jnp.asarray(MEAN), jnp.sqrt(jnp.asarray(VAR))).to_event(1))


def test_mala_50d_gaussian_acceptance_and_moments():
    mcmc = MCMC(
        MALA(gaussian_50d),
        num_warmup=1000,
        num_samples=2000,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(1), extra_fields=("accept_prob", "adapt_state.step_size"))
    x = np.asarray(mcmc.get_samples(group_by_chain=True)["x"], dtype=np.float64)  # [4, 2000, 50]
    accept = np.asarray(mcmc.get_extra_fields()["accept_prob"])
    assert abs(accept.mean() - 0.574) < 0.05  # the band around the optimal scaling
    bound = z_bound(2 * D)
    z_mean = z_scores(x, MEAN)
    z_var = z_scores((x - MEAN) ** 2, VAR)
    assert np.abs(z_mean).max() < bound, z_mean
    assert np.abs(z_var).max() < bound, z_var
    # the adapted diagonal metric learned the scales: a fixed step with an identity metric could not mix here
    steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["adapt_state.step_size"])
    assert np.all(steps[:, 0] == steps[:, -1])  # no adaptation after warm-up


def test_ula_bias_is_exact_and_mala_removes_it():
    """On N(0, 1), ULA's chain x' = (1 - e/2) x + sqrt(e) xi has variance 1 / (1 - e/4); MALA's is 1."""
    step_size = 1.0

    def potential(x):
        return 0.5 * jnp.sum(x**2)

    results = {}
    for cls in (ULA, MALA):
        kernel = cls(potential_fn=potential, step_size=step_size, adapt_step_size=False, adapt_mass_matrix=False)
        mcmc = MCMC(
            kernel, num_warmup=100, num_samples=5000, num_chains=4, chain_method="vectorized", progress_bar=False
        )
        mcmc.run(jax.random.PRNGKey(0), init_params=jnp.zeros((4, 1)))
        results[cls.__name__] = np.asarray(mcmc.get_samples(group_by_chain=True), dtype=np.float64)  # [4, 5000, 1]
    bound = z_bound(3)
    ula_var = 1.0 / (1.0 - step_size / 4.0)
    assert abs(z_scores(results["ULA"] ** 2, np.array([ula_var]))[0]) < bound
    assert abs(z_scores(results["MALA"] ** 2, np.array([1.0]))[0]) < bound
    # and the bias is resolved: ULA's variance is not 1 by far more than its Monte Carlo error
    assert abs(z_scores(results["ULA"] ** 2, np.array([1.0]))[0]) > bound


def test_mala_correction_equals_the_explicit_proposal_densities():
    """The simplified correction in ``step`` equals log p(x') - log p(x) + log q(x | x') - log q(x' | x) computed
    from the Gaussian proposal densities N(x + e/2 C g, e C), with a dense C and a non-Gaussian target."""
    e = 0.3
    a = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]])
    cov = e * (a @ a.T)

    def logp(x):  # numpy, float64
        return -np.sum(np.log(np.cosh(x))) - 0.25 * np.sum(x**4)

    def grad(x):
        return -np.tanh(x) - x**3

    def log_q(to, frm):
        diff = to - (frm + 0.5 * cov @ grad(frm))  # N(x + (e/2) C g, e C), up to a shared constant
        return -0.5 * diff @ np.linalg.solve(cov, diff)

    with jax.enable_x64(True):

        def logdensity(x):
            return -jnp.sum(jnp.log(jnp.cosh(x))) - 0.25 * jnp.sum(x**4)

        x = np.array([0.4, -1.2, 0.9])
        state = init(jnp.asarray(x), logdensity)
        keys = jax.random.split(jax.random.PRNGKey(3), 256)
        new, info = jax.jit(jax.vmap(lambda k: step(k, state, logdensity, e, jnp.asarray(a))))(keys)
        positions, acceptance = np.asarray(new.position), np.asarray(info.acceptance_rate)
        moved = np.asarray(info.is_accepted) & (acceptance < 1)
    assert moved.sum() >= 10  # enough informative cases: accepted (so x' is visible) with ratio < 1
    for xp, acc in zip(positions[moved], acceptance[moved]):
        log_ratio = logp(xp) - logp(x) + log_q(x, xp) - log_q(xp, x)
        assert np.isclose(acc, np.exp(min(log_ratio, 0.0)), rtol=1e-9)


def test_stan_warmup_windows():
    assert adaptation.warmup_windows(1000) == [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    assert adaptation.warmup_windows(100) == [(15, 90)]  # Stan's 15% / 75% / 10% split
    assert adaptation.warmup_windows(19) == []
    schedule = adaptation.warmup_schedule(1000)
    assert schedule.collect.sum() == 875 and list(np.flatnonzero(schedule.window_end)) == [99, 149, 249, 449, 949]
    assert list(np.flatnonzero(schedule.last)) == [999]


def test_dual_averaging_converges_and_is_the_same_in_jax_and_torch():
    """With a deterministic acceptance a(e) = exp(-e), the averaged step converges to a^-1(target) = -log(target);
    the identical update runs on JAX arrays and torch tensors."""
    target = 0.574
    jax_state = adaptation.dual_averaging_init(jnp.log(jnp.array([3.0], dtype=jnp.float32)))
    torch_state = adaptation.dual_averaging_init(torch.log(torch.tensor([3.0])))
    for _ in range(3000):
        jax_state = adaptation.dual_averaging_update(jax_state, jnp.exp(-jnp.exp(jax_state.log_step_size)), target)
        torch_state = adaptation.dual_averaging_update(
            torch_state, torch.exp(-torch.exp(torch_state.log_step_size)), target
        )
    expected = -np.log(target)
    assert np.isclose(float(jnp.exp(jax_state.log_step_size_avg)[0]), expected, rtol=0.01)
    assert np.isclose(
        float(torch.exp(torch_state.log_step_size_avg)[0]), float(jnp.exp(jax_state.log_step_size_avg)[0]), rtol=1e-4
    )


def test_ula_leaves_its_metric_alone_unless_asked():
    """Without an accept step a metric inflated by one excursion makes the next one larger; ULA adapts only its
    step size by default, MALA both."""
    assert MALA(gaussian_50d)._adapt_mass_matrix and not ULA(gaussian_50d)._adapt_mass_matrix
    assert ULA(gaussian_50d, adapt_mass_matrix=True)._adapt_mass_matrix


def test_kernel_argument_errors():
    with pytest.raises(ValueError, match="exactly one of model= or potential_fn="):
        MALA()
    with pytest.raises(ValueError, match="step_size"):
        MALA(gaussian_50d, step_size=-1.0)
    with pytest.raises(ValueError, match="target_accept_prob"):
        ULA(gaussian_50d, target_accept_prob=1.5)
    with pytest.raises(ValueError, match="init_params must be given"):
        MALA(potential_fn=lambda x: jnp.sum(x**2)).init(jax.random.PRNGKey(0), 10)
    with pytest.raises(ValueError, match="inverse_mass_matrix has shape"):
        MALA(gaussian_50d, inverse_mass_matrix=jnp.ones(3)).init(jax.random.PRNGKey(0), 10)
    with pytest.raises(ValueError, match="not finite"):
        MALA(potential_fn=lambda x: jnp.sum(jnp.log(x))).init(jax.random.PRNGKey(0), 10, init_params=-jnp.ones(2))
