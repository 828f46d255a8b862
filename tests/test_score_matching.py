"""Score matching objectives against closed forms (float64)."""

import math

import numpy as np
import pytest
import torch

from probrep.inference import score_matching as sm


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _mlp_score(dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    w1, w2 = torch.randn(dim, 16, generator=g) / 2, torch.randn(16, dim, generator=g) / 4
    b1 = torch.randn(16, generator=g) / 3
    return lambda x: -x + torch.tanh(x @ w1 + b1) @ w2


def test_exact_score_matching_of_a_gaussian_is_the_maximum_likelihood_fit(device):
    g = torch.Generator().manual_seed(0)
    d, n = 3, 400
    mix = torch.randn(d, d, generator=g)
    x = (torch.randn(n, d, generator=g) @ mix + torch.tensor([1.0, -2.0, 0.5])).to(device)
    # model score s(x) = -P x + b: the objective is quadratic in the natural parameters (P, b)
    a = torch.eye(d, device=device).clone().requires_grad_(True)
    b = torch.zeros(d, device=device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [a, b], max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        p = 0.5 * (a + a.T)
        loss = sm.exact(lambda z: -z @ p + b, x)
        loss.backward()
        return loss

    opt.step(closure)
    p = 0.5 * (a + a.T).detach()
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / n  # the 1/N maximum-likelihood covariance
    np.testing.assert_allclose(p.cpu(), torch.linalg.inv(cov).cpu(), atol=1e-6)
    np.testing.assert_allclose(torch.linalg.solve(p, b.detach()).cpu(), mean.cpu(), atol=1e-6)


def test_exponential_family_minimiser_is_the_closed_form():
    # 1-D family log p(x) = t1 x + t2 x^2 + t3 x^4 - log Z: score = t . T'(x), T' = (1, 2x, 4x^3);
    # objective = 1/2 t' E[T' T'^T] t + t' E[T''] with T'' = (0, 2, 12 x^2), minimised at -E[T'T'^T]^-1 E[T'']
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 1, generator=g) * 0.8 + 0.3
    dt = torch.cat([torch.ones_like(x), 2 * x, 4 * x**3], 1)
    ddt = torch.cat([torch.zeros_like(x), 2 * torch.ones_like(x), 12 * x**2], 1)
    closed = -torch.linalg.solve(dt.T @ dt / len(x), ddt.mean(0))
    theta = torch.zeros(3, requires_grad=True)
    opt = torch.optim.LBFGS(
        [theta], max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = sm.exact(lambda z: theta[0] + 2 * theta[1] * z + 4 * theta[2] * z**3, x)
        loss.backward()
        return loss

    opt.step(closure)
    np.testing.assert_allclose(theta.detach(), closed, atol=1e-6)


def test_exact_objective_plus_data_score_term_is_half_the_fisher_divergence():
    # integration by parts holds in expectation; Gauss-Hermite quadrature makes the expectation exact to ~1e-12
    m, s = 0.3, 1.2
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    x = torch.tensor(m + s * nodes).reshape(-1, 1)
    w = torch.tensor(weights / weights.sum())
    score = _mlp_score(1, seed=2)
    data_score = -(x - m) / s**2
    lhs = (w * (sm.exact(score, x, reduction="none") + 0.5 * data_score.pow(2).sum(1))).sum()
    fisher = (w * (score(x) - data_score).pow(2).sum(1)).sum()
    assert abs(lhs.item() - 0.5 * fisher.item()) < 1e-6


def test_denoising_linear_score_optimum_and_minimum():
    # N(0, 1) data, sigma = 0.5, s(x) = a x: loss(a) = 1/2 (1.25 a^2 + 2 a + 4): optimum -0.8, minimum 1.6
    n = 200_000
    x = torch.randn(n, 1, generator=torch.Generator().manual_seed(3))
    a = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([a], max_iter=100, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    def loss_at(a_value, reduction="mean"):  # the same noise on every call: a deterministic empirical loss
        return sm.denoising(
            lambda z: a_value * z, x, 0.5, generator=torch.Generator().manual_seed(4), reduction=reduction
        )

    def closure():
        opt.zero_grad()
        loss = loss_at(a)
        loss.backward()
        return loss

    opt.step(closure)
    per_example = loss_at(torch.tensor(-0.8), reduction="none")
    assert abs(per_example.mean().item() - 1.6) < 3 * per_example.std().item() / math.sqrt(n)
    # standard error of the empirical minimiser a^ = -sum(x~ e / sigma) / sum(x~^2), by the delta method
    e = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    xt = x + 0.5 * e
    influence = (xt * (-0.8 * xt + e / 0.5)).squeeze(1) / 1.25  # a^ - a* ~ -mean(x~ (a* x~ + e/sigma)) / E x~^2
    se = influence.std().item() / math.sqrt(n)
    assert abs(a.item() + 0.8) < 3 * se


def test_noise_conditional_denoising_weights_by_sigma_squared():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(5))
    sigmas = torch.tensor([1.0, 0.5, 0.1])
    ideal = lambda z, s: -z / (1 + s**2)  # noqa: E731  the exact score of N(0, (1 + s^2) I)
    values = sm.denoising(ideal, x, sigmas, generator=torch.Generator().manual_seed(6), reduction="none")
    # recompute by hand with the same draws (noise first, then levels)
    g = torch.Generator().manual_seed(6)
    e = torch.randn(x.shape, generator=g)
    level = torch.randint(0, 3, (64,), generator=g)
    s = sigmas[level][:, None]
    expected = 0.5 * s[:, 0] ** 2 * (ideal(x + s * e, s) + e / s).pow(2).sum(1)
    np.testing.assert_allclose(values, expected, rtol=1e-12)


@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
@pytest.mark.parametrize("variance_reduction", [False, True])
def test_sliced_averages_to_the_exact_objective(projection, variance_reduction):
    d = 5
    x = torch.randn(32, d, generator=torch.Generator().manual_seed(7)) * 1.3
    score = _mlp_score(d, seed=8)
    exact = sm.exact(score, x).item()
    draws = torch.stack([
        sm.sliced(score, x, n_projections=1, variance_reduction=variance_reduction, projection=projection,
                  generator=torch.Generator().manual_seed(100 + i))
        for i in range(400)
    ])  # fmt: skip
    se = draws.std().item() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - exact) < 3 * se


def test_score_from_energy_and_log_density():
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(9))
    energy = lambda z: 0.5 * (z**2).sum(1) + z[:, 0] ** 3  # noqa: E731
    score = sm.score_from_energy(energy)(x)
    expected = -x.clone()
    expected[:, 0] -= 3 * x[:, 0] ** 2
    np.testing.assert_allclose(score.detach(), expected, rtol=1e-12)
    np.testing.assert_allclose(sm.score_from_log_density(lambda z: -energy(z))(x).detach(), expected, rtol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        sm.exact(lambda z: z[:, :1], torch.zeros(4, 2))
    with pytest.raises(ValueError, match="sigma"):
        sm.denoising(lambda z: z, torch.zeros(4, 2), -1.0)
    with pytest.raises(ValueError, match="projection"):
        sm.sliced(lambda z: z, torch.zeros(4, 2), projection="sphere")
    with pytest.raises(TypeError):
        sm.exact(lambda z: z, np.zeros((4, 2)))
