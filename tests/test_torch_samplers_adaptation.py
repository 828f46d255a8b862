"""Torch samplers: the diagonal mass matrix (right target, better mixing), the one driver behind every kernel, and
the warm-up pieces giving the same numbers on numpy, JAX and torch.

Moment checks are z-scores with ESS-based MCSEs (arviz), bounded by Phi^-1(1 - 0.01 / (2m)) for m statistics.
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax import lax
from scipy.stats import norm

from probrep.inference.mcmc import adaptation
from probrep.inference.torch_samplers import hmc, langevin, samplers
from probrep.inference.torch_samplers.core import ChainState, gradient, square
from probrep.inference.torch_samplers.driver import run
from probrep.inference.torch_samplers.kernels import Kernel, hmc_kernel, langevin_kernel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D = 10
SCALE = torch.logspace(-1, 1, D, dtype=torch.float64)  # standard deviations 0.1 .. 10
MEAN = torch.linspace(-1, 1, D, dtype=torch.float64) * SCALE


def anisotropic(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (((x - MEAN) / SCALE) ** 2).sum(-1)


def z_bound(m: int, alpha: float = 0.01) -> float:
    return float(norm.ppf(1 - alpha / (2 * m)))


def z_scores(samples: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """samples [draws, chains, D] -> z-scores of the D means and the D variances."""
    s = samples.numpy().swapaxes(0, 1)
    dev = (s - MEAN.numpy()) ** 2
    z_mean = [(s[..., j].mean() - MEAN[j].item()) / az.mcse(s[..., j], method="mean") for j in range(D)]
    z_var = [(dev[..., j].mean() - SCALE[j].item() ** 2) / az.mcse(dev[..., j], method="mean") for j in range(D)]
    return np.array(z_mean), np.array(z_var)


def ess_per_gradient(res) -> float:
    """The smallest bulk ESS over the coordinates, per gradient evaluation (all chains, warm-up included)."""
    s = res.samples.numpy().swapaxes(0, 1)
    ess = min(float(az.ess(s[..., j])) for j in range(D))
    return ess / (res.num_grad_evals * s.shape[0])


@pytest.mark.parametrize("sampler", ["mala", "hmc"])
def test_diagonal_mass_matrix_targets_an_anisotropic_gaussian_and_mixes_better(sampler):
    """Scales 0.1 .. 10: with the adapted metric every mean and variance is within its Monte Carlo error, the
    metric has learned the variances, and the ESS per gradient of the slowest coordinate is far above what the
    identity metric gets (whose step is held back by the smallest scale)."""
    x0 = torch.zeros(32, D, dtype=torch.float64)
    if sampler == "mala":
        run_ = lambda mass: langevin(anisotropic, x0, 1000, num_warmup=1000, adapt_mass_matrix=mass, progress=False)  # noqa: E731
        gain = 20.0
    else:
        run_ = lambda mass: hmc(  # noqa: E731
            anisotropic, x0, 400, num_leapfrog=5, num_warmup=400, adapt_mass_matrix=mass, progress=False
        )
        gain = 3.0
    adapted, identity = run_(True), run_(False)
    z_mean, z_var = z_scores(adapted.samples)
    bound = z_bound(2 * D)
    assert np.abs(z_mean).max() < bound, z_mean
    assert np.abs(z_var).max() < bound, z_var
    assert adapted.inverse_mass_matrix.shape == (32, D) and identity.inverse_mass_matrix is None
    ratio = (adapted.inverse_mass_matrix / SCALE**2).log().mean(0).exp()  # per coordinate, geometric mean
    assert bool(((ratio > 0.5) & (ratio < 2.0)).all()), ratio  # the identity would be 1/100 .. 100 off
    assert ess_per_gradient(adapted) > gain * ess_per_gradient(identity)


def test_every_sampler_runs_through_the_one_driver(monkeypatch):
    """langevin (MALA, ULA) and hmc are the driver with a kernel: the same call through driver.run gives the same
    chains, and the public functions call nothing else."""
    x0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    energy = lambda x: 0.5 * (x**2).sum(-1) + 0.1 * (x**4).sum(-1)  # noqa: E731
    calls = []

    def counting_run(kernel, *args, **kwargs):
        calls.append(kernel.name)
        return run(kernel, *args, **kwargs)

    monkeypatch.setattr(samplers, "run", counting_run)
    cases = [
        (lambda: langevin(energy, x0, 60, seed=3, progress=False), langevin_kernel(True), True),
        (lambda: langevin(energy, x0, 60, adjust=False, seed=3, progress=False), langevin_kernel(False), False),
        (lambda: hmc(energy, x0, 60, num_leapfrog=3, seed=3, progress=False), hmc_kernel(3), True),
    ]
    for public, kernel, mass in cases:  # ULA leaves the metric alone by default
        a, b = public(), run(kernel, energy, x0, 60, adapt_mass_matrix=mass, seed=3, progress=False)
        assert torch.equal(a.samples, b.samples) and torch.equal(a.accept_rate, b.accept_rate)
        assert (a.inverse_mass_matrix is None) == (not mass)
    assert calls == ["mala", "ula", "hmc"]
    assert b.leapfrog_step.shape == (4,) and b.step_size is None and b.num_grad_evals > 60 * 3


def random_walk_kernel() -> Kernel:
    """Random-walk Metropolis written against the Kernel description: x' = x + s v. The driver's noise blocks fold
    |v|^2 / 2 into the threshold, so the move adds it back to its log ratio E(x) - E(x')."""

    def move(state, energy_fn, scale, v, threshold, seed):
        x_new = torch.addcmul(state.x, scale, v)
        energy_new, grad_new = gradient(energy_fn, x_new, seed)
        partial = (state.energy - energy_new) - 0.5 * square(v)
        accepted = threshold < partial
        mask = accepted.view(-1, 1)
        new = ChainState(
            torch.where(mask, x_new, state.x),
            torch.where(accepted, energy_new, state.energy),
            torch.where(mask, grad_new, state.grad),
        )
        return new, partial, accepted

    return Kernel(
        name="rwm",
        step_name="step_size",
        grads_per_step=1,
        metropolis=True,
        noise_scale=1.0,
        target_accept=0.234,
        prepare=lambda step, mass_sqrt, x: step.view(-1, 1) * (1.0 if mass_sqrt is None else mass_sqrt),
        move=move,
        from_langevin=torch.sqrt,
    )


def test_a_new_kernel_gets_warmup_recording_and_progress_from_the_driver():
    """A kernel the package does not know, run by the driver with its step-size adaptation and its progress bar:
    it reaches its target acceptance and samples N(0, diag(1, 4)) within Monte Carlo error."""
    scales = torch.tensor([1.0, 2.0], dtype=torch.float64)
    energy = lambda x: 0.5 * ((x / scales) ** 2).sum(-1)  # noqa: E731
    x0 = torch.zeros(64, 2, dtype=torch.float64)
    res = run(random_walk_kernel(), energy, x0, 1500, adapt_mass_matrix=False, seed=0, progress=True)
    assert res.num_warmup == 750 and res.step_size.shape == (64,)
    assert abs(float(res.accept_rate.mean()) - 0.234) < 0.05
    s = res.samples.numpy().swapaxes(0, 1)
    bound = z_bound(4)
    for j in range(2):
        assert abs(s[..., j].mean()) < bound * float(az.mcse(s[..., j], method="mean"))
        sq = s[..., j] ** 2
        assert abs(sq.mean() - scales[j].item() ** 2) < bound * float(az.mcse(sq, method="mean"))


def test_warmup_pieces_give_the_same_numbers_on_numpy_jax_and_torch():
    """The shared window adaptation on a fixed stream of draws, two chains of three coordinates, with an
    acceptance that falls with the step size: numpy and torch run it in a Python loop, JAX in lax.scan (traced
    flags, lax.cond branches); all three end with the same step sizes and inverse mass matrices."""
    num_warmup = 200
    draws = np.random.default_rng(0).normal(size=(num_warmup, 2, 3)) * np.array([0.5, 1.0, 3.0])
    step0 = np.array([1.0, 0.3])

    def python_loop(to_array, exp):
        warm = adaptation.warmup(num_warmup, 0.574)
        state = warm.init(to_array(draws[0]), to_array(step0), to_array(np.ones((2, 3))))
        for t in range(num_warmup):
            state = warm.update(state, warm.schedule.at(t), to_array(draws[t]), exp(-state.step_size))
        return [np.asarray(v) for v in warm.final(state)]

    by_numpy = python_loop(np.asarray, np.exp)
    by_torch = python_loop(lambda a: torch.as_tensor(a, dtype=torch.float64), torch.exp)
    with jax.enable_x64(True):
        warm = adaptation.warmup(num_warmup, 0.574)
        schedule = adaptation.WarmupStage(*map(jnp.asarray, warm.schedule))

        def body(state, inputs):
            x, stage = inputs
            return warm.update(state, stage, x, jnp.exp(-state.step_size)), None

        state = warm.init(jnp.asarray(draws[0]), jnp.asarray(step0), jnp.ones((2, 3)))
        state, _ = jax.jit(lambda s: lax.scan(body, s, (jnp.asarray(draws), schedule)))(state)
        by_jax = [np.asarray(v) for v in warm.final(state)]
    assert not np.allclose(by_numpy[1], 1.0)  # the metric did adapt
    for ours, theirs in ((by_torch, by_numpy), (by_jax, by_numpy)):
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-12)
