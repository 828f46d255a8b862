"""DIP-VAE-I/II and the AnnealedVAE: their losses against hand computations (float64, fixed weights, fixed
noise), the capacity annealed by the shared schedule callback, and bad settings named."""

import numpy as np
import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from probrep.models.vae_regularised import DIPVAE, AnnealedVAE, dip_penalty
from probrep.training.schedules import AnnealAttribute, linear_anneal

SHAPE = (1, 32, 32)
D = 4


def _images(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *SHAPE, generator=g) > 0.6).double()


def _posterior(m, x):
    out = m.encoder(x)
    return out[:, :D], F.softplus(out[:, D:]) + 1e-5


def _z(m, x, seed):
    pyro.set_rng_seed(seed)
    return poutine.trace(m.guide).get_trace(x).nodes["z"]["value"]


def _loss(elbo, m, x, seed):
    pyro.set_rng_seed(seed)
    return elbo.differentiable_loss(m.model, m.guide, x)


def _nll(m, z, x):
    return F.binary_cross_entropy_with_logits(m.decoder(z), x, reduction="sum")


def _kl(loc, scale):
    return 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * torch.log(scale)).sum(-1)


def test_dip_penalty_by_hand_on_a_known_covariance():
    loc = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=torch.float64)
    scale = torch.full_like(loc, 0.5)
    # Cov of the means: diag(0.5, 2), no off-diagonal; type ii adds the mean variance 0.25
    assert float(dip_penalty(loc, scale, "i", 10.0, 100.0)) == pytest.approx(100.0 * (0.25 + 1.0))
    assert float(dip_penalty(loc, scale, "ii", 10.0, 10.0)) == pytest.approx(10.0 * (0.0625 + 1.5625))
    skew = loc @ torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=torch.float64)  # Cov now has 0.25 off-diagonal
    cov = np.cov(skew.numpy().T, bias=True)
    expected = 3.0 * 2 * cov[0, 1] ** 2 + 7.0 * ((np.diag(cov) - 1) ** 2).sum()
    assert float(dip_penalty(skew, scale, "i", 3.0, 7.0)) == pytest.approx(expected)


@pytest.mark.parametrize("dip_type", ["i", "ii"])
def test_dip_vae_loss_is_the_negative_elbo_plus_batch_size_times_the_penalty(dip_type):
    torch.manual_seed(0)
    m = DIPVAE(SHAPE, latent_dim=D, arch="mlp", hidden=(32,), dip_type=dip_type, lambda_od=2.0).double()
    assert m.lambda_d == (20.0 if dip_type == "i" else 2.0)  # disentanglement_lib's defaults
    x = _images()
    loc, scale = _posterior(m, x)
    z = _z(m, x, 3)
    penalty = len(x) * dip_penalty(loc, scale, dip_type, 2.0, m.lambda_d)
    loss = _loss(TraceMeanField_ELBO(), m, x, seed=3)
    assert loss.item() == pytest.approx((_nll(m, z, x) + _kl(loc, scale).sum() + penalty).item(), rel=1e-9)
    # the Monte Carlo ELBO: log q(z|x) - log p(z) at the drawn z in place of the KL, the same penalty
    log_ratio = torch.distributions.Normal(loc, scale).log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)
    mc = _loss(Trace_ELBO(), m, x, seed=3)
    assert mc.item() == pytest.approx((_nll(m, z, x) + log_ratio.sum() + penalty).item(), rel=1e-9)


def test_annealed_vae_loss_is_reconstruction_plus_gamma_times_the_capacity_gap():
    torch.manual_seed(0)
    m = AnnealedVAE(SHAPE, latent_dim=D, arch="mlp", hidden=(32,), capacity_weight=100.0, c_max=5.0).double()
    x = _images()
    loc, scale = _posterior(m, x)
    for capacity in (0.0, 3.0):
        m.capacity = capacity
        loss = _loss(TraceMeanField_ELBO(), m, x, seed=4)
        gap = (_kl(loc, scale).mean() - capacity).abs()
        assert loss.item() == pytest.approx((_nll(m, _z(m, x, 4), x) + len(x) * 100.0 * gap).item(), rel=1e-9)


def test_annealed_vae_capacity_follows_the_schedule_and_bad_settings_are_named():
    m = AnnealedVAE(SHAPE, latent_dim=D, arch="mlp", hidden=(16,), c_max=25.0)
    callback = AnnealAttribute(m, "capacity", linear_anneal(0.0, m.c_max, 100))
    assert m.capacity == 0.0
    callback(type("Info", (), {"step": 40})())
    assert m.capacity == pytest.approx(10.0)
    with pytest.raises(ValueError, match="capacity_weight"):
        AnnealedVAE(SHAPE, capacity_weight=-1.0)
    with pytest.raises(ValueError, match="dip_type"):
        DIPVAE(SHAPE, dip_type="iii")
