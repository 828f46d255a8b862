"""What a training run reports: :class:`StepInfo` to callbacks after every step, :class:`FitResult` at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass
class StepInfo:
    """What a callback sees after each step. Returning ``True`` from a callback stops training."""

    step: int
    loss: float
    params: dict[str, torch.Tensor]
    rank: int = 0


# Called after every step; a callback may also have ``on_start(step)``, called once before the first step with
# the number of steps already done (0, or the step a resumed run continues after).
Callback = Callable[[StepInfo], Any]


@dataclass
class FitResult:
    """The outcome of a training run."""

    losses: np.ndarray  # loss of every step from step 1 (including steps before a resume)
    steps: int  # optimisation steps taken in total
    params: dict[str, torch.Tensor]  # the optimised (unconstrained) parameters, by name
    checkpoint: Path | None  # the last checkpoint written, if any
    seconds: float  # wall time of this call
    device: torch.device
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
