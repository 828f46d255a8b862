"""The density-ratio trick: a classifier between samples of P and Q estimates log p/q.

A classifier trained with the logistic loss below has optimal logit ``log p(x)/q(x)`` (the GAN f-divergence's
variational bound at its optimum). FactorVAE uses it to estimate total correlation (P: codes from q(z), Q: the
same codes with each dimension permuted across the batch, a sample of prod_j q(z_j)); the f-GAN objective of
:mod:`probrep.inference.divergences` builds on the same logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classifier_loss(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Logistic loss of a P-vs-Q classifier: ``-E_P[log sigmoid(v)] - E_Q[log(1 - sigmoid(v))]``.

    Minimised over the classifier, ``v(x) -> log p(x)/q(x)``.
    """
    return F.softplus(-logits_p).mean() + F.softplus(logits_q).mean()


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle each column of ``z [N, D]`` independently across rows: a sample of the product of marginals."""
    if z.dim() != 2:
        raise ValueError(f"permute_dims expects codes of shape [N, D], got {tuple(z.shape)}")
    n, d = z.shape
    # argsort of uniform noise gives D independent permutations in one call (no Python loop over dimensions)
    order = torch.rand(n, d, generator=generator, device=z.device).argsort(dim=0)
    return torch.gather(z, 0, order)
