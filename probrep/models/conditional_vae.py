"""A conditional VAE: an image mechanism ``x = f(c, z)`` whose parents' values ``c`` are given, as a Pyro program.

The decoder reads the condition (a float vector built from the parents' values) beside the latent noise, the
encoder reads the image and the condition (Sohn et al. 2015). In a deep structural causal model (Pawlowski,
Castro and Glocker 2020) ``z`` is the image node's exogenous noise: ``q(z | x, c)`` abducts it, and decoding it
with intervened parents predicts the counterfactual image.

    p(z) = N(0, I),   p(x | c, z) = Bernoulli(logits = decoder([z, c]))   (or Gaussian with a fixed scale)
    q(z | x, c) = N(loc, diag(scale^2)),   [loc, raw] = head([encoder(x), c]),   scale = softplus(raw) + 1e-5
    negative ELBO(x, c) = -E_q[log p(x | c, z)] + beta * KL(q(z | x, c) || p(z))

As in :mod:`probrep.models.vae`, beta weights the latent site through ``poutine.scale`` in both programs, so the
mean-field ELBO (analytic KL, the default) is exactly reconstruction + beta * KL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from probrep._checks import integer, one_of, real
from probrep.models.layers import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, mlp
from probrep.models.vae import kl_to_standard_normal

_LIKELIHOODS = ("bernoulli", "gaussian")
_ARCHES = ("conv", "mlp")


class ConditionalVAE(nn.Module):
    """Conditional VAE over images ``[N, *image_shape]`` given conditions ``[N, condition_dim]``.

    Args:
        image_shape: ``(channels, height, width)``.
        condition_dim: length of the condition vector (the encoded parents).
        latent_dim: number of latent (noise) dimensions.
        beta: weight of the KL term.
        likelihood: ``"bernoulli"`` (logits from the decoder) or ``"gaussian"`` (fixed ``obs_scale``).
        arch: ``"conv"`` (the 64x64 disentanglement networks of :mod:`probrep.models.layers`) or ``"mlp"``.
        hidden: width of the dense layers (default 256).
        decoder: a network of one's own for ``[z, c] -> image-shaped logits (or means)``, in place of the
            ``arch``'s decoder (a deep SCM may know how its parents act on the image, e.g. that position translates).
        name: prefix of the Pyro parameter names.
    """

    #: the ELBO :func:`probrep.inference.svi.fit` uses unless told otherwise (analytic KL)
    default_elbo = "meanfield"

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 64, 64),
        condition_dim: int = 1,
        latent_dim: int = 4,
        beta: float = 1.0,
        likelihood: str = "bernoulli",
        arch: str = "conv",
        hidden: int = 256,
        obs_scale: float = 0.1,
        decoder: nn.Module | None = None,
        name: str = "cvae",
    ):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.condition_dim = integer(condition_dim, "condition_dim")
        self.latent_dim = integer(latent_dim, "latent_dim")
        self.beta = real(beta, "beta", nonnegative=True)
        self.likelihood = one_of(likelihood, "likelihood", _LIKELIHOODS)
        self.arch = one_of(arch, "arch", _ARCHES)
        self.hidden = integer(hidden, "hidden")
        self.obs_scale = real(obs_scale, "obs_scale", positive=True)
        self.name = name
        decoder_in = self.latent_dim + self.condition_dim
        if decoder is not None and not isinstance(decoder, nn.Module):
            raise TypeError(f"decoder must be an nn.Module, got {type(decoder).__name__}")
        if self.arch == "conv":
            self.encoder = ConvEncoder(self.image_shape, self.hidden, hidden=self.hidden)
            self.decoder = (
                decoder if decoder is not None else ConvDecoder(self.image_shape, decoder_in, hidden=self.hidden)
            )
        else:
            self.encoder = MLPEncoder(self.image_shape, self.hidden, hidden=(self.hidden,))
            self.decoder = (
                decoder
                if decoder is not None
                else MLPDecoder(self.image_shape, decoder_in, hidden=(self.hidden, self.hidden))
            )
        # the image features (after a ReLU) and the condition -> location and raw scale of q(z | x, c)
        self.posterior_head = mlp((self.hidden + self.condition_dim, self.hidden, 2 * self.latent_dim))

    @property
    def run_config(self) -> dict[str, Any]:
        """What defines the model, stored in checkpoints by ``svi.fit`` and compared on resume."""
        config: dict[str, Any] = {
            "model": type(self).__name__,
            "likelihood": self.likelihood,
            "beta": self.beta,
            "latent_dim": self.latent_dim,
            "condition_dim": self.condition_dim,
            "image_shape": list(self.image_shape),
            "arch": self.arch,
            "hidden": self.hidden,
        }
        if type(self.decoder) not in (ConvDecoder, MLPDecoder):  # a decoder of one's own
            config["decoder"] = type(self.decoder).__name__
        if self.likelihood == "gaussian":
            config["obs_scale"] = self.obs_scale
        return config

    # ------------------------------------------------------------------------------------------------ checks
    def _check(self, x: torch.Tensor | None, c: torch.Tensor) -> None:
        name = type(self).__name__
        if not torch.is_tensor(c):
            raise TypeError(f"{name} expects the condition as a torch.Tensor, got {type(c).__name__}")
        if c.dim() != 2 or c.shape[1] != self.condition_dim:
            raise ValueError(f"{name} expects conditions of shape [N, {self.condition_dim}], got {tuple(c.shape)}")
        if x is None:
            return
        if not torch.is_tensor(x):
            raise TypeError(f"{name} expects a torch.Tensor of images, got {type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{name} expects images of shape [N, {', '.join(map(str, self.image_shape))}], got {tuple(x.shape)}"
            )
        if x.shape[0] != c.shape[0]:
            raise ValueError(f"{name}: {x.shape[0]} images but {c.shape[0]} conditions")

    # ---------------------------------------------------------------------------------------------- networks
    def posterior(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale ``[N, latent_dim]`` of q(z | x, c)."""
        self._check(x, c)
        features = F.relu(self.encoder(x))
        out = self.posterior_head(torch.cat([features, c.to(features.dtype)], dim=-1))
        loc, raw_scale = out[..., : self.latent_dim], out[..., self.latent_dim :]
        return loc, F.softplus(raw_scale) + 1e-5

    def decoder_input(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """What the decoder reads: ``[z, c]``, ``[N, latent_dim + condition_dim]``."""
        return torch.cat([z, c.to(z.dtype)], dim=-1)

    def likelihood_dist(self, z: torch.Tensor, c: torch.Tensor) -> dist.TorchDistribution:
        """p(x | c, z) over whole images (event shape = image shape)."""
        out = self.decoder(self.decoder_input(z, c))
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(3)
        return dist.Normal(out, self.obs_scale).to_event(3)

    def _latent_weight(self):
        return poutine.scale(scale=self.beta) if self.beta > 0 else poutine.mask(mask=False)

    # ----------------------------------------------------------------------------------------- Pyro programs
    def model(self, x: torch.Tensor, c: torch.Tensor) -> None:
        """p(z) p(x | c, z) with x observed; the latent site is scaled by beta."""
        pyro.module(f"{self.name}.decoder", self.decoder)
        self._check(x, c)
        zeros = x.new_zeros(x.shape[0], self.latent_dim)
        with pyro.plate("data", x.shape[0]):
            with self._latent_weight():
                z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            pyro.sample("x", self.likelihood_dist(z, c), obs=x)

    def guide(self, x: torch.Tensor, c: torch.Tensor) -> None:
        """q(z | x, c): a diagonal Gaussian from the encoder and the condition."""
        pyro.module(f"{self.name}.encoder", self.encoder)
        pyro.module(f"{self.name}.posterior_head", self.posterior_head)
        loc, scale = self.posterior(x, c)
        with pyro.plate("data", x.shape[0]):
            with self._latent_weight():
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    # ------------------------------------------------------------------------------------------------- utils
    @torch.no_grad()
    def kl_per_dimension(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``KL(q(z_d | x, c) || N(0, 1))`` in closed form, ``[N, latent_dim]``."""
        return kl_to_standard_normal(*self.posterior(x, c), reduce=False)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Posterior means ``[N, latent_dim]``: the abducted noise."""
        return self.posterior(x, c)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Mean image of p(x | c, z): pixel probabilities (Bernoulli) or means (Gaussian)."""
        self._check(None, c)
        if z.dim() != 2 or z.shape != (c.shape[0], self.latent_dim):
            raise ValueError(f"z must have shape [{c.shape[0]}, {self.latent_dim}], got {tuple(z.shape)}")
        out = self.decoder(self.decoder_input(z, c))
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """decode(encode(x, c), c)."""
        return self.decode(self.encode(x, c), c)

    @torch.no_grad()
    def negative_elbo(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``E_q[-log p(x | c, z)] + KL(q || p)`` per example ``[N]`` on one draw of z (unweighted by beta)."""
        loc, scale = self.posterior(x, c)
        z = loc + scale * torch.randn_like(loc)
        return -self.likelihood_dist(z, c).log_prob(x) + kl_to_standard_normal(loc, scale)
