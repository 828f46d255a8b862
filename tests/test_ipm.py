"""Integral probability metrics: blockwise MMD against a direct full-matrix computation, closed forms between
Gaussians held to 3 Monte Carlo standard errors, scipy's energy and Wasserstein distances, the permutation
test's level, and clear errors.

Replicated estimators: the standard error of a mean over R independent replicates is their sample standard
deviation over sqrt(R); |mean - closed form| < 3 SE fails with probability ~0.3% per check if the estimator is
unbiased, and systematically if it is not.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats
import torch

from probrep import divergences as dv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _full_mmd2(x, y, k, unbiased):
    """Direct computation from full kernel matrices built with torch.cdist: the reference for the blocks."""
    kxx, kyy, kxy = k(torch.cdist(x, x) ** 2), k(torch.cdist(y, y) ** 2), k(torch.cdist(x, y) ** 2)
    n, m = len(x), len(y)
    if unbiased:
        return (
            (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
            + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * kxy.mean()
        )
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()


def _mean_se(values):
    v = torch.as_tensor(values, dtype=torch.float64)
    return float(v.mean()), float(v.std()) / math.sqrt(len(v))


# ----------------------------------------------------------------------------------------------------- MMD
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize(
    "kernel, bandwidth, k",
    [
        ("rbf", 1.3, lambda d2: torch.exp(-d2 / (2 * 1.3**2))),
        ("rbf", 0.1, lambda d2: torch.exp(-d2 / 0.02)),  # |x|^2/h^2 > 700: the distance path, not the factorised one
        ("rbf", [0.5, 2.0], lambda d2: torch.exp(-d2 / 0.5) + torch.exp(-d2 / 8.0)),
        ("imq", 0.8, lambda d2: (1 + d2 / 0.64) ** -0.5),
    ],
)
def test_blockwise_mmd2_equals_full_matrix(kernel, bandwidth, k, unbiased):
    g = _gen(0)
    x = torch.randn(53, 4, generator=g, dtype=torch.float64)
    y = 0.5 + 1.2 * torch.randn(38, 4, generator=g, dtype=torch.float64)
    full = float(_full_mmd2(x, y, k, unbiased))
    for block in (7, 16, 1000):  # ragged blocks, several diagonal blocks, and a single block
        got = float(dv.mmd2(x, y, kernel, bandwidth, unbiased, block_size=block))
        assert abs(got - full) < 1e-12, (block, got, full)


def test_float32_blockwise_mmd2_is_accurate():
    # float32 inputs: each kernel sum (~0.4) carries ~1e-7 relative rounding, ~4e-8 absolute on MMD^2 = 0.012:
    # 1e-5 relative (1.2e-7) allows three such errors
    g = _gen(14)
    x, y = torch.randn(3000, 16, generator=g), 0.2 + torch.randn(2000, 16, generator=g)
    exact = float(_full_mmd2(x.double(), y.double(), lambda d2: torch.exp(-d2 / 32.0), True))
    assert float(dv.mmd2(x, y, "rbf", 4.0, block_size=512)) == pytest.approx(exact, rel=1e-5)


def test_mmd2_is_differentiable_through_the_blocks():
    g = _gen(1)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(15, 3, generator=g, dtype=torch.float64)
    (blocked,) = torch.autograd.grad(dv.mmd2(x, y, "rbf", 1.0, block_size=6), x)
    (direct,) = torch.autograd.grad(_full_mmd2(x, y, lambda d2: torch.exp(-d2 / 2), True), x)
    assert torch.allclose(blocked, direct, rtol=1e-9, atol=1e-12)


def test_median_heuristic_matches_scipy_pdist():
    g = _gen(2)
    x, y = torch.randn(300, 5, generator=g, dtype=torch.float64), torch.randn(200, 5, generator=g, dtype=torch.float64)
    pooled = torch.cat([x, y]).numpy()
    assert abs(dv.median_bandwidth(x, y) - float(np.median(scipy.spatial.distance.pdist(pooled)))) < 1e-10
    # bandwidth=None uses it
    h = dv.median_bandwidth(x, y)
    assert float(dv.mmd2(x, y)) == pytest.approx(float(dv.mmd2(x, y, "rbf", h)), abs=1e-14)


MU_Q, VAR_Q = torch.tensor([0.4, 0.0, -0.3]), torch.tensor([1.3, 0.8, 1.0])


@pytest.mark.parametrize("bandwidth", [1.5, [0.7, 2.0]])
def test_unbiased_mmd2_matches_the_gaussian_closed_form(bandwidth):
    closed = float(dv.gaussian_mmd2_rbf(torch.zeros(3), 1.0, MU_Q, VAR_Q, bandwidth))
    g = _gen(3)
    reps = []
    for _ in range(30):
        x = torch.randn(800, 3, generator=g, dtype=torch.float64)
        y = MU_Q + VAR_Q.sqrt() * torch.randn(800, 3, generator=g, dtype=torch.float64)
        reps.append(float(dv.mmd2(x, y, "rbf", bandwidth)))
    mean, se = _mean_se(reps)
    assert closed > 5 * se  # the check separates the closed form from 0
    assert abs(mean - closed) < 3 * se, (mean, se, closed)


def test_linear_time_mmd2_matches_the_closed_form_within_its_own_standard_error():
    closed = float(dv.gaussian_mmd2_rbf(torch.zeros(3), 1.0, MU_Q, VAR_Q, 1.5))
    g = _gen(4)
    x = torch.randn(100_000, 3, generator=g, dtype=torch.float64)
    y = MU_Q + VAR_Q.sqrt() * torch.randn(100_000, 3, generator=g, dtype=torch.float64)
    est = dv.mmd2_linear(x, y, "rbf", 1.5)
    assert est.n == 50_000 and closed > 5 * est.stderr
    assert abs(est.value - closed) < 3 * est.stderr, (est, closed)


def test_unbiased_mmd2_averages_zero_when_p_equals_q_and_the_v_statistic_is_positive():
    # Under P = Q, E[U] = 0 and E[V] = (1 - E k(X, X')) (1/n + 1/m), E k(X, X') in closed form.
    h, n = 1.0, 100
    assert abs(float(dv.gaussian_mmd2_rbf(torch.zeros(2), 1.0, torch.zeros(2), 1.0, h))) < 1e-15
    e_kxx = 1.0 / (1.0 + 2.0 / h**2)  # E exp(-|X - X'|^2 / 2h^2), X - X' ~ N(0, 2 I_2): |I + 2I/h^2|^(-1/2)
    g = _gen(5)
    us, vs = [], []
    for _ in range(200):
        x, y = torch.randn(n, 2, generator=g, dtype=torch.float64), torch.randn(n, 2, generator=g, dtype=torch.float64)
        us.append(float(dv.mmd2(x, y, "rbf", h, unbiased=True)))
        vs.append(float(dv.mmd2(x, y, "rbf", h, unbiased=False)))
    mu, su = _mean_se(us)
    mv, sv = _mean_se(vs)
    assert abs(mu) < 3 * su
    assert min(vs) > 0 and min(us) < 0  # U takes both signs; V is a squared RKHS norm
    assert abs(mv - (1 - e_kxx) * 2 / n) < 3 * sv, (mv, sv, (1 - e_kxx) * 2 / n)


def test_permutation_test_statistics_level_and_power():
    g = _gen(6)
    x, y = torch.randn(25, 2, generator=g, dtype=torch.float64), torch.randn(20, 2, generator=g, dtype=torch.float64)
    res = dv.mmd_permutation_test(x, y, "rbf", 1.0, num_permutations=50, seed=3, block_size=8)
    assert res.statistic == pytest.approx(float(dv.mmd2(x, y, "rbf", 1.0)), abs=1e-12)
    # the documented permutations: argsort of uniform noise from Generator().manual_seed(seed), first n are "x"
    order = torch.rand(50, 45, generator=torch.Generator().manual_seed(3)).argsort(dim=1)
    z = torch.cat([x, y])
    brute = torch.tensor([float(dv.mmd2(z[o[:25]], z[o[25:]], "rbf", 1.0)) for o in order], dtype=torch.float64)
    assert torch.allclose(res.null, brute, atol=1e-12)
    assert res.p_value == (1 + int((brute >= res.statistic - 1e-12).sum())) / 51
    # exact level: P(p <= 0.1) = floor(0.1 * 101) / 101 under P = Q; 200 tests, binomial sd 4.2, 3 sd band
    rejections = 0
    for i in range(200):
        a, b = torch.randn(30, 2, generator=g), torch.randn(30, 2, generator=g)
        rejections += dv.mmd_permutation_test(a, b, "rbf", 1.0, num_permutations=100, seed=i).p_value <= 0.1
    expected = 200 * 10 / 101
    assert abs(rejections - expected) < 3 * math.sqrt(expected * (1 - 10 / 101))
    # power: a shift of 1.5 sd in 2-D with 30 + 30 points is always detected
    a, b = torch.randn(30, 2, generator=g), 1.5 + torch.randn(30, 2, generator=g)
    assert dv.mmd_permutation_test(a, b, num_permutations=100).p_value == 1 / 101


# ------------------------------------------------------------------------------------------ energy distance
def test_energy_distance_equals_scipy_squared_and_is_zero_on_identical_samples():
    g = _gen(7)
    x = torch.randn(300, generator=g, dtype=torch.float64)
    y = 0.4 + 1.5 * torch.randn(217, generator=g, dtype=torch.float64)
    reference = scipy.stats.energy_distance(x.numpy(), y.numpy()) ** 2
    for block in (None, 13):
        assert float(dv.energy_distance(x, y, block_size=block)) == pytest.approx(reference, rel=1e-10)
    assert float(dv.energy_distance(x, x)) == 0.0
    # differentiable, with finite gradients at coincident points
    xg = x[:10].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(dv.energy_distance(xg, torch.cat([x[:10], y[:5]])), xg)
    assert bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_statistics_of_equal_samples_are_exactly_zero_in_blocks(dtype):
    x = torch.randn(301, 3, generator=_gen(8), dtype=dtype)
    for y in (x, x.clone()):  # the same object, or equal values
        assert float(dv.energy_distance(x, y, block_size=64)) == 0.0
        assert float(dv.mmd2(x, y, unbiased=False, block_size=64)) == 0.0
        assert float(dv.mmd2(x, y, "imq", 1.0, unbiased=False, block_size=64)) == 0.0


def test_equal_values_with_a_gradient_take_the_two_sample_path():
    """A tensor that needs a gradient and a constant with equal values are two samples: the cross sum must
    depend on x alone, so the gradient is that of the dense formula, not that of one symmetric sum."""
    x = torch.randn(40, 2, generator=_gen(9), dtype=torch.float64)
    xg, xd = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(dv.mmd2(xg, x, "rbf", 1.0, block_size=16), xg)
    (dense,) = torch.autograd.grad(_full_mmd2(xd, x, lambda d2: torch.exp(-0.5 * d2), unbiased=True), xd)
    torch.testing.assert_close(grad, dense, rtol=1e-9, atol=1e-12)
    assert float(grad.abs().max()) > 1e-6


@pytest.mark.parametrize("dim, shift, var_q", [(1, 0.7, 2.0), (3, 0.5, 2.25)])
def test_unbiased_energy_distance_matches_the_gaussian_closed_form(dim, shift, var_q):
    loc_q = torch.zeros(dim, dtype=torch.float64)
    loc_q[0] = shift
    closed = float(dv.gaussian_energy_distance(torch.zeros(dim), 1.0, loc_q, var_q))
    if dim == 1:  # independent 1-D form: E|Z| = s sqrt(2/pi) exp(-m^2/2s^2) + m (1 - 2 Phi(-m/s))

        def fold(m, s):
            return s * math.sqrt(2 / math.pi) * math.exp(-(m**2) / (2 * s**2)) + m * (
                1 - 2 * scipy.stats.norm.cdf(-m / s)
            )

        assert closed == pytest.approx(
            2 * fold(shift, math.sqrt(1 + var_q)) - fold(0, math.sqrt(2)) - fold(0, math.sqrt(2 * var_q)), rel=1e-12
        )
    g = _gen(8)
    reps = []
    for _ in range(30):
        x = torch.randn(500, dim, generator=g, dtype=torch.float64)
        y = loc_q + math.sqrt(var_q) * torch.randn(500, dim, generator=g, dtype=torch.float64)
        reps.append(float(dv.energy_distance(x, y, unbiased=True)))
    mean, se = _mean_se(reps)
    assert closed > 5 * se and abs(mean - closed) < 3 * se, (mean, se, closed)


# ---------------------------------------------------------------------------------------------- Wasserstein
def test_wasserstein_1d_matches_scipy_and_a_replicated_quantile_coupling():
    g = _gen(9)
    x = torch.randn(301, generator=g, dtype=torch.float64)
    y = 0.3 + 2.0 * torch.randn(128, generator=g, dtype=torch.float64)
    assert float(dv.wasserstein_1d(x, y)) == pytest.approx(scipy.stats.wasserstein_distance(x, y), rel=1e-12)
    # W_p for unequal sizes n, m: repeat each point lcm/n resp. lcm/m times, then sorted differences
    a, b = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    ra, rb = a.repeat_interleave(2).sort().values, b.repeat_interleave(3).sort().values
    for p in (1.0, 2.0, 3.5):
        expected = float(((ra - rb).abs() ** p).mean() ** (1 / p))
        assert float(dv.wasserstein_1d(a, b, p=p)) == pytest.approx(expected, rel=1e-12)


def test_wasserstein_between_gaussian_samples_matches_closed_forms():
    # N(0, 1) vs N(0.5, 1.5^2): W2^2 = 0.5^2 + 0.5^2; W1 = E|0.5 + 0.5 Z| (quantile coupling) = folded normal mean.
    # Empirical W_p carries an O(log log n / n) ~ 1e-4 bias, 20x below the 3 SE band here.
    w2 = float(dv.gaussian_w2(0.0, 1.0, 0.5, 2.25))
    assert w2 == pytest.approx(math.sqrt(0.5), rel=1e-12)
    w1 = 0.5 * math.sqrt(2 / math.pi) * math.exp(-0.5) + 0.5 * (1 - 2 * scipy.stats.norm.cdf(-1.0))
    g = _gen(10)
    r1, r2 = [], []
    for _ in range(20):
        x = torch.randn(20_000, generator=g, dtype=torch.float64)
        y = 0.5 + 1.5 * torch.randn(20_000, generator=g, dtype=torch.float64)
        r1.append(float(dv.wasserstein_1d(x, y, p=1)))
        r2.append(float(dv.wasserstein_1d(x, y, p=2)))
    (m1, s1), (m2, s2) = _mean_se(r1), _mean_se(r2)
    assert abs(m1 - w1) < 3 * s1 and abs(m2 - w2) < 3 * s2, (m1, s1, w1, m2, s2, w2)


def test_gaussian_w2_matrix_formula_against_scipy_sqrtm():
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    s1, s2 = a @ a.T + 0.5 * np.eye(3), b @ b.T + 0.5 * np.eye(3)  # non-commuting
    m1, m2 = rng.normal(size=3), rng.normal(size=3)
    root = scipy.linalg.sqrtm(s1).real
    expected = math.sqrt(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(root @ s2 @ root).real))
    got = float(dv.gaussian_w2(m1, s1, m2, s2))
    assert got == pytest.approx(expected, rel=1e-9)
    assert float(dv.gaussian_w2(m2, s2, m1, s1)) == pytest.approx(got, rel=1e-9)  # symmetric
    assert float(dv.gaussian_w2(m1, s1, m1, s1)) < 1e-6


def test_sliced_wasserstein_matches_the_isotropic_closed_form():
    # N(0, I_4) vs N(m, 1.3^2 I_4): SW_2^2 = |m|^2 / d + (1.3 - 1)^2. Replicates redraw samples and directions.
    m = torch.tensor([1.0, -0.5, 0.0, 0.5], dtype=torch.float64)
    closed = float(m.pow(2).sum() / 4 + 0.09)
    g = _gen(12)
    reps = []
    for seed in range(20):
        x = torch.randn(4000, 4, generator=g, dtype=torch.float64)
        y = m + 1.3 * torch.randn(4000, 4, generator=g, dtype=torch.float64)
        reps.append(float(dv.sliced_wasserstein(x, y, p=2, num_projections=64, seed=seed)) ** 2)
    mean, se = _mean_se(reps)
    assert abs(mean - closed) < 3 * se, (mean, se, closed)


def test_sliced_wasserstein_with_given_directions_is_an_average_of_1d_distances():
    g = _gen(15)
    x, y = torch.randn(300, 3, generator=g, dtype=torch.float64), torch.randn(200, 3, generator=g, dtype=torch.float64)
    dirs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 3.0, 4.0]], dtype=torch.float64)  # the second is normalised to /5
    unit = dirs / dirs.norm(dim=1, keepdim=True)
    per = [float(dv.wasserstein_1d(x @ u, y @ u, p=2)) ** 2 for u in unit]
    got = float(dv.sliced_wasserstein(x, y, p=2, directions=dirs))
    assert got == pytest.approx(math.sqrt(sum(per) / 2), rel=1e-12)
    with pytest.raises(ValueError, match=r"directions must be \[k, 3\]"):
        dv.sliced_wasserstein(x, y, directions=torch.ones(2, 4))


# ----------------------------------------------------------------------------------------- devices, errors
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_blockwise_mmd_on_gpu_matches_cpu():
    g = _gen(13)
    x, y = torch.randn(3000, 16, generator=g), 0.1 + torch.randn(2500, 16, generator=g)
    cpu = float(dv.mmd2(x, y, "rbf", 4.0, block_size=512))
    out = dv.mmd2(x.cuda(), y.cuda(), "rbf", 4.0, block_size=1024)
    assert out.device.type == "cuda"
    assert abs(float(out) - cpu) < 1e-5
    assert dv.mmd2(x, y, "rbf", 4.0, device="cuda").device.type == "cuda"


def test_results_stay_on_the_inputs_device_and_dtype(device):
    x = torch.randn(10, 2, dtype=torch.float64, device=device)
    y = torch.randn(12, 2, dtype=torch.float64, device=device)
    outs = (dv.mmd2(x, y), dv.energy_distance(x, y), dv.sliced_wasserstein(x, y), dv.wasserstein_1d(x[:, 0], y[:, 0]))
    for out in outs:
        assert out.device == x.device and out.dtype == torch.float64 and out.dim() == 0
    # a numpy array joins the tensor's device
    mixed = float(dv.mmd2(x.cpu().numpy(), y, "rbf", 1.0))
    assert mixed == pytest.approx(float(dv.mmd2(x, y, "rbf", 1.0)), abs=1e-12)


def test_bad_inputs_raise_clear_errors():
    x, y = torch.randn(10, 3), torch.randn(10, 4)
    with pytest.raises(ValueError, match=r"x and y must have the same dimension, got 3 and 4"):
        dv.mmd2(x, y)
    with pytest.raises(ValueError, match=r"unknown kernel 'laplace'.*'rbf', 'imq'"):
        dv.mmd2(x, x, kernel="laplace")
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        dv.mmd2(x, x, bandwidth=-1.0)
    with pytest.raises(ValueError, match="x needs at least 2 samples"):
        dv.mmd2(x[:1], x)
    with pytest.raises(ValueError, match="y contains NaN"):
        dv.energy_distance(x, torch.full((4, 3), math.nan))
    with pytest.raises(ValueError, match="as many x as y"):
        dv.mmd2_linear(x, torch.randn(12, 3))
    with pytest.raises(ValueError, match="use sliced_wasserstein"):
        dv.wasserstein_1d(x, x)
    with pytest.raises(ValueError, match="p must be a finite number >= 1"):
        dv.wasserstein_1d(x[:, 0], x[:, 0], p=0.5)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1"):
        dv.mmd2(x, x, block_size=0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        dv.mmd2("abc", x)
    with pytest.raises(ValueError, match="bandwidth 0"):
        dv.mmd2(torch.zeros(10, 2), torch.zeros(10, 2))
    with pytest.raises(ValueError, match="cov_q is not positive definite"):
        dv.gaussian_w2(0.0, 1.0, 0.0, -1.0)
