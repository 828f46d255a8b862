"""Energy-based and score models, trained by score matching and sampled with Langevin dynamics.

- :class:`MLPEnergy` / :class:`ConvEnergy`: ``E(x)`` with ``p(x) ~ exp(-E(x))``; ``score(x) = -grad E``.
- :class:`NoiseConditionalScore`: ``s(x, sigma)`` for denoising score matching over a ladder of noise levels
  (Song & Ermon 2019), the output divided by sigma so its scale follows the true score's ~1/sigma.
- :func:`fit_score_model`: any objective of :mod:`probrep.inference.score_matching` through the shared training
  loop (progress, checkpoints, exact resume, devices).
- :func:`annealed_langevin`: unadjusted Langevin at each noise level from the largest down, step
  ``alpha_i = epsilon (sigma_i / sigma_L)^2``; with one level it is plain (unadjusted) Langevin on the score.
  Energy models can also use the Metropolis-adjusted sampler :func:`probrep.inference.langevin.langevin`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from probrep.device import resolve_device
from probrep.inference import score_matching as sm
from probrep.inference.loop import FitResult, train
from probrep.models.layers import mlp


class MLPEnergy(nn.Module):
    """``E(x)`` for vectors ``x [N, dim]`` by an MLP with smooth (SiLU) activations, so scores are smooth."""

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128)):
        super().__init__()
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.net = mlp((self.dim, *hidden, 1), activation=nn.SiLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLPEnergy expects [N, {self.dim}], got {tuple(x.shape)}")
        return self.net(x).squeeze(-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return sm.score_from_energy(self)(x)


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
        return sm.score_from_energy(self)(x)


class NoiseConditionalScore(nn.Module):
    """``s(x, sigma) = MLP([x, log sigma]) / sigma`` for vectors ``x [N, dim]``."""

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128, 128)):
        super().__init__()
        self.dim = int(dim)
        self.net = mlp((self.dim + 1, *hidden, self.dim), activation=nn.SiLU)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(len(x), 1)
        return self.net(torch.cat([x, sigma.log()], dim=1)) / sigma

    score = forward


OBJECTIVES = ("exact", "sliced", "sliced_vr", "denoising")


def fit_score_model(
    model: nn.Module,
    data: Any,
    objective: str = "denoising",
    sigma: float | Sequence[float] | torch.Tensor | None = None,
    n_projections: int = 1,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    **train_kwargs,
) -> FitResult:
    """Train ``model`` (with a ``score`` method) by score matching on ``data [N, ...]``.

    ``objective``: "exact", "sliced" (SSM), "sliced_vr" (SSM-VR) or "denoising" (needs ``sigma``: one level,
    or a ladder for a noise-conditional model).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: expected one of {OBJECTIVES}")
    if objective == "denoising" and sigma is None:
        raise ValueError("objective='denoising' needs sigma (one level or a ladder)")
    if not callable(getattr(model, "score", None)):
        raise TypeError(f"{type(model).__name__} has no score method")

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        if objective == "exact":
            return sm.exact(model.score, x)
        if objective in ("sliced", "sliced_vr"):
            return sm.sliced(model.score, x, n_projections, variance_reduction=objective == "sliced_vr")
        return sm.denoising(model.score, x, sigma)

    return train(
        loss_fn,
        lambda *batch: dict(model.named_parameters()),
        data,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        module=model,
        device=device,
        seed=seed,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        resume=resume,
        description=f"score matching ({objective})",
        run_config={"objective": objective, "lr": float(lr)},
        **train_kwargs,
    )


@torch.no_grad()
def annealed_langevin(
    score_fn,
    x0: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor,
    steps_per_level: int = 100,
    epsilon: float = 1e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    conditional: bool = True,
) -> torch.Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019): for each sigma_i from largest to smallest,
    ``steps_per_level`` unadjusted steps ``x <- x + alpha_i/2 s(x, sigma_i) + sqrt(alpha_i) z`` with
    ``alpha_i = epsilon (sigma_i / sigma_L)^2``. ``conditional=False`` calls ``score_fn(x)`` (plain Langevin on
    one score when ``sigmas`` has one level). Returns the final states ``[chains, ...]``.
    """
    if not torch.is_tensor(x0) or x0.dim() < 2:
        raise ValueError("x0 must be a tensor [chains, ...]")
    sig = torch.as_tensor(sigmas, dtype=x0.dtype).reshape(-1)
    if sig.numel() == 0 or not bool((sig > 0).all()):
        raise ValueError(f"sigmas must be positive, got {sigmas}")
    if not epsilon > 0 or int(steps_per_level) < 1:
        raise ValueError("epsilon must be > 0 and steps_per_level >= 1")
    dev = x0.device if device is None else resolve_device(device)
    x = x0.to(dev).clone()
    sig = sig.to(dev)
    generator = torch.Generator(device=dev).manual_seed(seed)
    total = sig.numel() * int(steps_per_level)
    with tqdm(total=total, desc="annealed Langevin", disable=not progress) as bar:
        for s in sig:
            alpha = epsilon * (s / sig[-1]) ** 2
            for _ in range(int(steps_per_level)):
                score = score_fn(x, s) if conditional else score_fn(x)
                x = x + 0.5 * alpha * score + alpha.sqrt() * torch.randn(x.shape, generator=generator, device=dev)
                bar.update(1)
    return x
