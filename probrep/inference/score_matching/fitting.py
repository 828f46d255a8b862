"""Fit an energy or score model by score matching on the shared training loop (progress, checkpoints, exact
resume, devices, the caller's random state left alone)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from probrep.inference.score_matching import objectives as sm
from probrep.training import FitResult, FunctionObjective, TrainOptions, train

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
    or a ladder for a noise-conditional model). ``train_kwargs`` are further
    :class:`~probrep.training.options.TrainOptions` (``callbacks``, ``optimizer``, ``log_every``, ...).
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

    options = TrainOptions(
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        device=device,
        seed=seed,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        resume=resume,
        description=train_kwargs.pop("description", f"score matching ({objective})"),
        **train_kwargs,
    )
    return train(FunctionObjective(loss_fn, module=model, config={"objective": objective}), data, options)
