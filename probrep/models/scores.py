"""Score functions ``s(x) = grad_x log p(x)`` from energies and unnormalised log densities, by autograd.

Models use them for their ``score`` methods; the score-matching objectives take any such function."""

from __future__ import annotations

from collections.abc import Callable

import torch

ScoreFn = Callable[..., torch.Tensor]


def score_from_energy(energy_fn: Callable[[torch.Tensor], torch.Tensor]) -> ScoreFn:
    """``s(x) = -grad_x E(x)`` for an energy ``E: [N, ...] -> [N]`` (differentiable, for training)."""
    return score_from_log_density(lambda x: -energy_fn(x))


def score_from_log_density(log_density: Callable[[torch.Tensor], torch.Tensor]) -> ScoreFn:
    """``s(x) = grad_x log p(x)`` for an (unnormalised) log density ``[N, ...] -> [N]``."""

    def score(x: torch.Tensor, *args) -> torch.Tensor:
        with torch.enable_grad():
            x_ = x if x.requires_grad else x.detach().requires_grad_(True)
            values = log_density(x_, *args)
            if values.shape != (len(x),):
                raise ValueError(f"the log density/energy must return shape [{len(x)}], got {tuple(values.shape)}")
            (grad,) = torch.autograd.grad(values.sum(), x_, create_graph=True)
        return grad

    return score
