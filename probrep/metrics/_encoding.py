"""Codes of factor vectors for the sampled scores: render, encode, and encode each distinct vector once.

The BetaVAE and FactorVAE protocols draw millions of factor vectors from a finite grid (dSprites: 737,280 points;
the two protocols together draw 2.9 million), and nearly all of their time is the encoder's forward passes. A
deterministic encoder (posterior means, as disentanglement_lib scores) gives the same code every time it sees
the same image, so each distinct factor vector needs encoding once: :class:`CodeCache` keeps the codes by grid
index, shared by the phases of one score and, when a caller passes one cache to both, by the two scores. The
numbers are those of encoding every draw as drawn, exactly, for any encoder whose code of an image does not
depend on the other images in its batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from probrep._checks import one_of
from probrep.device import resolve_device
from probrep.metrics._arrays import to_numpy

logger = logging.getLogger("probrep.metrics")

INPUTS = ("auto", "numpy", "torch")


def make_encoder(
    encode: Callable[[Any], Any], inputs: str, device: str | torch.device | None
) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap ``encode`` as numpy images -> float64 codes ``[n, D]``, choosing numpy or torch inputs."""
    if not callable(encode):
        raise TypeError(f"encode must be callable (images -> codes), got {type(encode).__name__}")
    one_of(inputs, "inputs", INPUTS)
    module = encode if isinstance(encode, torch.nn.Module) else getattr(encode, "__self__", None)
    module = module if isinstance(module, torch.nn.Module) else None
    use_torch = inputs == "torch" or (inputs == "auto" and (module is not None or device is not None))
    if use_torch:
        if device is not None:
            dev = resolve_device(device)
        else:
            param = next(module.parameters(), None) if module is not None else None
            dev = param.device if param is not None else torch.device("cpu")

    def run(images: np.ndarray) -> np.ndarray:
        if use_torch:
            with torch.inference_mode():
                out = encode(torch.from_numpy(np.ascontiguousarray(images)).to(dev))
        else:
            out = encode(images)
        codes = to_numpy(out, "encode(images)").astype(np.float64, copy=False)
        if codes.ndim != 2 or codes.shape[0] != images.shape[0]:
            raise ValueError(
                f"encode must return codes of shape [n, D] for n={images.shape[0]} images, got {codes.shape}"
            )
        if not np.all(np.isfinite(codes)):
            raise ValueError("encode returned NaN or infinite codes")
        return codes

    return run


class CodeCache:
    """Codes of one deterministic encoder on one dataset's factor grid, by grid index.

    Pass the same cache to :func:`~probrep.metrics.factor_vae_score` and :func:`~probrep.metrics.beta_vae_score`
    (``cache=``) to encode each factor vector once across both; a cache used with another encoder or dataset
    raises ``ValueError``. It holds ``D`` float64 numbers per distinct vector seen (dSprites' whole grid at
    ``D = 10``: 59 MB). ``len(cache)`` is the number of vectors it holds; ``encoded`` counts the images it encoded.
    """

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=np.int64)  # sorted grid indices
        self._codes: np.ndarray | None = None  # [len(keys), D], rows in the order of keys
        self._owner: tuple[Any, Any] | None = None
        self.encoded = 0

    def __len__(self) -> int:
        return int(self._keys.size)

    def bind(self, dataset: Any, encode: Any) -> None:
        """Tie the cache to its first (dataset, encode); refuse another pair (its codes would be wrong)."""
        if self._owner is None:
            self._owner = (dataset, encode)
        elif self._owner[0] is not dataset or not (self._owner[1] is encode or self._owner[1] == encode):
            raise ValueError("this CodeCache holds the codes of another encode/dataset; use a fresh CodeCache()")

    def missing(self, keys: np.ndarray) -> np.ndarray:
        """The entries of the sorted unique ``keys`` not held yet."""
        pos = np.searchsorted(self._keys, keys)
        held = pos < self._keys.size
        held[held] = self._keys[pos[held]] == keys[held]
        return keys[~held]

    def add(self, keys: np.ndarray, codes: np.ndarray) -> None:
        """Hold ``codes [n, D]`` for the new sorted unique ``keys [n]``."""
        if self._codes is not None and codes.shape[1] != self._codes.shape[1]:
            raise ValueError(f"encode returned {codes.shape[1]} code dimensions, earlier {self._codes.shape[1]}")
        all_keys = np.concatenate([self._keys, keys])
        all_codes = codes if self._codes is None else np.concatenate([self._codes, codes])
        order = np.argsort(all_keys, kind="stable")
        self._keys, self._codes = all_keys[order], all_codes[order]
        self.encoded += keys.size

    def take(self, keys: np.ndarray) -> np.ndarray:
        """Codes ``[n, D]`` of held ``keys [n]`` (any order, repeats allowed)."""
        assert self._codes is not None
        return self._codes[np.searchsorted(self._keys, keys)]


class Lookup:
    """Factor vectors ``[..., K]`` -> codes ``[..., D]``: rendered and encoded ``chunk`` images at a time, each
    distinct vector once through ``cache`` (``cache=None``: every vector as drawn, in order, as before the cache
    existed; for encoders that sample)."""

    def __init__(
        self, dataset: Any, encoder: Callable, sizes: np.ndarray, chunk: int, cache: CodeCache | None, bar: Any
    ) -> None:
        self.dataset, self.encoder, self.chunk, self.cache, self.bar = dataset, encoder, chunk, cache, bar
        self.sizes = sizes
        if cache is not None and float(np.prod(sizes.astype(float))) >= 2.0**62:  # grid indices would overflow
            logger.info("factor grid %s too large to index: every draw is encoded", tuple(sizes))
            self.cache = None

    def _encode(self, factors: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, factors.shape[0], self.chunk):
            block = factors[start : start + self.chunk]
            parts.append(self.encoder(np.asarray(self.dataset.render(block))))
            self.bar.update(block.shape[0])
        if not parts:
            return np.empty((0, 0))
        dims = {p.shape[1] for p in parts}
        if len(dims) > 1:
            raise ValueError(f"encode returned codes of {sorted(dims)} dimensions for different batches")
        return np.concatenate(parts)

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        shape = factors.shape[:-1]
        flat = factors.reshape(-1, factors.shape[-1])
        if self.cache is None or not np.issubdtype(flat.dtype, np.integer):
            codes = self._encode(flat)
            return codes.reshape(*shape, codes.shape[-1])
        if np.any(flat < 0) or np.any(flat >= self.sizes):
            raise ValueError(f"dataset.sample_factors returned classes outside factor_sizes {tuple(self.sizes)}")
        keys = np.ravel_multi_index(tuple(flat.T), tuple(self.sizes))
        unique = np.unique(keys)
        new = self.cache.missing(unique)
        self.bar.total = (self.bar.total or 0) - (keys.size - new.size)  # the bar counts images encoded
        self.bar.refresh()
        if new.size:
            self.cache.add(new, self._encode(np.stack(np.unravel_index(new, tuple(self.sizes)), axis=1)))
        codes = self.cache.take(keys)
        return codes.reshape(*shape, codes.shape[-1])
