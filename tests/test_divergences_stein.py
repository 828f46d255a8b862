"""Score-based discrepancies: the kernel Stein discrepancy against an independent double integral, and the
Fisher divergence against its Gaussian closed form (3 Monte Carlo standard errors; see test_ipm.py)."""

import math

import pytest
import torch
from scipy import integrate

from probrep import divergences as dv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mean_se(values):
    v = torch.as_tensor(values, dtype=torch.float64)
    return float(v.mean()), float(v.std()) / math.sqrt(len(v))


MQ, SQ = 0.5, 1.2  # samples from q = N(0.5, 1.2^2), target p = N(0, 1) with score -x


def _ksd2_reference(kernel, h):
    """KSD^2 = E_{x,x' ~ q}[delta(x) k(x - x') delta(x')] with delta = s_p - s_q = a x + b (Liu et al. 2016,
    Thm 3.6), which never uses the Stein kernel u_p. With u = x - x' ~ N(0, 2 sq^2) independent of
    s = x + x' ~ N(2 mq, 2 sq^2), and x x' = (s^2 - u^2)/4, it is the 1-D integral
    E_u[(a^2 (E s^2 - u^2) / 4 + a b E s + b^2) k(u)], done by adaptive quadrature to ~1e-12."""
    a, b = -1 + 1 / SQ**2, -MQ / SQ**2
    es, es2, var_u = 2 * MQ, 2 * SQ**2 + 4 * MQ**2, 2 * SQ**2

    def integrand(u):
        k = math.exp(-(u**2) / (2 * h**2)) if kernel == "rbf" else (1 + u**2 / h**2) ** -0.5
        density = math.exp(-(u**2) / (2 * var_u)) / math.sqrt(2 * math.pi * var_u)
        return density * (a**2 * (es2 - u**2) / 4 + a * b * es + b**2) * k

    return integrate.quad(integrand, -30, 30, epsabs=1e-13, epsrel=1e-12, limit=200)[0]


@pytest.mark.parametrize("kernel, h", [("rbf", 1.0), ("imq", 1.0), ("imq", 0.6)])
def test_ksd_matches_the_double_integral(kernel, h):
    reference = _ksd2_reference(kernel, h)
    g = torch.Generator().manual_seed(0)
    reps = []
    for _ in range(20):
        x = MQ + SQ * torch.randn(500, 1, generator=g, dtype=torch.float64)
        reps.append(float(dv.ksd2(x, lambda z: -z, kernel=kernel, bandwidth=h)))
    mean, se = _mean_se(reps)
    assert reference > 5 * se and abs(mean - reference) < 3 * se, (mean, se, reference)


def test_ksd_is_zero_on_average_for_exact_samples_and_blockwise_exact():
    g = torch.Generator().manual_seed(1)
    cov = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=torch.float64)
    chol, prec = torch.linalg.cholesky(cov), torch.linalg.inv(cov)

    def score(z):
        return -z @ prec

    reps = []
    for _ in range(20):
        x = torch.randn(400, 2, generator=g, dtype=torch.float64) @ chol.T
        reps.append(float(dv.ksd2(x, score)))
    mean, se = _mean_se(reps)
    assert abs(mean) < 3 * se
    # blocks of 7 give the single-block value; the V-statistic is a squared norm (>= 0) and exceeds U
    x = torch.randn(60, 2, generator=g, dtype=torch.float64) @ chol.T
    one = float(dv.ksd2(x, score, block_size=1000))
    assert float(dv.ksd2(x, score, block_size=7)) == pytest.approx(one, abs=1e-12)
    v = float(dv.ksd2(x, score, unbiased=False, block_size=7))
    assert v > 0 and v == pytest.approx(float(dv.ksd2(x, score(x), unbiased=False)), abs=1e-12)
    # a sampler with the wrong spread is detected: KSD of 1.5x-scaled draws is far above exact draws'
    wide = float(dv.ksd2(1.5 * torch.randn(400, 2, generator=g, dtype=torch.float64) @ chol.T, score))
    assert wide > 10 * (abs(mean) + 3 * se)


def test_fisher_divergence_monte_carlo_and_closed_form():
    m1, m2 = torch.tensor([0.3, -0.2], dtype=torch.float64), torch.tensor([-0.1, 0.4], dtype=torch.float64)
    s1 = torch.tensor([[1.0, 0.3], [0.3, 0.7]], dtype=torch.float64)
    s2 = torch.tensor([[1.5, -0.2], [-0.2, 1.1]], dtype=torch.float64)
    closed = float(dv.gaussian_fisher_divergence(m1, s1, m2, s2))
    g = torch.Generator().manual_seed(2)
    x = m1 + torch.randn(100_000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    p1, p2 = torch.linalg.inv(s1), torch.linalg.inv(s2)
    est = dv.fisher_divergence(x, lambda z: -(z - m1) @ p1, lambda z: -(z - m2) @ p2)
    assert abs(est.value - closed) < 3 * est.stderr, (est, closed)

    # 1-D against quadrature of the definition
    def integrand(z):
        p = math.exp(-0.5 * (z - 0.3) ** 2 / 0.7) / math.sqrt(2 * math.pi * 0.7)
        return p * (-(z - 0.3) / 0.7 + (z + 0.1) / 1.5) ** 2

    assert float(dv.gaussian_fisher_divergence(0.3, 0.7, -0.1, 1.5)) == pytest.approx(
        integrate.quad(integrand, -20, 20, epsabs=1e-13)[0], rel=1e-9
    )


def test_bad_inputs_raise_clear_errors():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match=r"score must have the shape of the samples \(10, 2\), got \(10, 3\)"):
        dv.ksd2(x, torch.zeros(10, 3))
    with pytest.raises(ValueError, match=r"unknown kernel 'gauss'.*'imq', 'rbf'"):
        dv.ksd2(x, lambda z: -z, kernel="gauss")
    with pytest.raises(ValueError, match="beta must lie in"):
        dv.ksd2(x, lambda z: -z, beta=-1.5)
    with pytest.raises(ValueError, match="score_q contains NaN"):
        dv.fisher_divergence(x, lambda z: -z, lambda z: z * math.nan)
