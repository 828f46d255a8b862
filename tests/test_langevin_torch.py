"""Batched torch Langevin / HMC: known answers (tolerances from ESS-based Monte Carlo error), agreement with the
NumPyro kernel, divergences, reproducibility and input checks.

z-scores as in test_langevin.py: |z| <= Phi^-1(1 - 0.01 / (2m)) for m statistics per test.
"""

import math

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from numpyro.infer import MCMC
from scipy.stats import norm

from probrep.inference.mcmc.kernels import MALA
from probrep.inference.torch_samplers import (
    hmc,
    hmc_step,
    langevin,
    langevin_init,
    langevin_step,
    pyro_potential,
)
from probrep.inference.torch_samplers.noise import NoiseBlocks
from probrep.inference.torch_samplers.recorder import Recorder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def z_bound(m: int, alpha: float = 0.01) -> float:
    return float(norm.ppf(1 - alpha / (2 * m)))


def mean_and_mcse(stat: np.ndarray) -> tuple[float, float]:
    """stat [chains, draws]."""
    return float(stat.mean()), float(az.mcse(stat, method="mean"))


MU = np.array([1.0, -2.0])
COV = np.array([[1.0, 1.2], [1.2, 4.0]])  # correlation 0.6, scales 1 and 2
PREC = np.linalg.inv(COV)


def gaussian_energy(x: torch.Tensor) -> torch.Tensor:
    d = x - torch.as_tensor(MU, dtype=x.dtype, device=x.device)
    return 0.5 * ((d @ torch.as_tensor(PREC, dtype=x.dtype, device=x.device)) * d).sum(-1)


def gaussian_statistics(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """samples [draws, chains, 2] -> statistics [chains, draws, 5] with expectations [5]:
    x1, x2, (x1-m1)^2, (x2-m2)^2, (x1-m1)(x2-m2)."""
    s = np.swapaxes(samples, 0, 1)
    d = s - MU
    stats = np.stack([s[..., 0], s[..., 1], d[..., 0] ** 2, d[..., 1] ** 2, d[..., 0] * d[..., 1]], axis=-1)
    return stats, np.array([MU[0], MU[1], COV[0, 0], COV[1, 1], COV[0, 1]])


def assert_moments(samples: np.ndarray, bound: float) -> None:
    stats, truth = gaussian_statistics(samples)
    for j in range(stats.shape[-1]):
        est, mcse = mean_and_mcse(stats[..., j])
        assert abs(est - truth[j]) < bound * mcse, (j, est, truth[j], mcse)


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_torch_samplers_recover_a_correlated_gaussian(sampler, device):
    x0 = torch.full((128, 2), 3.0, dtype=torch.float64, device=device)  # far from the mode: warm-up has work to do
    if sampler == "mala":
        res = langevin(gaussian_energy, x0, steps=800, num_warmup=400, seed=0, progress=False)
        assert abs(float(res.accept_rate.mean()) - 0.574) < 0.05
    else:
        res = hmc(gaussian_energy, x0, steps=300, num_leapfrog=5, num_warmup=200, seed=0, progress=False)
        assert float(res.accept_rate.mean()) > 0.5
    step = res.step_size if sampler == "mala" else res.leapfrog_step
    assert res.samples.shape == (res.samples.shape[0], 128, 2) and step.shape == (128,)
    assert res.accept_rate.shape == (128,) and int(res.divergences.sum()) == 0
    assert res.samples.device.type == device.type
    assert_moments(res.samples.cpu().numpy(), z_bound(5))


def test_torch_ula_bias_and_mala_on_standard_normal():
    """ULA with fixed e on N(0, 1): variance 1 / (1 - e/4); MALA at the same e: 1."""
    e, x0 = 0.8, torch.zeros(512, 1, dtype=torch.float64)
    bound = z_bound(3)
    out = {}
    for adjust in (False, True):
        res = langevin(
            lambda x: 0.5 * (x**2).sum(-1),
            x0,
            steps=1000,
            step_size=e,
            adjust=adjust,
            num_warmup=100,
            adapt_step_size=False,
            seed=1,
            progress=False,
        )
        assert torch.all(res.step_size == e)
        out[adjust] = mean_and_mcse(np.swapaxes(res.samples.numpy()[..., 0] ** 2, 0, 1))
    (ula, ula_se), (mala, mala_se) = out[False], out[True]
    assert abs(ula - 1 / (1 - e / 4)) < bound * ula_se
    assert abs(mala - 1.0) < bound * mala_se
    assert abs(ula - 1.0) > bound * ula_se  # the bias is far outside the Monte Carlo error


def test_torch_and_numpyro_mala_agree():
    """The same target through both implementations: each statistic agrees within the joint MCSE."""
    res = langevin(gaussian_energy, torch.zeros(64, 2, dtype=torch.float64), steps=1000, num_warmup=500, progress=False)
    torch_stats, _ = gaussian_statistics(res.samples.numpy())

    def model():
        numpyro.sample("x", dist.MultivariateNormal(jnp.asarray(MU), covariance_matrix=jnp.asarray(COV)))

    mcmc = MCMC(
        MALA(model, dense_mass=True),
        num_warmup=1000,
        num_samples=4000,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(0))
    samples = np.asarray(mcmc.get_samples(group_by_chain=True)["x"], dtype=np.float64)  # [4, 4000, 2]
    jax_stats, _ = gaussian_statistics(np.swapaxes(samples, 0, 1))
    bound = z_bound(5)
    for j in range(5):
        (a, sa), (b, sb) = mean_and_mcse(torch_stats[..., j]), mean_and_mcse(jax_stats[..., j])
        assert abs(a - b) < bound * np.hypot(sa, sb), (j, a, b)


@pytest.mark.parametrize("bad", [math.nan, -math.inf, math.inf])
@pytest.mark.parametrize("sampler", ["mala", "hmc", "ula"])
def test_nan_region_counts_divergences_and_chains_go_on(sampler, bad):
    """E = x^2/2 for x <= 1 and NaN (or -inf, or +inf) beyond: proposals there are rejected as divergences (an
    energy of -inf would otherwise win every Metropolis test, and ULA, which takes every finite move, must not
    take these), so MALA and HMC sample the normal truncated to x <= 1, whose mean is -phi(1) / Phi(1)."""

    def energy(x):
        return torch.where(x[:, 0] > 1.0, bad, 0.5 * x[:, 0] ** 2)

    x0 = torch.zeros(256, 1, dtype=torch.float64)
    if sampler == "hmc":
        res = hmc(energy, x0, steps=300, num_leapfrog=3, leapfrog_step=0.6, seed=2, progress=False)
    else:
        res = langevin(energy, x0, steps=600, step_size=1.0, adjust=sampler == "mala", seed=2, progress=False)
    x = res.samples.numpy()[..., 0]
    assert np.isfinite(x).all() and x.max() <= 1.0 and torch.isfinite(res.energy).all()
    assert int(res.divergences.sum()) > 0
    if sampler == "ula":  # biased by design: only the region is checked, and with adaptation too
        adapted = langevin(energy, x0[:16], steps=300, adjust=False, seed=2, progress=False)
        assert adapted.samples.max() <= 1.0 and torch.isfinite(adapted.energy).all()
        return
    est, se = mean_and_mcse(np.swapaxes(x, 0, 1))
    truth = -norm.pdf(1.0) / norm.cdf(1.0)
    assert abs(est - truth) < z_bound(1) * se


class _BadGradientBeyondOne(torch.autograd.Function):
    """E = x^2 / 2 with a finite value everywhere but a NaN or infinite gradient for x > 1."""

    @staticmethod
    def forward(ctx, x, bad):
        ctx.save_for_backward(x)
        ctx.bad = bad
        return 0.5 * x**2

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * torch.where(x > 1.0, ctx.bad, x), None


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("sampler", ["mala", "hmc", "ula"])
def test_non_finite_gradient_counts_divergences_and_chains_go_on(sampler, bad):
    """A finite energy whose gradient is NaN or infinite beyond x = 1: proposals that land there are rejected as
    divergences, so the chains stay finite and at x <= 1."""

    def energy(x):
        return _BadGradientBeyondOne.apply(x[:, 0], bad)

    x0 = torch.zeros(64, 1, dtype=torch.float64)
    if sampler == "hmc":
        res = hmc(energy, x0, steps=200, num_leapfrog=3, leapfrog_step=0.6, seed=2, progress=False)
    else:
        res = langevin(energy, x0, steps=300, step_size=1.0, adjust=sampler == "mala", seed=2, progress=False)
    assert torch.isfinite(res.samples).all() and res.samples.max() <= 1.0
    assert int(res.divergences.sum()) > 0


def test_same_seed_same_chains_and_device_kept():
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    a = langevin(gaussian_3 := (lambda x: 0.5 * (x**2).sum(-1)), x0, steps=50, seed=7, progress=False, device="cpu")
    b = langevin(gaussian_3, x0, steps=50, seed=7, progress=False)
    c = langevin(gaussian_3, x0, steps=50, seed=8, progress=False)
    assert torch.equal(a.samples, b.samples) and torch.equal(a.step_size, b.step_size)
    assert not torch.equal(a.samples, c.samples)
    assert a.samples.device == x0.device and a.samples.dtype == x0.dtype
    assert a.num_grad_evals > a.num_warmup + 50  # step-size search included
    thinned = hmc(gaussian_3, x0, steps=40, num_leapfrog=2, leapfrog_step=0.3, thin=4, progress=False)
    assert thinned.samples.shape == (10, 8, 3) and thinned.num_grad_evals == 80


def test_block_recording_equals_step_by_step(monkeypatch):
    """States and statistics written in blocks (several blocks and a partial one, with thinning) are exactly those
    written one step at a time, divergence counts (of NaN proposals) included."""

    def energy(x):
        return torch.where(x[:, 0] > 1.5, torch.nan, 0.5 * (x**2).sum(-1))

    x0 = torch.zeros(3, 2, dtype=torch.float64)
    run = lambda: langevin(energy, x0, steps=700, step_size=1.2, thin=3, seed=4, progress=False)  # noqa: E731
    blocked = run()
    init = Recorder.__init__
    monkeypatch.setattr(Recorder, "__init__", lambda self, x, kept: init(self, x, kept, budget=1))
    single = run()
    assert blocked.samples.shape == (233, 3, 2)
    for name in ("samples", "energy", "divergences"):
        assert torch.equal(getattr(blocked, name), getattr(single, name)), name
    torch.testing.assert_close(blocked.accept_rate, single.accept_rate, rtol=1e-12, atol=0)  # summation order
    assert torch.equal(blocked.energy, energy(blocked.samples.flatten(0, 1)).view(233, 3))
    assert int(blocked.divergences.sum()) > 0


def quartic_energy(x: torch.Tensor) -> torch.Tensor:
    x = x.flatten(1)
    return 0.25 * (x**4).sum(-1) + x[:, 0] * x[:, 1]


def quartic_grad(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    coupling = torch.zeros_like(flat)
    coupling[:, 0], coupling[:, 1] = flat[:, 1], flat[:, 0]
    return (flat**3 + coupling).view_as(x)


@pytest.mark.parametrize("shape", [(6, 3), (6, 1, 2, 2)])
def test_torch_steps_match_the_textbook_formulas(shape):
    """One MALA (and ULA) step and one HMC transition against the formulas written out by hand (float64, so to
    rounding): the Langevin log ratio E(x) - E(x') - 1/2 (|xi - (sqrt(e)/2)(g + g')|^2 - |xi|^2), and leap-frog
    with H = E + |p|^2 / 2. Each chain either stays or moves to the proposal; ULA always moves."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    e = torch.tensor([0.01, 0.1, 0.3, 0.6, 1.0, 2.0], dtype=torch.float64)
    per_chain = e.view((-1,) + (1,) * (len(shape) - 1))
    xi = torch.randn(shape, generator=gen, dtype=torch.float64)
    xi_before = xi.clone()
    state = langevin_init(quartic_energy, x)
    new, info = langevin_step(state, quartic_energy, e, torch.Generator().manual_seed(0), noise=xi)
    assert torch.equal(xi, xi_before)  # the caller's noise is not overwritten
    g = quartic_grad(x)
    proposal = x - 0.5 * per_chain * g + per_chain.sqrt() * xi
    g_new = quartic_grad(proposal)
    reverse = (xi - 0.5 * per_chain.sqrt() * (g + g_new)).flatten(1)
    log_ratio = quartic_energy(x) - quartic_energy(proposal) - 0.5 * ((reverse**2).sum(-1) - (xi**2).flatten(1).sum(-1))
    torch.testing.assert_close(info.accept_prob, log_ratio.clamp(max=0).exp(), rtol=1e-10, atol=1e-12)
    moved = info.accepted.view(per_chain.shape)
    torch.testing.assert_close(new.x, torch.where(moved, proposal, x), rtol=0, atol=1e-12)
    torch.testing.assert_close(new.grad, quartic_grad(new.x), rtol=1e-10, atol=1e-12)
    assert 0 < int(info.accepted.sum()) < 6  # both branches are exercised
    ula, ula_info = langevin_step(state, quartic_energy, e, adjust=False, noise=xi)
    assert bool(ula_info.accepted.all())
    torch.testing.assert_close(ula.x, proposal, rtol=0, atol=1e-12)
    torch.testing.assert_close(ula_info.accept_prob, info.accept_prob, rtol=1e-12, atol=0)

    h, p = e.sqrt() * 0.5, torch.randn(shape, generator=gen, dtype=torch.float64)
    hc = h.view(per_chain.shape)
    log_u = torch.rand(6, generator=gen, dtype=torch.float64).log()
    new, info = hmc_step(state, quartic_energy, h, 4, momentum=p, log_u=log_u)
    q, m = x.clone(), p - 0.5 * hc * g
    for leap in range(4):
        q = q + hc * m
        m = m - (1.0 if leap < 3 else 0.5) * hc * quartic_grad(q)
    kinetic = lambda v: 0.5 * (v**2).flatten(1).sum(-1)  # noqa: E731
    log_ratio = quartic_energy(x) + kinetic(p) - quartic_energy(q) - kinetic(m)
    torch.testing.assert_close(info.accept_prob, log_ratio.clamp(max=0).exp(), rtol=1e-10, atol=1e-12)
    assert torch.equal(info.accepted, log_u < log_ratio)
    torch.testing.assert_close(new.x, torch.where(info.accepted.view(per_chain.shape), q, x), rtol=0, atol=1e-12)


def test_noise_does_not_depend_on_run_length_or_chunking(monkeypatch):
    """The random numbers are drawn in blocks and split into per-step views a chunk at a time: a shorter run is a
    prefix of a longer one with the same seed, and the chunk size changes nothing."""
    energy = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731

    def run(x0, steps):
        return langevin(energy, x0, steps=steps, step_size=0.9, seed=2, progress=False).samples

    for shape in [(3, 2), (64, 300)]:  # many steps per block; four steps per block
        x0 = torch.zeros(shape, dtype=torch.float64)
        long = run(x0, 300)
        assert torch.equal(run(x0, 45), long[:45])
        monkeypatch.setattr(NoiseBlocks, "CHUNK", 5)
        assert torch.equal(run(x0, 300), long)
        monkeypatch.undo()


def test_input_errors_name_the_problem():
    energy = lambda x: 0.5 * (x**2).sum(-1)  # noqa: E731
    with pytest.raises(ValueError, match=r"x0 must have shape \[chains, \.\.\.\]"):
        langevin(energy, torch.zeros(5), steps=10)
    with pytest.raises(TypeError, match="floating-point"):
        langevin(energy, torch.zeros(5, 2, dtype=torch.long), steps=10)
    with pytest.raises(TypeError, match="x0 must be a torch tensor"):
        langevin(energy, np.zeros((5, 2)), steps=10)
    with pytest.raises(ValueError, match="NaN or infinite"):
        langevin(energy, torch.full((5, 2), float("nan")), steps=10)
    with pytest.raises(ValueError, match=r"one energy per chain, shape \(5,\)"):
        langevin(lambda x: x**2, torch.zeros(5, 2), steps=10)
    with pytest.raises(ValueError, match="not finite at x0 for chains \\[1\\]"):
        langevin(lambda x: -torch.log(x[:, 0]), torch.tensor([[1.0], [-1.0]]), steps=10)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        langevin(energy, torch.zeros(5, 2), steps=0)
    with pytest.raises(ValueError, match="leapfrog_step must be"):
        hmc(energy, torch.zeros(5, 2), steps=10, leapfrog_step=-0.1)
    with pytest.raises(ValueError, match=r"step_size must be .* tensor \[5\]"):
        langevin(energy, torch.zeros(5, 2), steps=10, step_size=torch.ones(3))
    with pytest.raises(ValueError, match="num_leapfrog"):
        hmc(energy, torch.zeros(5, 2), steps=10, num_leapfrog=0)
    with pytest.raises(ValueError, match="target_accept"):
        langevin(energy, torch.zeros(5, 2), steps=10, target_accept=1.0)
    with pytest.raises(TypeError, match="energy_fn must be callable"):
        langevin("energy", torch.zeros(5, 2), steps=10)


def test_pyro_model_through_its_potential():
    """mu ~ N(0, 10^2), x_i ~ N(mu, 1): the posterior is N(sum x / (n + 0.01), 1 / (n + 0.01))."""
    data = torch.randn(20, generator=torch.Generator().manual_seed(0)) + 1.5

    def model(x):
        mu = pyro.sample("mu", pdist.Normal(0.0, 10.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", pdist.Normal(mu, 1.0), obs=x)

    target = pyro_potential(model, (data,))
    x0 = target.initial.expand(4, -1).clone()
    res = langevin(target.energy, x0, steps=600, num_warmup=200, seed=0, progress=False)
    mu = target.constrain(res.samples)["mu"].numpy()  # [600, 4]
    precision = len(data) + 0.01
    mean, var = float(data.sum()) / precision, 1.0 / precision
    bound = z_bound(2)
    est, se = mean_and_mcse(mu.T)
    assert abs(est - mean) < bound * se
    est, se = mean_and_mcse(((mu - mean) ** 2).T)
    assert abs(est - var) < bound * se
