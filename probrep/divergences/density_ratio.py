"""The density-ratio trick: a classifier between samples of P and Q estimates log p/q.

A classifier trained with the logistic loss below has optimal logit ``log p(x)/q(x)``: the loss is minus the
variational bound of the GAN row of the f table (:mod:`probrep.divergences.fdiv`), whose optimal critic is that
logit. FactorVAE uses it to estimate total correlation (P: codes from q(z), Q: the same codes with each dimension
permuted across the batch, a sample of prod_j q(z_j)); the f-GAN objective and the JS-trained mutual-information
bound evaluate the same table row.
"""

from __future__ import annotations

import torch

from probrep.divergences.fdiv import f_lower_bound


def classifier_loss(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Logistic loss of a P-vs-Q classifier: ``-E_P[log sigmoid(v)] - E_Q[log(1 - sigmoid(v))]``.

    This is ``-f_lower_bound(logits_p, logits_q, "gan")`` (``g(v) = log sigmoid(v)``, ``f*(g(v)) = softplus(v)``).
    Minimised over the classifier, ``v(x) -> log p(x)/q(x)``.
    """
    return -f_lower_bound(logits_p, logits_q, "gan")


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle each column of ``z [N, D]`` independently across rows: a sample of the product of marginals."""
    if z.dim() != 2:
        raise ValueError(f"permute_dims expects codes of shape [N, D], got {tuple(z.shape)}")
    n, d = z.shape
    # argsort of uniform noise gives D independent permutations in one call (no Python loop over dimensions)
    order = torch.rand(n, d, generator=generator, device=z.device).argsort(dim=0)
    return torch.gather(z, 0, order)
