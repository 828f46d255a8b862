"""A Pyro model's posterior as a batched energy for the torch samplers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from probrep.inference.torch_samplers.core import EnergyFn

__all__ = ["PyroPotential", "pyro_potential"]


@dataclass
class PyroPotential:
    """A Pyro model's posterior as a batched energy on flat unconstrained vectors [chains, dim]."""

    energy: EnergyFn  # x [chains, dim] -> potential energy [chains] (minus log joint, Jacobians included)
    initial: torch.Tensor  # [dim], a valid unconstrained starting point found by Pyro
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    transforms: dict  # name -> transform from the constrained to the unconstrained space

    def unflatten(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split [..., dim] into unconstrained sites [..., *shape]."""
        out, offset = {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = shape.numel()
            out[name] = x[..., offset : offset + size].reshape(x.shape[:-1] + shape)
            offset += size
        return out

    def constrain(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Samples [..., dim] -> constrained site values [..., *shape]."""
        return {name: self.transforms[name].inv(u) for name, u in self.unflatten(x).items()}


def pyro_potential(model: Callable, model_args: tuple = (), model_kwargs: dict | None = None) -> PyroPotential:
    """Wrap a Pyro model's potential energy (``pyro.infer.mcmc.util.initialize_model``) as a batched energy for
    :func:`~.samplers.langevin` / :func:`~.samplers.hmc`. Pyro's potential takes one point, so chains are
    evaluated one after another (fine for a few chains; write a batched energy for many). Pyro finds the
    starting point with its own (torch's global) random numbers, as any Pyro program does."""
    import pyro
    from pyro.infer.mcmc.util import initialize_model

    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    init_params, potential_fn, transforms, _ = initialize_model(model, model_args, model_kwargs or {})
    names = tuple(sorted(init_params))
    shapes = tuple(init_params[n].shape for n in names)
    initial = torch.cat([init_params[n].detach().reshape(-1) for n in names])
    holder = PyroPotential(lambda x: x, initial, names, shapes, transforms)

    def energy(x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != initial.numel():
            raise ValueError(f"expected x of shape [chains, {initial.numel()}], got {tuple(x.shape)}")
        with pyro.validation_enabled(False):
            return torch.stack([potential_fn(holder.unflatten(row)) for row in x])

    holder.energy = energy
    return holder
