"""Annealed Langevin dynamics (Song & Ermon 2019) for noise-conditional score models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from probrep._checks import integer, real
from probrep.device import resolve_device


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
    real(epsilon, "epsilon", positive=True)
    steps_per_level = integer(steps_per_level, "steps_per_level")
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
