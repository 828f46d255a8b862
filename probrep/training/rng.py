"""A training run's randomness, kept apart from the caller's.

Pyro programs, dropout and ``torch.randn`` draw from torch's global generators, so a run cannot simply be handed a
generator of its own. Instead it forks them (:func:`forked`): inside, they are seeded from the run's seed; on the
way out, the caller's states come back, whatever the run drew. A checkpoint keeps the state inside the fork
(:func:`state`), and :func:`restore` puts it back, so a resumed run continues the very same stream.

Only the CPU generator and the generator of the run's CUDA device (if any) are forked and seeded; other devices'
generators are never touched. Python's ``random`` and NumPy's global generator are not used at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def _cuda_index(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    return device.index if device.index is not None else torch.cuda.current_device()


@contextmanager
def forked(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the body on torch's global generators seeded with ``seed`` (CPU, and ``device`` when it is CUDA),
    then restore the states they had before. The one way probrep draws from torch's global generators (training,
    Pyro sampling of SCMs, the networks' initialisation in experiments) without touching the caller's."""
    device = torch.device("cpu") if device is None else device
    index = _cuda_index(device)
    with torch.random.fork_rng(devices=[] if index is None else [index]):
        # not torch.manual_seed: it would also reseed every other CUDA device, outside the fork
        torch.default_generator.manual_seed(seed)
        if index is not None:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def state(device: torch.device) -> dict[str, torch.Tensor]:
    """The generator states a checkpoint keeps: CPU, and ``device``'s when it is CUDA."""
    saved = {"torch": torch.get_rng_state()}
    index = _cuda_index(device)
    if index is not None:
        saved["cuda"] = torch.cuda.get_rng_state(index)
    return saved


def restore(saved: dict[str, Any], device: torch.device) -> None:
    """Put back what :func:`state` saved (a CUDA state only onto a CUDA device)."""
    torch.set_rng_state(saved["torch"])
    index = _cuda_index(device)
    cuda = saved.get("cuda")
    if index is not None and cuda is not None:
        # checkpoints written before this module held every device's state, as a list
        torch.cuda.set_rng_state(cuda[index] if isinstance(cuda, list | tuple) else cuda, index)
