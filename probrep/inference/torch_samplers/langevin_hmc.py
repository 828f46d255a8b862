"""Batched Langevin (MALA / ULA) and HMC for torch energy functions: all chains move in one call, on any device.

``energy_fn(x)`` maps a batch of states ``x`` [chains, ...] to energies [chains] (``p(x) ~ exp(-E(x))``); a
learned energy model, or a Pyro model's potential (:func:`pyro_potential`). Each sampler is a pure pair,
``*_init(energy_fn, x) -> state`` and ``*_step(state, energy_fn, step_size, generator) -> (state, info)``; the
loops :func:`langevin` and :func:`hmc` add per-chain step-size adaptation (dual averaging, :mod:`.adaptation`),
progress and bookkeeping on top.

Langevin uses the same parameterisation as the JAX kernels: with ``g = grad E(x)`` and step ``e`` (the noise
variance),

    x' = x - (e/2) g + sqrt(e) xi,    log alpha = E(x) - E(x') - 1/2 (|xi - (sqrt(e)/2)(g + g')|^2 - |xi|^2),

accepted with probability ``min(1, alpha)`` when ``adjust`` (MALA) and always otherwise (ULA, biased).
HMC takes ``num_leapfrog`` leap-frog steps of size ``h`` with unit mass and accepts on the change of
``H = E(x) + |p|^2 / 2``. Non-finite energies or gradients at a proposal reject it and count a divergence.

Speed. At a few chains every eager op costs about as much as the arithmetic it does, so a step is the fewest
ops that move the chains: the proposal, the log ratio, one comparison and the three selections. The loops draw
random numbers for many steps at once, and with them the part of the log ratio that the noise alone fixes
(``|xi|^2 / 2``, HMC's initial kinetic energy), which they fold into the Metropolis threshold. They derive the
acceptance probability and the divergence flag from the log ratio only where they are used: every step during
warm-up (the adaptation needs them), once per block of steps while sampling.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from probrep.device import resolve_device
from probrep.inference.mcmc import adaptation as adapt

__all__ = [
    "ChainState",
    "StepInfo",
    "SamplerResult",
    "energy_and_grad",
    "langevin_init",
    "langevin_step",
    "hmc_init",
    "hmc_step",
    "langevin",
    "hmc",
    "pyro_potential",
]

logger = logging.getLogger(__name__)

MAX_ENERGY_ERROR = 1000.0
EnergyFn = Callable[[torch.Tensor], torch.Tensor]


class ChainState(NamedTuple):
    """Positions [chains, ...], their energies [chains] and energy gradients [chains, ...]."""

    x: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor


class StepInfo(NamedTuple):
    accept_prob: torch.Tensor  # [chains], min(1, alpha); 0 for a non-finite proposal
    accepted: torch.Tensor  # [chains] bool: whether the chain moved
    diverging: torch.Tensor  # [chains] bool


@dataclass
class SamplerResult:
    """What :func:`langevin` and :func:`hmc` return."""

    samples: torch.Tensor  # [kept steps, chains, ...]
    energy: torch.Tensor  # [kept steps, chains]
    accept_rate: torch.Tensor  # [chains], mean acceptance probability over the sampling steps
    step_size: torch.Tensor  # [chains], the (adapted) step size used for sampling
    divergences: torch.Tensor  # [chains], divergent transitions while sampling
    num_grad_evals: int  # energy-gradient evaluations per chain, warm-up and step-size search included
    num_warmup: int
    seconds: float


def energy_and_grad(energy_fn: EnergyFn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``E(x)`` [chains] and ``grad E(x)`` [chains, ...], detached (chains are independent, so the gradient of
    the summed energy is each chain's own gradient: seeding the backward pass with ones is that sum, without
    the sum's forward and backward nodes)."""
    with torch.enable_grad():
        return _gradient(energy_fn, x)


def _gradient(
    energy_fn: EnergyFn, x: torch.Tensor, ones: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`energy_and_grad` with gradients already enabled; the samplers' inner loops pass the backward seed
    ``ones`` (:func:`_ones` of the chains' energies) that they hold for the whole run."""
    x = x.detach().requires_grad_(True)
    energy = energy_fn(x)
    seed = ones if ones is not None else _ones(energy)
    (grad,) = torch.autograd.grad((energy,), (x,), (seed,))  # tuples: autograd.grad converts anything else
    return energy.detach(), grad


_ONES: dict[tuple, torch.Tensor] = {}


def _ones(like: torch.Tensor) -> torch.Tensor:
    """Cached ones shaped like ``like`` (per shape, device and dtype: the chains' energies). An expanded scalar,
    so that a backward pass that wrongly wrote into its incoming gradient would raise instead of corrupting it."""
    key = (like.shape, like.device, like.dtype)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = torch.ones((), device=like.device, dtype=like.dtype).expand(like.shape)
    return ones


def _check_energy(energy_fn: EnergyFn, x: torch.Tensor) -> ChainState:
    if not callable(energy_fn):
        raise TypeError(f"energy_fn must be callable, got {type(energy_fn).__name__}")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        energy = energy_fn(xg)
        if not torch.is_tensor(energy) or energy.shape != (x.shape[0],):
            shape = tuple(energy.shape) if torch.is_tensor(energy) else type(energy).__name__
            raise ValueError(
                f"energy_fn must return one energy per chain, shape ({x.shape[0]},) for x of shape "
                f"{tuple(x.shape)}; got {shape}"
            )
        if not energy.requires_grad:
            raise ValueError("energy_fn's output does not depend differentiably on x (no gradient)")
        (grad,) = torch.autograd.grad(energy.sum(), xg)
    bad = ~(torch.isfinite(energy) & torch.isfinite(grad).flatten(1).all(1))
    if bad.any():
        raise ValueError(
            f"the energy or its gradient is not finite at x0 for chains {bad.nonzero().flatten().tolist()}"
        )
    return ChainState(x.detach(), energy.detach(), grad)


def langevin_init(energy_fn: EnergyFn, x: torch.Tensor) -> ChainState:
    """The state at ``x`` [chains, ...]; checks the energy's shape and finiteness."""
    return _check_energy(energy_fn, x)


hmc_init = langevin_init


@functools.cache
def _chain_shape(dim: int) -> tuple[int, ...]:
    return (-1,) + (1,) * (dim - 1)


def _per_chain(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``v`` [chains] viewed to broadcast against ``x`` [chains, ...]."""
    return v.view(_chain_shape(x.dim()))


def _square(v: torch.Tensor, leading: int = 1) -> torch.Tensor:
    """``|v|^2`` over the event dimensions of ``v``, which follow its ``leading`` dimensions ([chains], or
    [steps, chains] for a block of noise)."""
    flat = v if v.dim() == leading + 1 else v.flatten(leading)
    return torch.linalg.vecdot(flat, flat)


def _decide(state, x_new, energy_new, grad_new, partial, threshold) -> tuple[ChainState, torch.Tensor]:
    """The Metropolis decision per chain, shared by Langevin and HMC: move where ``threshold < partial``.

    The log ratio is ``partial + known``, with ``known`` the part the step's random numbers fix before it moves
    (``|xi|^2 / 2`` for Langevin, the initial kinetic energy for HMC); ``threshold`` [chains] is the log of a
    uniform minus ``known`` for MALA and HMC, and ``-inf`` for ULA, which always moves.

    A non-finite proposal never moves: ``partial`` is NaN (every comparison false) or ``-inf`` there, because
    the energy enters it as ``E(x) - E(x')`` with a non-finite ``E(x')`` made ``+inf`` by the caller, and a
    non-finite gradient enters it through a squared norm. Returns the new state and ``accepted`` [chains]."""
    accepted = threshold < partial
    mask = _per_chain(accepted, state.x)
    new = ChainState(
        torch.where(mask, x_new, state.x),
        torch.where(accepted, energy_new, state.energy),
        torch.where(mask, grad_new, state.grad),
    )
    return new, accepted


def _finite_energy(energy: torch.Tensor) -> torch.Tensor:
    """``energy`` with NaN and -inf made +inf, and +inf kept (``nan_to_num`` would make it the largest float): a
    proposal there has log ratio -inf, so it is never taken, not even by ULA."""
    return torch.nan_to_num(energy, math.inf, math.inf, math.inf)  # positional: keywords cost a microsecond


def _statistics(log_ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``min(1, alpha)`` (0 for a non-finite proposal) and the divergence flag (log ratio NaN or below
    ``-MAX_ENERGY_ERROR``) from log ratios of any shape."""
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf, posinf=-math.inf)
    return log_ratio.clamp(max=0.0).exp_(), log_ratio < -MAX_ENERGY_ERROR


def _step_info(partial: torch.Tensor, known: torch.Tensor, accepted: torch.Tensor) -> StepInfo:
    accept_prob, diverging = _statistics(partial + known)
    return StepInfo(accept_prob, accepted, diverging)


class _Shaped(NamedTuple):
    """Per-chain step-size factors broadcast against the state, for the noise ``z = xi / sqrt(2)`` (see
    :func:`_langevin_move`): ``sqrt(2 e)`` and ``-sqrt(e / 8)``."""

    root: torch.Tensor
    neg_drift: torch.Tensor

    @classmethod
    def of(cls, e: torch.Tensor, x: torch.Tensor) -> _Shaped:
        return cls(_per_chain(e.mul(2.0).sqrt_(), x), _per_chain(e.mul(0.125).sqrt_().neg_(), x))


def _langevin_move(
    state, energy_fn, shaped: _Shaped, z, threshold, ones
) -> tuple[ChainState, torch.Tensor, torch.Tensor]:
    """The step with the step sizes ``shaped``, the noise ``z = xi / sqrt(2)`` [chains, ...] (consumed: it is
    overwritten), the Metropolis ``threshold`` [chains] (see :func:`_decide`, with ``known = |z|^2``) and the
    backward seed ``ones``; returns the new state, ``partial`` (the log ratio minus ``|z|^2``) and ``accepted``.

    With ``w = z - sqrt(e/8) g`` the proposal ``x - (e/2) g + sqrt(e) xi`` is ``x + sqrt(2e) w``, and
    ``r = w - sqrt(e/8) g'`` is the reverse move's noise over ``sqrt(2)``, so
    ``log alpha = E(x) - E(x') - |r|^2 + |z|^2``. The scaling by ``sqrt(2)`` saves an op per step; the
    temporary is ``z`` itself, updated in place, and there is one reduction over the state."""
    x, energy, grad = state
    w = z.addcmul_(shaped.neg_drift, grad)
    x_new = torch.addcmul(x, shaped.root, w)
    energy_new, grad_new = _gradient(energy_fn, x_new, ones)
    energy_new = _finite_energy(energy_new)
    r = w.addcmul_(shaped.neg_drift, grad_new)
    partial = torch.sub(energy, energy_new).sub_(_square(r))
    new, accepted = _decide(state, x_new, energy_new, grad_new, partial, threshold)
    return new, partial, accepted


def _log_uniform(chains: int, like: torch.Tensor, generator) -> torch.Tensor:
    return torch.rand(chains, generator=generator, device=like.device, dtype=like.dtype).log_()


def langevin_step(
    state: ChainState,
    energy_fn: EnergyFn,
    step_size: torch.Tensor,
    generator: torch.Generator | None = None,
    adjust: bool = True,
    noise: torch.Tensor | None = None,
) -> tuple[ChainState, StepInfo]:
    """One batched Langevin step with per-chain ``step_size`` [chains] (the noise variance ``e``)."""
    x = state.x
    xi = noise if noise is not None else torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    z = xi.expand(x.shape) * math.sqrt(0.5)  # a fresh tensor: the caller's noise is not overwritten
    known = _square(z)
    threshold = (_log_uniform(x.shape[0], x, generator) if adjust else _always(x)) - known
    with torch.enable_grad():
        shaped, ones = _Shaped.of(step_size, x), _ones(state.energy)
        new, partial, accepted = _langevin_move(state, energy_fn, shaped, z, threshold, ones)
    return new, _step_info(partial, known, accepted)


def _always(x: torch.Tensor) -> torch.Tensor:
    """The threshold of a move that is always taken (ULA): ``-inf`` [chains]."""
    return torch.full((x.shape[0],), -math.inf, device=x.device, dtype=x.dtype)


class _NoiseBlocks:
    """The loop's random numbers, drawn for many steps in one call (at a few chains, drawing per step costs as
    much as the sampler's arithmetic): normal noise ``v = scale * xi`` [chains, ...] (``xi`` standard normal),
    ``known = |xi|^2 / 2`` [chains] (the part of the log ratio the noise fixes: see :func:`_decide`) and the
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
        self.always = _always(x)
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
            known = _square(normals, leading=2).mul_(0.5)
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


class _Recorder:
    """The kept states and the running acceptance and divergence totals. Holds on to each step's tensors (they
    are fresh every step) and writes them out in blocks, one op per block instead of several per step: at a
    few chains each op costs as much as the arithmetic. The acceptance probabilities and divergence flags are
    computed here, per block, from the steps' log ratios. Blocks hold at most about 2**16 numbers (as
    :class:`_NoiseBlocks`), so at large batches this is a copy per step into preallocated memory."""

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
        """A sampling step's log ratio, ``partial + known`` (see :func:`_decide`)."""
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
            accept_prob, diverging = _statistics(torch.stack(self.partials).add_(torch.stack(self.knowns)))
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


def hmc_step(
    state: ChainState,
    energy_fn: EnergyFn,
    step_size: torch.Tensor,
    num_leapfrog: int,
    generator: torch.Generator | None = None,
    momentum: torch.Tensor | None = None,
    log_u: torch.Tensor | None = None,
) -> tuple[ChainState, StepInfo]:
    """One batched HMC transition: fresh momentum (or ``momentum``), ``num_leapfrog`` leap-frog steps of
    per-chain size ``step_size`` [chains], Metropolis accept on ``H = E + |p|^2/2`` (against ``log_u`` if given)."""
    x = state.x
    p = momentum if momentum is not None else torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    log_u = log_u if log_u is not None else _log_uniform(x.shape[0], x, generator)
    kinetic0 = _square(p).mul_(0.5)
    with torch.enable_grad():
        h, ones = _per_chain(step_size, x), _ones(state.energy)
        new, partial, accepted = _hmc_move(state, energy_fn, h, num_leapfrog, p, log_u - kinetic0, ones)
    return new, _step_info(partial, kinetic0, accepted)


def _hmc_move(state, energy_fn, h, num_leapfrog, p, threshold, ones) -> tuple[ChainState, torch.Tensor, torch.Tensor]:
    """Leap-frog from ``state`` with momentum ``p`` and per-chain step ``h`` broadcast against the state, the
    Metropolis ``threshold`` (see :func:`_decide`, ``known = |p|^2 / 2``) and the backward seed ``ones``; returns
    the new state, ``partial`` (the log ratio minus ``|p|^2 / 2``) and ``accepted``."""
    x, energy, grad = state
    p = torch.addcmul(p, h, grad, value=-0.5)
    x_new, energy_new, grad_new = x, energy, grad
    for leap in range(num_leapfrog):
        x_new = torch.addcmul(x_new, h, p)
        energy_new, grad_new = _gradient(energy_fn, x_new, ones)
        p = torch.addcmul(p, h, grad_new, value=-1.0 if leap < num_leapfrog - 1 else -0.5)
    energy_new = _finite_energy(energy_new)
    partial = torch.sub(energy, energy_new).sub_(_square(p), alpha=0.5)
    new, accepted = _decide(state, x_new, energy_new, grad_new, partial, threshold)
    return new, partial, accepted


def _find_step_size(state, energy_fn, generator, initial=1.0, threshold=0.5, max_iter=40) -> tuple[torch.Tensor, int]:
    """Per chain, double (halve) ``e`` from ``initial`` until the one-step MALA acceptance at fixed noise crosses
    ``threshold``. Returns the step sizes and the number of (batched) gradient evaluations spent."""
    chains = state.x.shape[0]
    noise = torch.randn(state.x.shape, generator=generator, device=state.x.device, dtype=state.x.dtype)

    def accept(e):
        return langevin_step(state, energy_fn, e, generator, adjust=False, noise=noise)[1].accept_prob

    e = torch.full((chains,), float(initial), device=state.x.device, dtype=state.x.dtype)
    above = accept(e) > threshold
    direction = torch.where(above, 2.0, 0.5).to(e.dtype)
    active = torch.ones_like(above)
    evals = 1
    for _ in range(max_iter):
        e = torch.where(active, e * direction, e)
        crossed = (accept(e) > threshold) != above
        evals += 1
        active = active & ~crossed
        if not bool(active.any()):
            break
    return e, evals


def _check_x0(x0, device) -> torch.Tensor:
    if not torch.is_tensor(x0):
        raise TypeError(f"x0 must be a torch tensor [chains, ...], got {type(x0).__name__}")
    if not x0.is_floating_point():
        raise TypeError(f"x0 must be a floating-point tensor, got dtype {x0.dtype}")
    if x0.dim() < 2 or x0.numel() == 0:
        raise ValueError(
            f"x0 must have shape [chains, ...] with at least 2 dims and no empty dim, got {tuple(x0.shape)} "
            "(for a scalar target pass x0[:, None])"
        )
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 contains NaN or infinite values")
    return x0.detach().to(resolve_device(device)) if device is not None else x0.detach()


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _initial_step(step_size, state, energy_fn, generator) -> tuple[torch.Tensor, int]:
    chains, x = state.x.shape[0], state.x
    if step_size is None:
        return _find_step_size(state, energy_fn, generator)
    e = torch.as_tensor(step_size, dtype=x.dtype).detach().to(x.device)
    if e.dim() == 0:
        e = e.expand(chains).clone()
    if e.shape != (chains,) or not bool(torch.isfinite(e).all() and (e > 0).all()):
        raise ValueError(f"step_size must be a number or a tensor [{chains}] of finite values > 0, got {step_size!r}")
    return e, 0


def _transition(noise: _NoiseBlocks, broadcast: Callable, move: Callable) -> Callable:
    """The loops' step, shared by Langevin and HMC: ``broadcast(step size)`` (recomputed only when the step size
    changes), a draw from ``noise`` and ``move(state, broadcast step size, noise, threshold)``. Returns
    ``(state, step size) -> (state, partial, known)`` (see :func:`_decide`)."""
    cached: dict = {}

    def transition(state, eps):
        if cached.get("eps") is not eps:
            cached.update(eps=eps, broadcast=broadcast(eps))
        v, known, threshold = noise.draw()
        new, partial, _ = move(state, cached["broadcast"], v, threshold)
        return new, partial, known

    return transition


def _run(
    make_transition: Callable[
        [torch.Generator, torch.Tensor, torch.Tensor],
        Callable[[ChainState, torch.Tensor], tuple[ChainState, torch.Tensor, torch.Tensor]],
    ],  # (generator, x0, backward seed) -> (state, step size) -> (state, partial, known): see _decide
    energy_fn: EnergyFn,
    x0: torch.Tensor,
    steps: int,
    step_size,
    num_warmup: int | None,
    adapt_step_size: bool,
    target_accept: float,
    thin: int,
    seed: int,
    progress: bool,
    device,
    grads_per_step: int,
    description: str,
    to_initial: Callable[[torch.Tensor], torch.Tensor],
) -> SamplerResult:
    start = time.perf_counter()
    x = _check_x0(x0, device)
    steps = _check_int("steps", steps, 1)
    thin = _check_int("thin", thin, 1)
    if num_warmup is None:
        num_warmup = steps // 2 if step_size is None else 0
    num_warmup = _check_int("num_warmup", num_warmup, 0)
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    generator = torch.Generator(device=x.device).manual_seed(int(seed))
    state = _check_energy(energy_fn, x)
    transition = make_transition(generator, x, _ones(state.energy))
    eps, evals = _initial_step(step_size, state, energy_fn, generator)
    if step_size is None:
        eps = to_initial(eps)
    dual = adapt.dual_averaging_init(eps.log())
    chains = x.shape[0]
    record = _Recorder(x, steps // thin)
    total = num_warmup + steps
    every = max(1, total // 100)
    bar = tqdm(total=total, desc=description, disable=not progress, dynamic_ncols=True)

    def show(done: int, partial: torch.Tensor, known: torch.Tensor) -> None:
        bar.update(done - bar.n)
        if progress:
            accept_prob = _statistics(partial + known)[0].mean().item()
            bar.set_postfix(acc=f"{accept_prob:.3f}", step=f"{eps.mean().item():.3g}")

    try:
        # gradients on for the energy's; the samplers' own tensors never require grad, so they record nothing
        with torch.enable_grad():
            for t in range(num_warmup):
                state, partial, known = transition(state, eps)
                if adapt_step_size:
                    accept_prob = _statistics(partial + known)[0]
                    dual = adapt.dual_averaging_update(dual, accept_prob, target_accept)
                    eps = (dual.log_step_size_avg if t == num_warmup - 1 else dual.log_step_size).exp()
                if (t + 1) % every == 0:
                    show(t + 1, partial, known)
            # the sampling loop is the hot one: no branches but the thinning and the progress bar's
            for t in range(num_warmup + 1, total + 1):
                state, partial, known = transition(state, eps)
                record.step(partial, known)
                if (t - num_warmup) % thin == 0:
                    record.keep(state)
                if t % every == 0:
                    show(t, partial, known)
            show(total, partial, known)
    finally:
        bar.close()
    record.close()
    accept_rate, divergences = record.accept_sum / steps, record.divergences
    logger.info(
        "%s: %d chains, %d warm-up + %d steps, mean acceptance %.3f, mean step size %.4g, %d divergences",
        description,
        chains,
        num_warmup,
        steps,
        float(accept_rate.mean()),
        float(eps.mean()),
        int(divergences.sum()),
    )
    return SamplerResult(
        samples=record.samples,
        energy=record.energies,
        accept_rate=accept_rate,
        step_size=eps,
        divergences=divergences,
        num_grad_evals=evals + total * grads_per_step,
        num_warmup=num_warmup,
        seconds=time.perf_counter() - start,
    )


def langevin(
    energy_fn: EnergyFn,
    x0: torch.Tensor,
    steps: int,
    step_size: float | torch.Tensor | None = None,
    adjust: bool = True,
    target_accept: float = 0.574,
    *,
    num_warmup: int | None = None,
    adapt_step_size: bool = True,
    thin: int = 1,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> SamplerResult:
    """Batched Langevin sampling of ``p(x) ~ exp(-energy_fn(x))``: MALA when ``adjust``, else ULA.

    Args:
        energy_fn: ``x`` [chains, ...] -> energies [chains].
        x0: initial states [chains, ...]; all work stays on its device (or on ``device`` if given).
        steps: sampling steps after warm-up; ``samples`` keeps every ``thin``-th.
        step_size: the noise variance ``e`` (a number or one per chain); ``None`` finds one per chain.
        target_accept: dual averaging drives each chain's acceptance to this (0.574, Roberts and Rosenthal)
            during ``num_warmup`` steps (default: ``steps // 2`` when ``step_size`` is None, else 0). ULA
            tunes with the same Metropolis statistic without applying it.
        seed: seeds a ``torch.Generator`` on the device: the same seed gives the same chains.

    Returns:
        :class:`SamplerResult` with ``samples`` [steps // thin, chains, ...], ``accept_rate`` [chains] and the
        adapted ``step_size`` [chains].
    """
    if not isinstance(adjust, bool):
        raise TypeError(f"adjust must be a bool, got {type(adjust).__name__}")

    def make_transition(generator, x, ones):
        return _transition(
            _NoiseBlocks(x, generator, uniforms=adjust, scale=math.sqrt(0.5)),
            lambda eps: _Shaped.of(eps, x),
            lambda state, shaped, z, threshold: _langevin_move(state, energy_fn, shaped, z, threshold, ones),
        )

    return _run(
        make_transition,
        energy_fn,
        x0,
        steps,
        step_size,
        num_warmup,
        adapt_step_size,
        target_accept,
        thin,
        seed,
        progress,
        device,
        grads_per_step=1,
        description="mala" if adjust else "ula",
        to_initial=lambda e: e,
    )


def hmc(
    energy_fn: EnergyFn,
    x0: torch.Tensor,
    steps: int,
    num_leapfrog: int = 10,
    step_size: float | torch.Tensor | None = None,
    target_accept: float = 0.65,
    *,
    num_warmup: int | None = None,
    adapt_step_size: bool = True,
    thin: int = 1,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> SamplerResult:
    """Batched HMC of ``p(x) ~ exp(-energy_fn(x))`` with ``num_leapfrog`` leap-frog steps of per-chain size ``h``
    (``step_size``), adapted during warm-up to ``target_accept`` (0.65, optimal for fixed-length HMC by Beskos
    et al. 2013). Arguments and result as for :func:`langevin`; ``step_size`` here is the leap-frog ``h``."""
    num_leapfrog = _check_int("num_leapfrog", num_leapfrog, 1)

    def make_transition(generator, x, ones):
        return _transition(
            _NoiseBlocks(x, generator, uniforms=True),
            lambda eps: _per_chain(eps, x),
            lambda state, h, p, threshold: _hmc_move(state, energy_fn, h, num_leapfrog, p, threshold, ones),
        )

    return _run(
        make_transition,
        energy_fn,
        x0,
        steps,
        step_size,
        num_warmup,
        adapt_step_size,
        target_accept,
        thin,
        seed,
        progress,
        device,
        grads_per_step=num_leapfrog,
        description="hmc",
        # the search finds a Langevin variance e; one leap-frog step of size sqrt(e) is the same move
        to_initial=lambda e: e.sqrt(),
    )


@dataclass
class PyroPotential:
    """A Pyro model's posterior as a batched energy on flat unconstrained vectors [chains, dim]."""

    energy: EnergyFn  # x [chains, dim] -> potential energy [chains] (minus log joint, Jacobians included)
    initial: torch.Tensor  # [dim], a valid unconstrained starting point found by Pyro
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    transforms: dict  # name -> transform from the constrained to the unconstrained space

    def unflatten(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split [..., dim] into unconstrained sites [..., *shape]."""
        out, offset = {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = shape.numel()
            out[name] = x[..., offset : offset + size].reshape(x.shape[:-1] + shape)
            offset += size
        return out

    def constrain(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Samples [..., dim] -> constrained site values [..., *shape]."""
        return {name: self.transforms[name].inv(u) for name, u in self.unflatten(x).items()}


def pyro_potential(model: Callable, model_args: tuple = (), model_kwargs: dict | None = None) -> PyroPotential:
    """Wrap a Pyro model's potential energy (``pyro.infer.mcmc.util.initialize_model``) as a batched energy for
    :func:`langevin` / :func:`hmc`. Pyro's potential takes one point, so chains are evaluated one after another
    (fine for a few chains; write a batched energy for many)."""
    import pyro
    from pyro.infer.mcmc.util import initialize_model

    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    init_params, potential_fn, transforms, _ = initialize_model(model, model_args, model_kwargs or {})
    names = tuple(sorted(init_params))
    shapes = tuple(init_params[n].shape for n in names)
    initial = torch.cat([init_params[n].detach().reshape(-1) for n in names])
    holder = PyroPotential(lambda x: x, initial, names, shapes, transforms)

    def energy(x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != initial.numel():
            raise ValueError(f"expected x of shape [chains, {initial.numel()}], got {tuple(x.shape)}")
        with pyro.validation_enabled(False):
            return torch.stack([potential_fn(holder.unflatten(row)) for row in x])

    holder.energy = energy
    return holder
