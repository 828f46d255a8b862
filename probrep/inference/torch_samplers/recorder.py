"""The sampling loop's bookkeeping: kept states and energies, and running acceptance and divergence totals."""

from __future__ import annotations

import torch

from probrep.inference.torch_samplers.core import ChainState, statistics

__all__ = ["Recorder"]


class Recorder:
    """The kept states and the running acceptance and divergence totals. Holds on to each step's tensors (they
    are fresh every step) and writes them out in blocks, one op per block instead of several per step: at a
    few chains each op costs as much as the arithmetic. The acceptance probabilities and divergence flags are
    computed here, per block, from the steps' log ratios. Blocks hold at most about 2**16 numbers (as
    :class:`~.noise.NoiseBlocks`), so at large batches this is a copy per step into preallocated memory."""

    def __init__(self, x: torch.Tensor, kept: int, budget: int = 2**16):
        chains, kw = x.shape[0], {"device": x.device, "dtype": x.dtype}
        self.samples = torch.empty((kept,) + tuple(x.shape), **kw)
        self.energies = torch.empty((kept, chains), **kw)
        self.accept_sum = torch.zeros(chains, **kw)
        self.divergences = torch.zeros(chains, device=x.device, dtype=torch.int64)
        self.block = max(1, min(256, budget // max(1, x.numel())))
        self.xs: list[torch.Tensor] = []
        self.es: list[torch.Tensor] = []
        self.partials: list[torch.Tensor] = []
        self.knowns: list[torch.Tensor] = []
        self.written = 0

    def step(self, partial: torch.Tensor, known: torch.Tensor) -> None:
        """A sampling step's log ratio, ``partial + known`` (see :func:`~.core.decide`)."""
        self.partials.append(partial)
        self.knowns.append(known)
        if len(self.partials) == self.block:
            self._flush_statistics()

    def keep(self, state: ChainState) -> None:
        self.xs.append(state.x)
        self.es.append(state.energy)
        if len(self.xs) == self.block:
            self._flush_states()

    def _flush_statistics(self) -> None:
        if self.partials:
            accept_prob, diverging = statistics(torch.stack(self.partials).add_(torch.stack(self.knowns)))
            self.accept_sum.add_(accept_prob.sum(0))
            self.divergences.add_(diverging.sum(0))
            self.partials, self.knowns = [], []

    def _flush_states(self) -> None:
        if self.xs:
            end = self.written + len(self.xs)
            torch.stack(self.xs, out=self.samples[self.written : end])
            torch.stack(self.es, out=self.energies[self.written : end])
            self.written, self.xs, self.es = end, [], []

    def close(self) -> None:
        self._flush_statistics()
        self._flush_states()
