"""The VAE family's losses against independent hand computations (float64, fixed weights, fixed noise)."""

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from probrep.divergences.density_ratio import classifier_loss, permute_dims
from probrep.models import VAE, BetaTCVAE, FactorVAE
from probrep.models.vae import minibatch_stratified_sampling, minibatch_weighted_sampling

SHAPE = (1, 32, 32)
D = 4


def _images(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *SHAPE, generator=g) > 0.6).double()


def _sampled_z(m, x, seed):
    """The z the guide draws under ``seed`` (the ELBO runs the guide first, so it draws the same one)."""
    pyro.set_rng_seed(seed)
    trace = poutine.trace(m.guide).get_trace(x)
    return trace.nodes["z"]["value"]


def _hand_posterior(m, x):
    out = m.encoder(x)
    return out[:, :D], F.softplus(out[:, D:]) + 1e-5


def _closed_form_kl(loc, scale):
    return 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * torch.log(scale)).sum()


def _bernoulli_nll(m, z, x):
    return F.binary_cross_entropy_with_logits(m.decoder(z), x, reduction="sum")


def _elbo_loss(elbo, m, x, seed):
    pyro.set_rng_seed(seed)
    return elbo.differentiable_loss(m.model, m.guide, x)


@pytest.mark.parametrize("arch", ["conv", "mlp"])
@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_vae_loss_is_reconstruction_plus_beta_kl(arch, beta):
    torch.manual_seed(0)
    m = VAE(SHAPE, latent_dim=D, beta=beta, arch=arch).double()
    x = _images()
    loss = _elbo_loss(TraceMeanField_ELBO(), m, x, seed=3)
    z = _sampled_z(m, x, seed=3)
    loc, scale = _hand_posterior(m, x)
    expected = _bernoulli_nll(m, z, x) + beta * _closed_form_kl(loc, scale)
    assert abs(loss.item() - expected.item()) < 1e-5


def test_beta_scales_exactly_the_kl():
    torch.manual_seed(0)
    m = VAE(SHAPE, latent_dim=D, beta=1.0, arch="mlp").double()
    x = _images()
    base = _elbo_loss(TraceMeanField_ELBO(), m, x, seed=5)
    m.beta = 7.0
    scaled = _elbo_loss(TraceMeanField_ELBO(), m, x, seed=5)
    kl = _closed_form_kl(*_hand_posterior(m, x))
    assert abs((scaled - base).item() - 6.0 * kl.item()) < 1e-6


def test_gaussian_likelihood_loss():
    torch.manual_seed(0)
    m = VAE(SHAPE, latent_dim=D, likelihood="gaussian", obs_scale=0.3, arch="mlp").double()
    x = _images()
    loss = _elbo_loss(TraceMeanField_ELBO(), m, x, seed=2)
    z = _sampled_z(m, x, seed=2)
    mean = m.decoder(z)
    nll = (0.5 * ((x - mean) / 0.3) ** 2 + math.log(0.3) + 0.5 * math.log(2 * math.pi)).sum()
    expected = nll + _closed_form_kl(*_hand_posterior(m, x))
    assert abs(loss.item() - expected.item()) < 1e-5


def test_monte_carlo_elbo_uses_log_density_ratio():
    torch.manual_seed(0)
    m = VAE(SHAPE, latent_dim=D, beta=2.0, arch="mlp").double()
    x = _images()
    loss = _elbo_loss(Trace_ELBO(), m, x, seed=4)
    z = _sampled_z(m, x, seed=4)
    loc, scale = _hand_posterior(m, x)
    log_q = torch.distributions.Normal(loc, scale).log_prob(z).sum()
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum()
    assert abs(loss.item() - (_bernoulli_nll(m, z, x) + 2.0 * (log_q - log_p)).item()) < 1e-5


@pytest.mark.parametrize(
    ("estimate", "weight"),
    [
        # minibatch-weighted sampling: 1 / (N M) for every member
        (minibatch_weighted_sampling, lambda i, j, n, m: 1.0 / (n * m)),
        # stratified: the sample's own posterior 1/N, each other member's (N - 1) / (N (M - 1)), summing to 1
        (minibatch_stratified_sampling, lambda i, j, n, m: 1.0 / n if j == i else (n - 1) / (n * (m - 1))),
    ],
)
def test_minibatch_estimates_of_log_q_match_brute_force(estimate, weight):
    g = torch.Generator().manual_seed(0)
    m, n_data = 6, 1000
    loc, scale = torch.randn(m, D, generator=g, dtype=torch.float64), torch.rand(m, D, generator=g).double() + 0.3
    z = loc + scale * torch.randn(m, D, generator=g, dtype=torch.float64)
    log_qz, log_prod = estimate(z, loc, scale, n_data)
    for i in range(m):
        w = [weight(i, j, n_data, m) for j in range(m)]
        per_j = [torch.distributions.Normal(loc[j], scale[j]).log_prob(z[i]).exp() for j in range(m)]
        joint = math.log(sum(w[j] * per_j[j].prod() for j in range(m)))
        marg = sum(math.log(sum(w[j] * per_j[j][d] for j in range(m))) for d in range(D))
        assert log_qz[i].item() == pytest.approx(joint, abs=1e-10)
        assert log_prod[i].item() == pytest.approx(marg, abs=1e-10)


def test_minibatch_stratified_sampling_refuses_a_batch_it_cannot_weigh():
    g = torch.Generator().manual_seed(0)
    loc, scale = torch.randn(6, D, generator=g, dtype=torch.float64), torch.ones(6, D, dtype=torch.float64)
    z, n_data = loc + scale, 1000
    with pytest.raises(ValueError, match="batch of at least 2"):
        minibatch_stratified_sampling(z[:1], loc[:1], scale[:1], n_data)
    with pytest.raises(ValueError, match="dataset_size"):
        minibatch_stratified_sampling(z, loc, scale, 5)


def test_where_every_posterior_is_the_same_stratified_sampling_reads_no_tc_and_weighted_sampling_d_minus_1_log_n():
    # latents that carry nothing: q(z|x) = q(z) for every x, so the TC of q(z) and the mutual information are 0
    g = torch.Generator().manual_seed(1)
    m, n_data = 16, 737_280
    loc = torch.randn(1, D, generator=g, dtype=torch.float64).expand(m, D)
    scale = (torch.rand(1, D, generator=g, dtype=torch.float64) + 0.5).expand(m, D)
    z = loc + scale * torch.randn(m, D, generator=g, dtype=torch.float64)
    log_qzx = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    log_qz, log_prod = minibatch_stratified_sampling(z, loc, scale, n_data)
    torch.testing.assert_close(log_qz - log_prod, torch.zeros(m, dtype=torch.float64))
    torch.testing.assert_close(log_qzx - log_qz, torch.zeros(m, dtype=torch.float64))
    log_qz, log_prod = minibatch_weighted_sampling(z, loc, scale, n_data)
    torch.testing.assert_close(log_qz - log_prod, torch.full((m,), (D - 1) * math.log(n_data), dtype=torch.float64))


def test_minibatch_stratified_sampling_estimates_the_total_correlation_of_a_correlated_gaussian():
    # x ~ N(0, [[1, rho], [rho, 1]]) and q(z|x) = N(x, s^2 I): q(z) = N(0, Sigma + s^2 I) exactly, whose TC is
    # -log(1 - r^2) / 2 with r = rho / (1 + s^2). Continuous data: N is taken as 1e12 (the own term weighs ~0)
    rho, s, m, reps = 0.8, 0.5, 1000, 20
    r = rho / (1 + s * s)
    truth = -0.5 * math.log(1 - r * r)
    chol = torch.linalg.cholesky(torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64))
    g = torch.Generator().manual_seed(2)
    estimates = []
    for _ in range(reps):
        x = torch.randn(m, 2, generator=g, dtype=torch.float64) @ chol.T
        scale = torch.full_like(x, s)
        z = x + scale * torch.randn(m, 2, generator=g, dtype=torch.float64)
        log_qz, log_prod = minibatch_stratified_sampling(z, x, scale, 10**12)
        estimates.append((log_qz - log_prod).mean())
    estimates = torch.stack(estimates)
    # 4 Monte Carlo standard errors of the mean of the batches (about 0.018 nats; the Jensen bias of the logs at
    # M = 1000 is about 0.003, measured with 40 batches at M = 250, 1000, 2000)
    assert abs(float(estimates.mean()) - truth) < 4 * float(estimates.std()) / math.sqrt(reps)


def test_beta_tcvae_decompose_of_an_encoder_that_ignores_its_input_reads_no_mutual_information_and_no_tc():
    torch.manual_seed(0)
    m = BetaTCVAE(SHAPE, latent_dim=D, arch="mlp", dataset_size=737_280).double()
    with torch.no_grad():
        for param in m.encoder.parameters():
            param.zero_()  # every image gets the same posterior: loc 0, scale softplus(0)
    parts = m.decompose(_images(16))
    assert abs(parts["mutual_information"].item()) < 1e-10 and abs(parts["total_correlation"].item()) < 1e-10
    assert parts["dimension_wise_kl"].item() == pytest.approx(parts["kl"].item(), abs=1e-10)
    # the weighted-sampling estimate reads (D - 1) log N of TC in these same latents
    tc = m.decompose(_images(16), estimator="mws")["total_correlation"].item()
    assert tc == pytest.approx((D - 1) * math.log(737_280))
    with pytest.raises(ValueError, match="estimator"):
        m.decompose(_images(16), estimator="kde")
    with pytest.raises(ValueError, match="estimator"):
        BetaTCVAE(SHAPE, latent_dim=D, arch="mlp", estimator="kde")


def test_a_posterior_offset_the_same_for_every_image_has_kl_but_no_activity():
    # the AnnealedVAE's collapse in the study: KL spent on a constant offset, which Burda et al.'s activity sees
    m = VAE(SHAPE, latent_dim=D, arch="mlp").double()
    last = [module for module in m.encoder.modules() if isinstance(module, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1.5, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    x = _images(16)
    # loc (1.5, -2, 0, 0), scale softplus(0) + 1e-5 = log 2 + 1e-5 for every image
    s = math.log(2.0) + 1e-5
    by_hand = [0.5 * (mu**2 + s**2 - 1.0 - 2.0 * math.log(s)) for mu in (1.5, -2.0, 0.0, 0.0)]
    assert m.kl_per_dimension(x).mean(0).tolist() == pytest.approx(by_hand)
    assert m.posterior_mean_variance(x).tolist() == [0.0] * D
    # and where the means do vary, each latent by its own spread: the unbiased variance over the batch,
    # (0, 1, 2, 3) times c -> 5/3 c^2
    spread = torch.tensor([0.0, 1.0, 2.0, 3.0])
    m.posterior = lambda x: (torch.arange(4.0)[:, None] * spread, torch.ones(4, D))
    assert m.posterior_mean_variance(x[:4]).tolist() == pytest.approx([0.0, 5.0 / 3.0, 20.0 / 3.0, 15.0])
    with pytest.raises(ValueError, match="at least 2 images"):
        m.posterior_mean_variance(x[:1])


@pytest.mark.parametrize(
    ("estimator", "estimate"), [("mws", minibatch_weighted_sampling), ("mss", minibatch_stratified_sampling)]
)
def test_beta_tcvae_loss_penalises_the_tc_estimate_it_is_given(estimator, estimate):
    torch.manual_seed(0)
    m = BetaTCVAE(SHAPE, latent_dim=D, tc_weight=6.0, arch="mlp", dataset_size=500, estimator=estimator).double()
    assert m.run_config["estimator"] == estimator
    x = _images(16)
    # loss = recon + [log q(z|x) - log p(z)] + (tc_weight - 1) * TC, all on the guide's draw of z
    loss = _elbo_loss(Trace_ELBO(), m, x, seed=9)
    z = _sampled_z(m, x, seed=9)
    loc, scale = _hand_posterior(m, x)
    log_q = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qz, log_prod = estimate(z, loc, scale, 500)
    expected = _bernoulli_nll(m, z, x) + (log_q - log_p).sum() + 5.0 * (log_qz - log_prod).sum()
    assert abs(loss.item() - expected.item()) < 1e-5


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_beta_tcvae_decomposition_sums_to_kl(estimator):
    torch.manual_seed(0)
    m = BetaTCVAE(SHAPE, latent_dim=D, tc_weight=6.0, arch="mlp", dataset_size=500).double()
    parts = m.decompose(_images(16), estimator=estimator)
    total = parts["mutual_information"] + parts["total_correlation"] + parts["dimension_wise_kl"]
    assert abs(total.item() - parts["kl"].item()) < 1e-9


def test_beta_tcvae_with_tc_weight_one_is_the_vae():
    torch.manual_seed(0)
    tc = BetaTCVAE(SHAPE, latent_dim=D, tc_weight=1.0, arch="mlp").double()
    plain = VAE(SHAPE, latent_dim=D, arch="mlp").double()
    plain.load_state_dict(tc.state_dict())
    x = _images()
    assert abs(_elbo_loss(Trace_ELBO(), tc, x, 1).item() - _elbo_loss(Trace_ELBO(), plain, x, 1).item()) < 1e-8


def test_beta_tcvae_beta_is_a_deprecated_name_of_tc_weight():
    with pytest.warns(DeprecationWarning, match="tc_weight"):
        old = BetaTCVAE(SHAPE, latent_dim=D, beta=3.0, arch="mlp")
    assert old.tc_weight == 3.0 and old.beta == 1.0  # the KL as a whole keeps weight 1
    assert BetaTCVAE(SHAPE, latent_dim=D, arch="mlp").tc_weight == 6.0
    with pytest.raises(ValueError, match="tc_weight"):
        BetaTCVAE(SHAPE, latent_dim=D, tc_weight=-1.0, arch="mlp")


def test_factor_vae_loss_adds_gamma_times_discriminator_tc():
    torch.manual_seed(0)
    m = FactorVAE(SHAPE, latent_dim=D, gamma=3.0, arch="mlp", discriminator_hidden=(16, 16)).double()
    x = _images()
    loss = _elbo_loss(TraceMeanField_ELBO(), m, x, seed=6)
    z = _sampled_z(m, x, seed=6)
    loc, scale = _hand_posterior(m, x)
    expected = _bernoulli_nll(m, z, x) + _closed_form_kl(loc, scale) + 3.0 * m.discriminator(z).sum()
    assert abs(loss.item() - expected.item()) < 1e-5
    # the discriminator is trained by its own optimiser, not registered with Pyro
    assert not any(name.startswith("vae.discriminator") for name in pyro.get_param_store().keys())
    assert len(m.auxiliary_parameters()) == 2 * 3


def test_permute_dims_keeps_marginals_and_breaks_dependence():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5000, 1, generator=g)
    z = torch.cat([a, a + 0.01 * torch.randn(5000, 1, generator=g)], 1)  # correlation ~ 1
    p = permute_dims(z, generator=g)
    assert torch.equal(p.sort(0).values, z.sort(0).values)
    corr = torch.corrcoef(p.T)[0, 1].item()
    assert abs(corr) < 4 / math.sqrt(5000)  # 4 standard errors of a null correlation


def test_classifier_logit_recovers_log_density_ratio():
    # P = N(1, 1), Q = N(0, 1): log p/q = x - 1/2. Logistic regression on 2 x 100k draws; the standard
    # error of each coefficient is ~ 1/sqrt(n I) ~ 0.005, so 0.03 is about 6 SE.
    g = torch.Generator().manual_seed(0)
    xp, xq = torch.randn(100_000, generator=g) + 1.0, torch.randn(100_000, generator=g)
    w = torch.zeros(2, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = classifier_loss(w[0] * xp + w[1], w[0] * xq + w[1])
        loss.backward()
        return loss

    opt.step(closure)
    assert abs(w[0].item() - 1.0) < 0.03 and abs(w[1].item() + 0.5) < 0.03


def test_encode_decode_reconstruct_traverse_shapes(device):
    torch.manual_seed(0)
    m = VAE((1, 64, 64), latent_dim=5).to(device)
    x = (torch.rand(3, 1, 64, 64, device=device) > 0.5).float()
    assert m.encode(x).shape == (3, 5)
    rec = m.reconstruct(x)
    assert rec.shape == x.shape and rec.min() >= 0 and rec.max() <= 1
    grid = m.traverse(x, dim=2, values=torch.linspace(-2, 2, 7))
    assert grid.shape == (3, 7, 1, 64, 64)
    # the traversal changes only dimension 2 of the code: decoding the encoded code reproduces column 0..
    codes = m.encode(x)
    codes[:, 2] = -2.0
    assert torch.allclose(grid[:, 0], m.decode(codes), atol=1e-6)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by 16"):
        VAE((1, 30, 30))
    with pytest.raises(ValueError, match="likelihood"):
        VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="beta"):
        VAE(beta=-1.0)
    m = VAE(SHAPE, latent_dim=D, arch="mlp")
    with pytest.raises(ValueError, match=r"\[N, 1, 32, 32\]"):
        m.guide(torch.zeros(2, 1, 64, 64))
    with pytest.raises(ValueError, match="dim"):
        m.traverse(torch.zeros(1, *SHAPE), dim=D, values=[0.0])


@pytest.mark.parametrize("estimate", [minibatch_weighted_sampling, minibatch_stratified_sampling])
def test_minibatch_estimates_have_the_gradients_of_their_values(estimate):
    # the stratified estimate adds its weights in place on the matrix's diagonal: autograd must see through it
    g = torch.Generator().manual_seed(1)
    m, n_data = 5, 100
    loc = torch.randn(m, D, generator=g, dtype=torch.float64).requires_grad_()
    scale = (torch.rand(m, D, generator=g, dtype=torch.float64) + 0.3).requires_grad_()
    eps = torch.randn(m, D, generator=g, dtype=torch.float64)

    def tc(loc, scale):
        log_qz, log_prod = estimate(loc + scale * eps, loc, scale, n_data)
        return log_qz - log_prod

    assert torch.autograd.gradcheck(tc, (loc, scale))
