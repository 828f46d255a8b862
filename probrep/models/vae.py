"""The VAE family as Pyro programs: VAE / beta-VAE, beta-TCVAE and FactorVAE.

Each model is an ``nn.Module`` with a ``model(x)`` / ``guide(x)`` pair that calls ``pyro.sample`` inside
``pyro.plate``; any Pyro inference (ours or Pyro's ``SVI``) can fit it. Prior ``N(0, I)``, posterior a diagonal
Gaussian from the encoder, Bernoulli or Gaussian pixels.

    negative ELBO(x) = -E_q[log p(x|z)] + beta * KL(q(z|x) || p(z))

beta scales the latent site through ``poutine.scale`` in both programs, so with the mean-field ELBO (analytic
KL, the default) the loss is exactly reconstruction + beta * KL.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from probrep._checks import integer, one_of, real
from probrep.divergences.density_ratio import classifier_loss, permute_dims
from probrep.models.layers import make_encoder_decoder, mlp

_LIKELIHOODS = ("bernoulli", "gaussian")
_ARCHES = {"ConvEncoder": "conv", "MLPEncoder": "mlp"}  # encoder class -> the ``arch`` that builds it


def _hidden_widths(network: nn.Module) -> list[int]:
    """The widths of a network's hidden dense layers (its ``hidden`` setting), read from the built layers."""
    return [m.out_features for m in network.modules() if isinstance(m, nn.Linear)][:-1]


def kl_to_standard_normal(loc: torch.Tensor, scale: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """``KL(N(loc, scale^2) || N(0, I))`` per example ``[N]`` (``reduce=False``: per dimension ``[N, D]``)."""
    kl = 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * torch.log(scale))
    return kl.sum(-1) if reduce else kl


class VAE(nn.Module):
    """Variational autoencoder; ``beta > 1`` gives the beta-VAE of Higgins et al. 2017.

    Args:
        image_shape: ``(channels, height, width)`` of the data.
        latent_dim: number of latent dimensions.
        beta: weight of the KL term.
        likelihood: ``"bernoulli"`` (binary pixels, logits from the decoder) or ``"gaussian"`` (fixed
            ``obs_scale``).
        arch: ``"conv"`` (the 64x64 disentanglement architecture) or ``"mlp"``.
        hidden: width of the dense layer(s) of the networks (default 256 for conv, (512, 256) for mlp).
        obs_scale: pixel standard deviation of the Gaussian likelihood.
        name: prefix of the Pyro parameter names, so that two models can share one param store.
    """

    #: the ELBO :func:`probrep.inference.svi.fit` uses unless told otherwise (analytic KL)
    default_elbo = "meanfield"

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 64, 64),
        latent_dim: int = 10,
        beta: float = 1.0,
        likelihood: str = "bernoulli",
        arch: str = "conv",
        hidden: int | Sequence[int] | None = None,
        obs_scale: float = 0.1,
        name: str = "vae",
    ):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = integer(latent_dim, "latent_dim")
        self.beta = real(beta, "beta", nonnegative=True)
        self.likelihood = one_of(likelihood, "likelihood", _LIKELIHOODS)
        self.obs_scale = real(obs_scale, "obs_scale", positive=True)
        self.name = name
        self.encoder, self.decoder = make_encoder_decoder(arch, self.image_shape, self.latent_dim, hidden)

    @property
    def run_config(self) -> dict[str, Any]:
        """What defines the model, stored in checkpoints by :func:`probrep.inference.svi.fit` and compared on
        resume: parameter shapes alone cannot tell a Bernoulli beta=1 VAE from a Gaussian beta=4 one, so a
        checkpoint recording another likelihood, weight or architecture is refused, naming the keys. Annealed
        attributes (the AnnealedVAE's ``capacity``) are not here: they change during a run."""
        config: dict[str, Any] = {
            "model": type(self).__name__,
            "likelihood": self.likelihood,
            "beta": self.beta,
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "arch": _ARCHES.get(type(self.encoder).__name__, type(self.encoder).__name__),
            "hidden": _hidden_widths(self.encoder),
        }
        if self.likelihood == "gaussian":  # the Bernoulli likelihood never reads it
            config["obs_scale"] = self.obs_scale
        return config

    # ----------------------------------------------------------------------------------------------- networks
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale ``[N, latent_dim]`` of q(z|x); scale = softplus(raw) + 1e-5 keeps it positive."""
        self._check_images(x)
        out = self.encoder(x)
        loc, raw_scale = out[..., : self.latent_dim], out[..., self.latent_dim :]
        return loc, F.softplus(raw_scale) + 1e-5

    def likelihood_dist(self, z: torch.Tensor) -> dist.TorchDistribution:
        """p(x|z) as a distribution over whole images (event shape = image shape)."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(3)
        return dist.Normal(out, self.obs_scale).to_event(3)

    def _check_images(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor of images, got {type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{type(self).__name__} expects images of shape [N, {', '.join(map(str, self.image_shape))}], "
                f"got {tuple(x.shape)}"
            )

    # ------------------------------------------------------------------------------------------ Pyro programs
    def model(self, x: torch.Tensor) -> None:
        """p(z) p(x|z) with x observed; the latent site is scaled by beta."""
        pyro.module(f"{self.name}.decoder", self.decoder)
        self._check_images(x)
        zeros = x.new_zeros(x.shape[0], self.latent_dim)
        with pyro.plate("data", x.shape[0]):
            with self._latent_weight():
                z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            pyro.sample("x", self.likelihood_dist(z), obs=x)
            self.model_penalty(z)

    def _latent_weight(self):
        """The handler that weights the latent site by beta in both programs; beta = 0 masks it out of both
        (Pyro refuses a zero scale), so the KL term is exactly absent while z is still drawn and decoded."""
        return poutine.scale(scale=self.beta) if self.beta > 0 else poutine.mask(mask=False)

    def model_penalty(self, z: torch.Tensor) -> None:
        """Extra terms of the model's log joint inside the data plate (none here; FactorVAE adds one)."""

    def guide(self, x: torch.Tensor) -> None:
        """q(z|x): a diagonal Gaussian from the encoder."""
        pyro.module(f"{self.name}.encoder", self.encoder)
        loc, scale = self.posterior(x)
        with pyro.plate("data", x.shape[0]):
            with self._latent_weight():
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))
        self.guide_penalty(x, loc, scale)

    def guide_penalty(self, x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> None:
        """Batch-level terms added to the loss from the posterior the guide drew z from (none here; DIP-VAE and
        the AnnealedVAE add one, as a ``pyro.factor`` outside the data plate)."""

    @torch.no_grad()
    def kl_per_dimension(self, x: torch.Tensor) -> torch.Tensor:
        """``KL(q(z_d|x) || N(0, 1))`` in closed form, ``[N, latent_dim]``: which dimensions carry information."""
        loc, scale = self.posterior(x)
        return kl_to_standard_normal(loc, scale, reduce=False)

    @torch.no_grad()
    def posterior_mean_variance(self, x: torch.Tensor) -> torch.Tensor:
        """The variance over the batch ``x`` (two images or more) of each posterior mean ``E[z_d|x]``,
        ``[latent_dim]``: Burda et al.'s (2016) activity of a latent, active above 0.01. A latent with KL but no such
        variance has a posterior that is the same for every image (a shifted mean, a narrowed scale; a capacity
        target can be met that way): its KL says nothing about x."""
        if x.dim() < 1 or x.shape[0] < 2:
            raise ValueError(f"posterior_mean_variance needs a batch of at least 2 images, got shape {tuple(x.shape)}")
        return self.posterior(x)[0].var(0)

    # ------------------------------------------------------------------------------------------------- utils
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means ``[N, latent_dim]`` (the representation that metrics score)."""
        return self.posterior(x)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image ``[N, C, H, W]`` of p(x|z): pixel probabilities (Bernoulli) or means (Gaussian)."""
        out = self.decoder(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x))."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def traverse(self, x: torch.Tensor, dim: int, values: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """Decode each image's code with dimension ``dim`` set to each of ``values``: ``[N, V, C, H, W]``."""
        if not 0 <= integer(dim, "dim", 0) < self.latent_dim:
            raise ValueError(f"dim must be in [0, {self.latent_dim}), got {dim}")
        if x.dim() == 3:
            x = x.unsqueeze(0)
        codes = self.encode(x)
        values = torch.as_tensor(values, dtype=codes.dtype, device=codes.device).reshape(-1)
        grid = codes.unsqueeze(1).repeat(1, values.numel(), 1)
        grid[:, :, dim] = values
        images = self.decode(grid.reshape(-1, self.latent_dim))
        return images.reshape(x.shape[0], values.numel(), *self.image_shape)


def _log_normal_matrix(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    """``[M, M, D]`` matrix of log q(z_i,d | x_j) + ``offset`` for every pair of batch members i, j and dimension d.

    Written out rather than through ``Normal.log_prob``: at M = 1024 this array is the beta-TCVAE's main cost, and
    three passes over it (subtract, scale, one fused multiply-add with the per-posterior constants, ``offset``
    folded in) instead of six make its forward and backward about a fifth faster (`benchmarks/tc_estimator.py`).
    """
    standardised = (z.unsqueeze(1) - loc) * scale.reciprocal()  # a product: its backward is cheaper than a quotient's
    constant = offset - scale.log() - 0.5 * math.log(2 * math.pi)
    return torch.addcmul(constant, standardised, standardised, value=-0.5)


def minibatch_weighted_sampling(
    z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, dataset_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch-weighted-sampling estimates (Chen et al. 2018) of log q(z_i) and sum_d log q(z_i,d).

    ``log q(z_i) ~= logsumexp_j log q(z_i | x_j) - log(N M)`` with N the dataset size and M the batch size;
    the product of marginals likewise, one dimension at a time. Both are ``[M]``. The weights sum to ``1 / N``,
    not 1, so the values are offset (by ``(D - 1) log N`` of TC where every posterior is the same): a penalty,
    not a reading; :func:`minibatch_stratified_sampling` gives one.
    """
    m = z.shape[0]
    log_norm = math.log(dataset_size * m)
    matrix = _log_normal_matrix(z, loc, scale)
    log_qz = torch.logsumexp(matrix.sum(-1), dim=1) - log_norm
    log_prod_qzd = (torch.logsumexp(matrix, dim=1) - log_norm).sum(-1)
    return log_qz, log_prod_qzd


def minibatch_stratified_sampling(
    z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, dataset_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance-weighted minibatch estimates of log q(z_i) and sum_d log q(z_i,d) whose densities are unbiased.

    ``z_i`` was drawn from ``q(z|x_i)``, so ``x_i`` is in the batch by construction and the other ``M - 1``
    members are a uniform draw from the other ``N - 1`` points. Weighting the sample's own posterior ``1/N`` and
    each other member's ``(N - 1) / (N (M - 1))`` makes ``q_hat(z_i) = sum_j w_ij q(z_i|x_j)`` an unbiased
    estimate of ``q(z_i) = (1/N) sum_n q(z_i|x_n)``, and likewise for each marginal. Their logs are biased low
    (Jensen's inequality), the joint's more than the marginals', so the TC reads low: by little where the
    posteriors overlap (0.003 nats at M = 1000 on a correlated Gaussian), by nats where they are narrow and M is
    small (about -4 nats of TC at M = 64 for a beta-TCVAE trained on dSprites, -2.5 at M = 512).

    This is the symmetric form of Chen et al.'s minibatch stratified sampling (MSS), which instead singles out
    one other member with weight ``(N - M) / (N M)``. Both weightings sum to 1, so where every posterior in the
    batch is the same the estimates are exact (a TC and a mutual information of 0);
    :func:`minibatch_weighted_sampling`'s weights sum to ``1 / N`` and read ``(D - 1) log N`` nats of TC there.
    Both are ``[M]``.
    """
    m = z.shape[0]
    if m < 2:
        raise ValueError(f"minibatch_stratified_sampling needs a batch of at least 2, got {m}")
    if dataset_size < m:
        raise ValueError(f"dataset_size ({dataset_size}) must be at least the batch size ({m})")
    log_w_other, log_w_own = math.log((dataset_size - 1) / (dataset_size * (m - 1))), -math.log(dataset_size)
    # log w_ij + log q(z_i,d | x_j) on every dimension: the weights go in without a second [M, M, D] array
    matrix = _log_normal_matrix(z, loc, scale, offset=log_w_other)
    matrix.diagonal(dim1=0, dim2=1).add_(log_w_own - log_w_other)
    log_prod_qzd = torch.logsumexp(matrix, dim=1).sum(-1)
    # summed over the D dimensions the weight is counted D times; the joint wants it once
    log_w = torch.full((m, m), log_w_other, dtype=z.dtype, device=z.device).fill_diagonal_(log_w_own)
    log_qz = torch.logsumexp(matrix.sum(-1) - (matrix.shape[-1] - 1) * log_w, dim=1)
    return log_qz, log_prod_qzd


#: the beta-TCVAE's estimators of log q(z) and sum_d log q(z_d), by name
TC_ESTIMATORS = {"mws": minibatch_weighted_sampling, "mss": minibatch_stratified_sampling}


class BetaTCVAE(VAE):
    """beta-TCVAE (Chen et al. 2018): a weight on the total-correlation part of the KL only.

    The KL term decomposes as index-code mutual information + total correlation + dimension-wise KL; with the
    minibatch-weighted-sampling estimates the loss is

        -log p(x|z) + [log q(z|x) - log p(z)] + (tc_weight - 1) * TC,   TC = log q(z) - sum_d log q(z_d),

    the (tc_weight - 1) * TC term entering the guide as a reparameterised ``pyro.factor``; the KL as a whole
    keeps weight 1 (``self.beta == 1``). It needs the Monte Carlo ELBO (``Trace_ELBO``, the default here), not
    the mean-field one.

    Args:
        tc_weight: weight of the total correlation (the paper's beta; 1 gives the plain VAE).
        dataset_size: N of the estimator; ``None`` treats each batch as the whole data set.
        estimator: the TC estimate the loss penalises: ``"mws"`` (minibatch-weighted sampling, the default, as in
            Chen et al.'s experiments; its values carry an offset of up to ``(D - 1) log N``) or ``"mss"``
            (:func:`minibatch_stratified_sampling`, whose densities are unbiased).
        beta: deprecated name of ``tc_weight`` (it read like the VAE's KL weight, which stays 1 here).
    """

    default_elbo = "trace"

    def __init__(
        self,
        *args,
        tc_weight: float = 6.0,
        dataset_size: int | None = None,
        estimator: str = "mws",
        beta: float | None = None,
        **kwargs,
    ):
        if beta is not None:
            warnings.warn(
                "BetaTCVAE(beta=...) is deprecated: the total-correlation weight is tc_weight=",
                DeprecationWarning,
                stacklevel=2,
            )
            tc_weight = beta
        super().__init__(*args, beta=1.0, **kwargs)
        self.tc_weight = real(tc_weight, "tc_weight", nonnegative=True)
        self.dataset_size = None if dataset_size is None else integer(dataset_size, "dataset_size")
        self.estimator = one_of(estimator, "estimator", TC_ESTIMATORS)

    @property
    def run_config(self) -> dict[str, Any]:
        """The VAE's settings with the total-correlation weight and the estimator's N."""
        return {
            **super().run_config,
            "tc_weight": self.tc_weight,
            "dataset_size": self.dataset_size,
            "estimator": self.estimator,
        }

    def _log_qz(self, z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, estimator: str):
        n = z.shape[0] if self.dataset_size is None else self.dataset_size
        return TC_ESTIMATORS[estimator](z, loc, scale, n)

    def guide(self, x: torch.Tensor) -> None:
        pyro.module(f"{self.name}.encoder", self.encoder)
        loc, scale = self.posterior(x)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            log_qz, log_prod_qzd = self._log_qz(z, loc, scale, self.estimator)
            # a guide factor f adds f to the loss (the ELBO subtracts guide log densities)
            pyro.factor("total_correlation", (self.tc_weight - 1.0) * (log_qz - log_prod_qzd), has_rsample=True)

    @torch.no_grad()
    def decompose(self, x: torch.Tensor, estimator: str = "mss") -> dict[str, torch.Tensor]:
        """Batch-mean estimates of the KL's parts on one draw z ~ q(z|x).

        Returns ``mutual_information`` (log q(z|x) - log q(z)), ``total_correlation``
        (log q(z) - sum_d log q(z_d)), ``dimension_wise_kl`` (sum_d log q(z_d) - log p(z)) and ``kl``
        (log q(z|x) - log p(z)); the first three sum to the fourth. ``estimator`` defaults to ``"mss"``, whatever
        the loss uses: its densities are unbiased, while ``"mws"`` reads ``(D - 1) log N`` nats of TC in latents
        that carry nothing (121 nats for 10 latents on dSprites). Report it on a large batch: on a small one the
        TC of narrow posteriors reads low (:func:`minibatch_stratified_sampling`).
        """
        loc, scale = self.posterior(x)
        z = dist.Normal(loc, scale).rsample()
        log_qzx = dist.Normal(loc, scale).log_prob(z).sum(-1)
        log_pz = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_qz, log_prod_qzd = self._log_qz(z, loc, scale, one_of(estimator, "estimator", TC_ESTIMATORS))
        return {
            "mutual_information": (log_qzx - log_qz).mean(),
            "total_correlation": (log_qz - log_prod_qzd).mean(),
            "dimension_wise_kl": (log_prod_qzd - log_pz).mean(),
            "kl": (log_qzx - log_pz).mean(),
        }


class FactorVAE(VAE):
    """FactorVAE (Kim & Mnih 2018): VAE loss + gamma * total correlation, TC from a discriminator.

    The discriminator ``D`` outputs the logit of "z came from q(z) rather than prod_d q(z_d)", whose optimum is
    ``log q(z) / prod_d q(z_d)``, so ``TC ~= E_q[D(z)]`` (the density-ratio trick). The model adds
    ``-gamma * D(z)`` as a ``pyro.factor``; the discriminator is not a Pyro parameter: it is trained by its own
    optimiser through :meth:`auxiliary_loss`, which :func:`probrep.inference.svi.fit` steps after each ELBO step.

    Args:
        gamma: weight of the TC penalty.
        discriminator_hidden: layer widths of the MLP discriminator (the paper: six layers of 1000).
        discriminator_lr: learning rate of its Adam optimiser (the paper: 1e-4, betas (0.5, 0.9)).
    """

    auxiliary_optimizer_kwargs = {"betas": (0.5, 0.9)}

    def __init__(
        self,
        *args,
        gamma: float = 10.0,
        discriminator_hidden: Sequence[int] = (1000,) * 6,
        discriminator_lr: float = 1e-4,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.gamma = real(gamma, "gamma", nonnegative=True)
        self.auxiliary_lr = real(discriminator_lr, "discriminator_lr", positive=True)
        self.discriminator = mlp((self.latent_dim, *discriminator_hidden, 1), activation=lambda: nn.LeakyReLU(0.2))

    @property
    def run_config(self) -> dict[str, Any]:
        """The VAE's settings with the TC weight and the discriminator's widths and learning rate."""
        return {
            **super().run_config,
            "gamma": self.gamma,
            "discriminator_hidden": _hidden_widths(self.discriminator),
            "discriminator_lr": self.auxiliary_lr,
        }

    def model_penalty(self, z: torch.Tensor) -> None:
        """``-gamma * D(z)``: the total-correlation penalty as a factor of the model."""
        pyro.factor("total_correlation", -self.gamma * self.discriminator(z).squeeze(-1))

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by :meth:`auxiliary_loss` with their own optimiser (the discriminator's)."""
        return list(self.discriminator.parameters())

    def auxiliary_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Discriminator loss on codes z ~ q(z|x) (detached) against their dimension-permuted copy."""
        with torch.no_grad():
            loc, scale = self.posterior(x)
            z = loc + scale * torch.randn_like(loc)
        return classifier_loss(self.discriminator(z), self.discriminator(permute_dims(z)))

    @torch.no_grad()
    def total_correlation(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminator's TC estimate E_q[D(z)] on a batch."""
        loc, scale = self.posterior(x)
        return self.discriminator(loc + scale * torch.randn_like(loc)).mean()
