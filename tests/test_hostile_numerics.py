"""Numerics that refuse instead of lying (issue 19, section 3): hostile data and extreme scales either give the
right number (checked against float64 references written here) or a clear error, never NaN or a silent wrong
answer, and never a hang."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.utils.data import TensorDataset

from probrep import divergences as dv
from probrep.causal import irs
from probrep.inference import svi
from probrep.models import VAE
from probrep.training import checkpoint


# ------------------------------------------------------------------------------------------------------ SVI
def _mean_model(x):
    m = pyro.param("m", torch.tensor(0.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(m, 1.0), obs=x)


def _no_guide(x):
    pass


def _late_nan(n=256, row=200):
    x = torch.randn(n, generator=torch.Generator().manual_seed(0))
    x[row] = float("nan")
    return x


def _fit_mean(data, **kwargs):
    options = {"guide": _no_guide, "steps": 20, "batch_size": 16, "shuffle": False, "progress": False}
    return svi.fit(_mean_model, data, **{**options, **kwargs})


def test_nan_in_a_late_row_is_refused_before_training_and_the_row_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"1 of 256 rows, the first at row 200"):
        _fit_mean(_late_nan(), checkpoint_dir=tmp_path, checkpoint_every=5)
    assert checkpoint.list_checkpoints(tmp_path) == []  # refused before step 1, not at step 13


def test_a_step_that_fails_mid_run_saves_the_last_good_state_and_names_the_step(tmp_path):
    # a Dataset is not scanned up front: the NaN in row 200 reaches the loss at step 13 (rows 192..207)
    with pytest.raises(FloatingPointError, match=r"step 13.*data row\(s\) \[200\]") as caught:
        _fit_mean(TensorDataset(_late_nan()), checkpoint_dir=tmp_path, checkpoint_every=100)
    assert any("raised at step 13 of 20" in note for note in caught.value.__notes__)
    saved = checkpoint.list_checkpoints(tmp_path)
    assert [p.name for p in saved] == ["checkpoint-00000012.pt"]
    state = checkpoint.load(saved[0])
    assert state["step"] == 12 and torch.isfinite(state["params"]["m"]).all()


def _vae():
    torch.manual_seed(0)  # the same initial weights for every call
    return VAE((1, 4, 4), 2, arch="mlp", hidden=(8,))


def _binary_images(n=64):
    return (torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(1)) > 0.5).float()


def test_bernoulli_targets_outside_0_1_in_a_later_batch_are_refused():
    x = _binary_images()
    x[40, 0, 2, 3] = 3.0  # batch 3 of 4: Pyro validates only the first
    with pytest.raises(ValueError, match=r"bernoulli likelihood takes values 0 or 1.*row 40 \(3.0\)"):
        svi.fit(_vae(), x, steps=4, batch_size=16, shuffle=False, progress=False)


@pytest.mark.parametrize(
    "convert",
    [lambda x: x.double(), lambda x: x.long(), lambda x: x.to(torch.uint8), lambda x: x.numpy().astype(np.float64)],
)
def test_integer_and_float64_data_train_as_the_models_float32(convert):
    x = _binary_images()
    reference = svi.fit(_vae(), x, steps=3, batch_size=16, seed=0, progress=False)
    converted = svi.fit(_vae(), convert(x), steps=3, batch_size=16, seed=0, progress=False)
    np.testing.assert_allclose(converted.losses, reference.losses, rtol=1e-6)


def test_float64_data_beyond_float32_is_refused_with_the_row():
    x = torch.zeros(32, 1, 4, 4, dtype=torch.float64)
    x[7, 0, 0, 0] = 1e300
    vae = VAE((1, 4, 4), 2, arch="mlp", hidden=(8,), likelihood="gaussian")
    with pytest.raises(ValueError, match=r"row 7 overflows"):
        svi.fit(vae, x, steps=1, progress=False)


def test_learning_rates_must_be_finite():
    x = torch.randn(32)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        _fit_mean(x, lr=float("inf"))
    with pytest.raises(ValueError, match=r"lr_schedule\(3\) = inf"):
        _fit_mean(x, lr_schedule=lambda step: math.inf if step == 3 else 1.0)


# ------------------------------------------------------------------------------------------------------ IRS
def _factors_and_codes(n=500, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 4, size=(n, 2))
    return f, f + 0.2 * rng.normal(size=(n, 2))


def test_irs_is_scale_free_up_to_the_float64_limit():
    f, z = _factors_and_codes()
    base = irs(f, z)
    for scale in (1e307, 1e-300):
        res = irs(f, z * scale)
        assert math.isfinite(res.score) and res.score == pytest.approx(base.score, rel=1e-12)
        np.testing.assert_allclose(res.matrix, base.matrix, rtol=1e-10)


def test_irs_a_constant_code_column_is_inactive():
    f, z = _factors_and_codes()
    constant = np.full((500, 1), 2.6)
    assert constant.var() > 0  # float rounding: the mean of 500 x 2.6 is not 2.6
    res = irs(f, np.c_[z, constant])
    assert list(res.active) == [True, True, False] and res.num_active_dims == 2
    assert res.max_deviations[2] == 0.0 and np.isnan(res.per_latent[2])
    assert res.score == pytest.approx(irs(f, z).score, abs=1e-15)


def test_irs_refuses_continuous_factors_unless_binned():
    rng = np.random.default_rng(3)
    factors = rng.uniform(size=(400, 2))
    independent = rng.normal(size=(400, 2))
    with pytest.raises(ValueError, match="must hold integer factor classes.*num_bins"):
        irs(factors, independent)  # each value its own group: it used to score a perfect 1.0
    assert irs(factors, independent, num_bins=10).score < 0.5


# ----------------------------------------------------------------------------------------------- divergences
def _pairwise(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def _mmd2_reference(x, y, h):
    """U-statistic MMD^2 with a Gaussian kernel, float64, from direct differences (no cancellation)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    kxx, kyy, kxy = (np.exp(-(_pairwise(a, b) ** 2) / (2 * h**2)) for a, b in ((x, x), (y, y), (x, y)))
    n, m = len(x), len(y)
    return (kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean()


def _energy_reference(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return 2 * _pairwise(x, y).mean() - _pairwise(x, x).mean() - _pairwise(y, y).mean()


def _clusters(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g)
    x = torch.cat([a[:100] + 1e4, a[100:] - 1e4])
    y = torch.cat([b[:150] + 1e4, b[150:] - 1e4])
    return x.to(dtype), y.to(dtype)


def test_float32_mmd2_on_far_clusters_matches_float64():
    x, y = _clusters()
    for h in (1.0, 3.0):
        reference = _mmd2_reference(x.numpy(), y.numpy(), h)
        assert float(dv.mmd2(x, y, bandwidth=h)) == pytest.approx(reference, rel=1e-5)
    h = dv.median_bandwidth(x.double(), y.double())
    assert float(dv.mmd2(x, y)) == pytest.approx(_mmd2_reference(x.numpy(), y.numpy(), h), rel=1e-5)


def test_float16_mmd2_and_energy_distance_are_finite_and_right():
    g = torch.Generator().manual_seed(1)
    a, b = 20.0 * torch.randn(100, 2, generator=g), 20.0 * torch.randn(100, 2, generator=g)
    sign = torch.where(torch.arange(100) % 3 == 0, 1.0, -1.0)[:, None]
    x, y = (a + 300.0 * sign).half(), (b - 300.0 * sign).half()  # |a|^2 ~ 9e4 > 65504, the float16 limit
    mmd = dv.mmd2(x, y, bandwidth=20.0)
    assert mmd.dtype == torch.float16
    assert float(mmd) == pytest.approx(_mmd2_reference(x.float().numpy(), y.float().numpy(), 20.0), rel=2e-3, abs=1e-4)
    energy = dv.energy_distance(x, y)
    assert float(energy) == pytest.approx(_energy_reference(x.float().numpy(), y.float().numpy()), rel=2e-3)


def test_inputs_at_1e20_give_the_numbers_of_inputs_at_1():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(150, 3, generator=g), 0.5 + torch.randn(120, 3, generator=g)
    directions = torch.randn(16, 3, generator=g)
    for big in (1e20, 1e-20):
        bx, by = x * big, y * big
        assert float(dv.mmd2(bx, by)) == pytest.approx(float(dv.mmd2(x, y)), rel=1e-5)
        assert float(dv.mmd2(bx, by, bandwidth=big)) == pytest.approx(_mmd2_reference(x, y, 1.0), rel=1e-5)
        energy = float(dv.energy_distance(bx, by))
        assert energy == pytest.approx(big * _energy_reference(x.numpy(), y.numpy()), rel=1e-5)
        sliced = float(dv.sliced_wasserstein(bx, by, directions=directions))
        assert sliced == pytest.approx(big * float(dv.sliced_wasserstein(x, y, directions=directions)), rel=1e-5)
        assert float(dv.wasserstein_1d(bx[:, 0], by[:, 0])) == pytest.approx(
            big * float(dv.wasserstein_1d(x[:, 0], y[:, 0])), rel=1e-5
        )


def test_sliced_wasserstein_matches_a_float64_reference():
    g = torch.Generator().manual_seed(4)
    x, y = 1e20 * torch.randn(64, 2, generator=g), 1e20 * (1.0 + torch.randn(64, 2, generator=g))
    theta = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    xs, ys, t = x.double().numpy(), y.double().numpy(), theta.double().numpy()
    reference = np.sqrt(np.mean([np.mean((np.sort(xs @ d) - np.sort(ys @ d)) ** 2) for d in t]))
    assert float(dv.sliced_wasserstein(x, y, p=2, directions=theta)) == pytest.approx(reference, rel=1e-5)


def test_permutation_test_on_identical_samples_at_1e20_does_not_reject():
    x = 1e20 * torch.randn(60, 3, generator=torch.Generator().manual_seed(5))
    result = dv.mmd_permutation_test(x, x.clone(), num_permutations=99)
    assert math.isfinite(result.statistic) and result.p_value > 0.5


def test_permutation_test_refuses_a_p_value_for_a_nan_statistic():
    x, y = torch.randn(20, 2), torch.randn(20, 2)
    with pytest.raises(FloatingPointError, match="no p-value"):
        dv.mmd_permutation_test(x, y, kernel=lambda d2: d2 * float("nan"), num_permutations=9)


@pytest.mark.parametrize(
    "fn", [dv.mmd2, dv.energy_distance, dv.sliced_wasserstein, dv.mmd_permutation_test, dv.mmd2_linear]
)
def test_empty_x_is_a_clear_error(fn):
    with pytest.raises(ValueError, match=r"x is empty \(shape \(0, 3\)\)"):
        fn(torch.zeros(0, 3), torch.randn(10, 3))


# ---------------------------------------------------------------------------------------------------- MCMC
def _spiked_model():
    """N(0, 1) with a log density of +inf on (1, 1.2): a region that no sampler may return draws from."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd

    x = numpyro.sample("x", nd.Normal(0.0, 1.0))
    numpyro.factor("spike", jnp.where((x > 1.0) & (x < 1.2), jnp.inf, 0.0))


@pytest.mark.timeout(240, method="thread")  # unguarded HMC never finishes a transition here
@pytest.mark.parametrize("kernel", ["nuts", "hmc"])
def test_nuts_and_hmc_treat_an_infinite_log_density_as_a_divergence(kernel):
    import warnings

    from probrep.inference import mcmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the divergences are expected, and diagnose() says so
        idata = mcmc.sample(
            _spiked_model,
            kernel=kernel,
            num_warmup=300,
            num_samples=300,
            num_chains=1,
            progress=False,
            log_likelihood=False,
            posterior_predictive=False,
            prior=False,
        )
    x = idata.posterior["x"].values.reshape(-1)
    assert not np.any((x > 1.0) & (x < 1.2))  # unguarded NUTS returns every draw in there (step size 1e-38)
    assert float(idata.sample_stats["step_size"].values.min()) > 1e-3
    assert 0.5 < float(x.std()) < 1.5
