"""Energy-based and score models: networks whose energy or score is trained by score matching.

- :class:`MLPEnergy` / :class:`ConvEnergy`: ``E(x)`` with ``p(x) ~ exp(-E(x))``; ``score(x) = -grad E``.
- :class:`NoiseConditionalScore`: ``s(x, sigma)`` for denoising score matching over a ladder of noise levels
  (Song & Ermon 2019), the output divided by sigma so its scale follows the true score's ~1/sigma.

Fitting (:func:`probrep.inference.score_matching.fit_score_model`) and sampling
(:func:`probrep.inference.score_matching.annealed_langevin`, :func:`probrep.inference.langevin.langevin`) live in
``inference``: a model never imports the tools that fit it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from probrep._checks import integer
from probrep.models.layers import mlp
from probrep.models.scores import score_from_energy


class MLPEnergy(nn.Module):
    """``E(x)`` for vectors ``x [N, dim]`` by an MLP with smooth (SiLU) activations, so scores are smooth."""

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128)):
        super().__init__()
        self.dim = integer(dim, "dim")
        self.net = mlp((self.dim, *hidden, 1), activation=nn.SiLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLPEnergy expects [N, {self.dim}], got {tuple(x.shape)}")
        return self.net(x).squeeze(-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return score_from_energy(self)(x)


class ConvEnergy(nn.Module):
    """``E(x)`` for images ``[N, C, H, W]``: three stride-2 SiLU convolutions, global average pool, linear."""

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int] = (32, 64, 64)):
        super().__init__()
        c = int(image_shape[0])
        layers: list[nn.Module] = []
        for n_in, n_out in zip((c, *channels[:-1]), channels):
            layers += [nn.Conv2d(n_in, n_out, 3, stride=2, padding=1), nn.SiLU()]
        self.image_shape = tuple(int(s) for s in image_shape)
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"ConvEnergy expects [N, {', '.join(map(str, self.image_shape))}], got {tuple(x.shape)}")
        return self.net(x).squeeze(-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return score_from_energy(self)(x)


class NoiseConditionalScore(nn.Module):
    """``s(x, sigma) = MLP([x, log sigma]) / sigma`` for vectors ``x [N, dim]``."""

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128, 128)):
        super().__init__()
        self.dim = integer(dim, "dim")
        self.net = mlp((self.dim + 1, *hidden, self.dim), activation=nn.SiLU)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(len(x), 1)
        return self.net(torch.cat([x, sigma.log()], dim=1)) / sigma

    score = forward


_MOVED = ("fit_score_model", "annealed_langevin", "OBJECTIVES")


def __getattr__(name: str):
    # A deprecated alias, kept because the README once imported these from here: fitting and sampling live in
    # probrep.inference.score_matching, and a model module never imports inference at import time.
    if name in _MOVED:
        warnings.warn(
            f"probrep.models.ebm.{name} moved to probrep.inference.score_matching.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("probrep.inference.score_matching"), name)
    raise AttributeError(f"module 'probrep.models.ebm' has no attribute {name!r}")
