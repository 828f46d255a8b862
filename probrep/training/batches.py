"""Which examples each step sees: a source of batches (tensors, arrays or a map-style Dataset) and a plan that makes
the data order of step ``s`` a pure function of ``(seed, s)``, sharded across data-parallel ranks.

Because the order depends on nothing else (each epoch's permutation comes from a generator seeded by the seed and
the epoch), a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

Batch = tuple[Any, ...]


class _Source:
    """Indexable batches from tensors, arrays or a Dataset; ``None`` means programs without data."""

    def __init__(self, data: Any, device: torch.device):
        self.device = device
        self.dataset: Dataset | None = None
        self.tensors: tuple[torch.Tensor, ...] | None = None
        if data is None:
            self.size = 0
        elif isinstance(data, Dataset) and not torch.is_tensor(data):
            self.dataset = data
            try:
                self.size = len(data)  # type: ignore[arg-type]
            except TypeError as exc:
                raise TypeError(
                    "data: a Dataset must define __len__ (iterable-style datasets are not supported)"
                ) from exc
        else:
            self.tensors = _tensors(data, device)
            self.size = self.tensors[0].shape[0]
        if data is not None and self.size == 0:
            raise ValueError("data is empty")

    def batch(self, index: torch.Tensor) -> Batch:
        if self.tensors is not None:
            index = index.to(self.device)
            return tuple(t[index] for t in self.tensors)
        assert self.dataset is not None
        rows = index.tolist()
        getitems = getattr(self.dataset, "__getitems__", None)  # a Dataset may fetch a batch at once
        items = getitems(rows) if getitems is not None else [self.dataset[i] for i in rows]
        collated = items if torch.is_tensor(items) else default_collate(items)
        parts = collated if isinstance(collated, (tuple, list)) else (collated,)
        return tuple(p.to(self.device) if torch.is_tensor(p) else p for p in parts)


def _tensors(data: Any, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A tensor, an array or a tuple of them, as tensors on ``device`` that share their first dimension."""
    if isinstance(data, Mapping):
        raise TypeError(
            f"data is a mapping ({', '.join(map(repr, list(data)[:4]))}): the programs get the data as positional "
            "arguments, so pass a tuple in the order they take them, e.g. data=(x, y) for model(x, y)"
        )
    parts = data if isinstance(data, (tuple, list)) else (data,)
    tensors = []
    for i, part in enumerate(parts):
        if isinstance(part, np.ndarray):
            part = torch.from_numpy(part)
        if not torch.is_tensor(part):
            raise TypeError(f"data[{i}] must be a tensor or numpy array, got {type(part).__name__}")
        tensors.append(part.to(device))
    sizes = {t.shape[0] if t.dim() else -1 for t in tensors}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(
            f"data tensors must share their first (example) dimension, got shapes {[tuple(t.shape) for t in tensors]}"
        )
    for i, tensor in enumerate(tensors):
        check_finite_rows(tensor, "data" if len(tensors) == 1 else f"data[{i}]")
    return tuple(tensors)


def check_finite_rows(tensor: torch.Tensor, name: str) -> None:
    """Refuse NaN/inf in floating data once, before training, naming the first bad row: found by the loss, a
    NaN in a late batch would stop the run hours in, at a step and not a row."""
    if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
        return
    bad = (~torch.isfinite(tensor)).reshape(tensor.shape[0], -1).any(1).nonzero().reshape(-1)
    first = int(bad[0])
    value = tensor[first].reshape(-1)[~torch.isfinite(tensor[first].reshape(-1))][0].item()
    raise ValueError(
        f"{name} holds NaN or infinite values in {bad.numel()} of {tensor.shape[0]} rows, the first at row {first} "
        f"({value}): remove or impute them before training"
    )


class _BatchPlan:
    """Which examples step ``s`` sees: a pure function of (seed, s), sharded across ranks."""

    def __init__(self, size: int, batch_size: int | None, seed: int, shuffle: bool, rank: int, world: int):
        self.size, self.seed, self.shuffle, self.rank, self.world = size, seed, shuffle, rank, world
        self.local = size // world
        batch_size = self.local if batch_size is None else batch_size  # None: the full batch (options checked it)
        self.batch_size = min(batch_size, self.local) if size else 0
        self.per_epoch = self.local // self.batch_size if size else 0
        if size and self.per_epoch == 0:
            raise ValueError(f"data has {size} examples, too few for {world} rank(s)")
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            if self.shuffle:
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                order = torch.randperm(self.size, generator=generator)
            else:
                order = torch.arange(self.size)
            self._order, self._epoch = order[self.rank :: self.world][: self.local], epoch
        return self._order[position * self.batch_size : (position + 1) * self.batch_size]

    def total_steps(self, steps: int | None, epochs: int | None) -> int:
        """Steps of the run: ``steps`` as given, or ``epochs`` full passes over this rank's shard."""
        if steps is not None:
            return steps
        if not self.size:
            raise ValueError("epochs= needs data; give steps= for programs without data")
        return int(epochs) * self.per_epoch
