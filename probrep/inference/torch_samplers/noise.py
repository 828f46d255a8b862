"""The sampling loop's random numbers, drawn for many steps at once: at a few chains, drawing per step costs as
much as the sampler's arithmetic."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch

from probrep.inference.torch_samplers.core import always, square

__all__ = ["NoiseBlocks"]


class NoiseBlocks:
    """The loop's random numbers, drawn for many steps in one call (at a few chains, drawing per step costs as
    much as the sampler's arithmetic): normal noise ``v = scale * xi`` [chains, ...] (``xi`` standard normal),
    ``known = |xi|^2 / 2`` [chains] (the part of the log ratio the noise fixes: see :func:`~.core.decide`) and the
    Metropolis thresholds [chains], a log-uniform minus ``known`` (``-inf`` when every move is taken). Each
    ``v`` is the caller's to overwrite. Blocks hold at most about 2**16 numbers; the sequence of draws is a
    function of the generator's seed alone. A block is split into per-step views a chunk at a time (a view
    costs a third of a microsecond; a short run would otherwise pay for a whole block of them)."""

    CHUNK = 32

    def __init__(
        self, x: torch.Tensor, generator: torch.Generator, uniforms: bool, scale: float = 1.0, budget: int = 2**16
    ):
        self.shape, self.generator, self.uniforms, self.scale = tuple(x.shape), generator, uniforms, scale
        self.device, self.dtype = x.device, x.dtype
        self.block = max(1, min(256, budget // max(1, x.numel())))
        self.always = always(x)
        self.blocks: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self.start = self.block  # where the next chunk starts in the current block
        self.views: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = iter(())

    def draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        drawn = next(self.views, None)
        if drawn is None:
            self._next_chunk()
            drawn = next(self.views)
        return drawn

    def _next_chunk(self) -> None:
        if self.start == self.block:
            kw = {"generator": self.generator, "device": self.device, "dtype": self.dtype}
            normals = torch.randn((self.block,) + self.shape, **kw)
            known = square(normals, leading=2).mul_(0.5)
            if self.scale != 1.0:
                normals.mul_(self.scale)
            thresholds = None
            if self.uniforms:
                thresholds = torch.rand((self.block, self.shape[0]), **kw).log_().sub_(known)
            self.blocks, self.start = (normals, known, thresholds), 0
        normals, known, thresholds = self.blocks
        chunk = slice(self.start, min(self.start + self.CHUNK, self.block))
        self.start = chunk.stop
        limits = thresholds[chunk].unbind(0) if thresholds is not None else itertools.repeat(self.always)
        self.views = zip(normals[chunk].unbind(0), known[chunk].unbind(0), limits)
