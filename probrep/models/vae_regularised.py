"""The two regularised VAEs of Locatello et al.'s study (2019) that complete the family: DIP-VAE-I/II (Kumar et al.
2018) and the AnnealedVAE (Burgess et al. 2018). Both are :class:`~probrep.models.vae.VAE` programs with one
extra term; like disentanglement_lib, the term is added once per example to a loss summed over the batch.

    DIP-VAE:      -ELBO + M * [lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2]
                  C = Cov_batch[mu(x)]                     (type "i")
                  C = Cov_batch[mu(x)] + mean_batch diag sigma^2(x)   (type "ii", the covariance of q(z))
    AnnealedVAE:  -E_q[log p(x|z)] + M * gamma |KL_batch - C|,  gamma = ``capacity_weight``,
                  KL_batch the batch-mean KL(q(z|x) || p(z)),
                  C the capacity, annealed linearly from 0 to c_max (``AnnealAttribute(vae, "capacity", ...)``)

M is the batch size. The terms enter the guide as ``pyro.factor`` sites outside the data plate (a guide factor
f adds f to the loss; :meth:`VAE.guide_penalty` is the hook), computed from the encoder's outputs the guide
drew z from, so every Pyro ELBO differentiates them exactly.
"""

from __future__ import annotations

from typing import Any

import pyro
import torch

from probrep._checks import one_of, real
from probrep.models.vae import VAE, kl_to_standard_normal

DIP_TYPES = ("i", "ii")


def dip_penalty(loc: torch.Tensor, scale: torch.Tensor, kind: str, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """``lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2`` for the batch covariance C of DIP-VAE
    ``kind`` "i" (of the means) or "ii" (of q(z): the means' covariance plus the mean posterior variance)."""
    centred = loc - loc.mean(0, keepdim=True)
    cov = centred.T @ centred / loc.shape[0]
    if kind == "ii":
        cov = cov + torch.diag((scale**2).mean(0))
    diagonal = torch.diagonal(cov)
    off = cov - torch.diag(diagonal)
    return lambda_od * (off**2).sum() + lambda_d * ((diagonal - 1.0) ** 2).sum()


class DIPVAE(VAE):
    """DIP-VAE (Kumar et al. 2018): the VAE with the covariance of the inferred codes pushed towards I.

    Args:
        dip_type: ``"i"`` (covariance of the encoder means) or ``"ii"`` (covariance of q(z)).
        lambda_od: weight of the off-diagonal entries (disentanglement_lib sweeps 1-50; 10 here).
        lambda_d: weight of the diagonal; ``None`` gives disentanglement_lib's default (10 lambda_od for type
            "i", lambda_od for type "ii").
    """

    def __init__(self, *args, dip_type: str = "ii", lambda_od: float = 10.0, lambda_d: float | None = None, **kw):
        super().__init__(*args, **kw)
        self.dip_type = one_of(dip_type, "dip_type", DIP_TYPES)
        self.lambda_od = real(lambda_od, "lambda_od", nonnegative=True)
        default = 10.0 * self.lambda_od if self.dip_type == "i" else self.lambda_od
        self.lambda_d = default if lambda_d is None else real(lambda_d, "lambda_d", nonnegative=True)

    @property
    def run_config(self) -> dict[str, Any]:
        """The VAE's settings with the DIP type and both weights of the penalty."""
        return {**super().run_config, "dip_type": self.dip_type, "lambda_od": self.lambda_od, "lambda_d": self.lambda_d}

    def guide_penalty(self, x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> None:
        penalty = dip_penalty(loc, scale, self.dip_type, self.lambda_od, self.lambda_d)
        pyro.factor("dip_penalty", x.shape[0] * penalty, has_rsample=True)


class AnnealedVAE(VAE):
    """AnnealedVAE (Burgess et al. 2018): the KL held near a capacity C that grows during training.

    Args:
        capacity_weight: the paper's gamma, the weight of ``|KL - C|`` (disentanglement_lib: 1000).
        c_max: the capacity C reaches (nats; disentanglement_lib sweeps 5-100).
        capacity: C now; a training callback anneals it (``AnnealAttribute(vae, "capacity",
            linear_anneal(0.0, c_max, steps))`` from :mod:`probrep.training.schedules`).
    """

    default_elbo = "meanfield"

    def __init__(self, *args, capacity_weight: float = 1000.0, c_max: float = 25.0, capacity: float = 0.0, **kw):
        # the latent site's own KL is scaled out of both programs (beta = 0): the capacity term replaces it
        super().__init__(*args, beta=0.0, **kw)
        self.capacity_weight = real(capacity_weight, "capacity_weight", nonnegative=True)
        self.c_max = real(c_max, "c_max", nonnegative=True)
        self.capacity = real(capacity, "capacity", nonnegative=True)

    @property
    def run_config(self) -> dict[str, Any]:
        """The VAE's settings with the capacity's weight and target; not the capacity now, which is annealed."""
        return {**super().run_config, "capacity_weight": self.capacity_weight, "c_max": self.c_max}

    def guide_penalty(self, x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> None:
        kl = kl_to_standard_normal(loc, scale).mean()
        penalty = self.capacity_weight * (kl - self.capacity).abs()
        pyro.factor("capacity_penalty", x.shape[0] * penalty, has_rsample=True)
