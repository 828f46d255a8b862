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
random numbers for many steps at once and derive the acceptance probability and the divergence flag from the
log ratio only where they are used: every step during warm-up (the adaptation needs them), once per block of
steps while sampling.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from probrep.device import resolve_device
from probrep.inference import adaptation as adapt

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
    if not torch.is_grad_enabled():
        with torch.enable_grad():
            return energy_and_grad(energy_fn, x)
    x = x.detach().requires_grad_(True)
    energy = energy_fn(x)
    (grad,) = torch.autograd.grad(energy, x, grad_outputs=_ones(energy))
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


def _per_chain(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view((-1,) + (1,) * (x.dim() - 1))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-chain inner product over the event dimensions: [chains, ...] x [chains, ...] -> [chains]."""
    if a.dim() == 2:
        return torch.linalg.vecdot(a, b)
    return torch.linalg.vecdot(a.flatten(1), b.flatten(1))


def _decide(state, x_new, energy_new, grad_new, log_ratio, threshold) -> tuple[ChainState, torch.Tensor]:
    """The Metropolis decision per chain, shared by Langevin and HMC: move where ``threshold < log_ratio``
    (``threshold`` [chains]: the log of a uniform for MALA and HMC, ``-inf`` for ULA, which always moves).

    A non-finite proposal never moves: ``log_ratio`` is NaN (every comparison false) or ``-inf`` there, because
    the energy enters it as ``E(x) - E(x')`` with a non-finite ``E(x')`` made ``+inf`` by the caller, and a
    non-finite gradient enters it through a squared norm. Returns the new state and ``accepted`` [chains]."""
    accepted = threshold < log_ratio
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
    return torch.nan_to_num(energy, nan=math.inf, posinf=math.inf, neginf=math.inf)


def _statistics(log_ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``min(1, alpha)`` (0 for a non-finite proposal) and the divergence flag (log ratio NaN or below
    ``-MAX_ENERGY_ERROR``) from log ratios of any shape."""
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf, posinf=-math.inf)
    return log_ratio.clamp(max=0.0).exp_(), log_ratio < -MAX_ENERGY_ERROR


def _step_info(log_ratio: torch.Tensor, accepted: torch.Tensor) -> StepInfo:
    accept_prob, diverging = _statistics(log_ratio)
    return StepInfo(accept_prob, accepted, diverging)


class _Shaped(NamedTuple):
    """Per-chain step sizes: ``e`` and ``sqrt(e)`` broadcast against the state, ``sqrt(e) / 2`` and ``e / 8``
    per chain [chains]."""

    e: torch.Tensor
    root: torch.Tensor
    half_root: torch.Tensor
    eighth: torch.Tensor

    @classmethod
    def of(cls, e: torch.Tensor, x: torch.Tensor) -> _Shaped:
        root = e.sqrt()
        return cls(_per_chain(e, x), _per_chain(root, x), root * 0.5, e * 0.125)


def _langevin_move(state, energy_fn, shaped: _Shaped, xi, threshold) -> tuple[ChainState, torch.Tensor, torch.Tensor]:
    """The step with the step sizes ``shaped``, the noise ``xi`` [chains, ...] and the Metropolis ``threshold``
    [chains] given; returns the new state, the log ratio and ``accepted`` (see :func:`_decide`).

    With ``s = g + g'`` and ``h = sqrt(e)/2``: ``-1/2 (|xi - h s|^2 - |xi|^2) = h (s . xi) - (e/8) |s|^2``, two
    reductions over the state and one full-size temporary (at many chains the step is memory-bound)."""
    x, energy, grad = state
    x_new = torch.addcmul(x, shaped.e, grad, value=-0.5).addcmul_(shaped.root, xi)
    energy_new, grad_new = energy_and_grad(energy_fn, x_new)
    energy_new = _finite_energy(energy_new)
    total = torch.add(grad, grad_new)
    log_ratio = torch.sub(energy, energy_new).addcmul_(shaped.half_root, _dot(total, xi))
    log_ratio.addcmul_(shaped.eighth, _dot(total, total), value=-1.0)
    new, accepted = _decide(state, x_new, energy_new, grad_new, log_ratio, threshold)
    return new, log_ratio, accepted


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
    threshold = _log_uniform(x.shape[0], x, generator) if adjust else _always(x)
    new, log_ratio, accepted = _langevin_move(state, energy_fn, _Shaped.of(step_size, x), xi, threshold)
    return new, _step_info(log_ratio, accepted)


def _always(x: torch.Tensor) -> torch.Tensor:
    """The threshold of a move that is always taken (ULA): ``-inf`` [chains]."""
    return torch.full((x.shape[0],), -math.inf, device=x.device, dtype=x.dtype)


class _NoiseBlocks:
    """The loop's random numbers, drawn for many steps in one call (at a few chains, drawing per step costs as
    much as the sampler's arithmetic): standard-normal noise ``xi`` [chains, ...], if ``squares`` also
    ``|xi|^2 / 2`` [chains] (HMC's initial kinetic energy), and the Metropolis thresholds [chains] (log-uniforms,
    or ``-inf`` when every move is taken). Blocks hold at most about 2**16 numbers; the sequence of draws is a
    function of the generator's seed alone."""

    def __init__(
        self, x: torch.Tensor, generator: torch.Generator, uniforms: bool, squares: bool = False, budget: int = 2**16
    ):
        self.shape, self.generator, self.uniforms, self.squares = tuple(x.shape), generator, uniforms, squares
        self.device, self.dtype = x.device, x.dtype
        self.block = max(1, min(256, budget // max(1, x.numel())))
        self.always = _always(x)
        self.normals: tuple[torch.Tensor, ...] = ()
        self.half_squares: tuple[torch.Tensor, ...] = ()
        self.thresholds: tuple[torch.Tensor, ...] = ()
        self.next = 0

    def draw(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        if self.next == len(self.normals):
            kw = {"generator": self.generator, "device": self.device, "dtype": self.dtype}
            normals = torch.randn((self.block,) + self.shape, **kw)
            self.normals = normals.unbind(0)
            if self.squares:
                flat = normals.flatten(2)
                self.half_squares = torch.linalg.vecdot(flat, flat).mul_(0.5).unbind(0)
            if self.uniforms:
                self.thresholds = torch.rand((self.block, self.shape[0]), **kw).log_().unbind(0)
            self.next = 0
        i, self.next = self.next, self.next + 1
        square = self.half_squares[i] if self.squares else None
        return self.normals[i], square, self.thresholds[i] if self.uniforms else self.always


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
        self.log_ratios: list[torch.Tensor] = []
        self.written = 0

    def step(self, log_ratio: torch.Tensor) -> None:
        self.log_ratios.append(log_ratio)
        if len(self.log_ratios) == self.block:
            self._flush_statistics()

    def keep(self, state: ChainState) -> None:
        self.xs.append(state.x)
        self.es.append(state.energy)
        if len(self.xs) == self.block:
            self._flush_states()

    def _flush_statistics(self) -> None:
        if self.log_ratios:
            accept_prob, diverging = _statistics(torch.stack(self.log_ratios))
            self.accept_sum.add_(accept_prob.sum(0))
            self.divergences.add_(diverging.sum(0))
            self.log_ratios = []

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
    h = _per_chain(step_size, x)
    new, log_ratio, accepted = _hmc_move(state, energy_fn, h, num_leapfrog, p, 0.5 * _dot(p, p), log_u)
    return new, _step_info(log_ratio, accepted)


def _hmc_move(
    state, energy_fn, h, num_leapfrog, p, kinetic0, threshold
) -> tuple[ChainState, torch.Tensor, torch.Tensor]:
    """Leap-frog from ``state`` with momentum ``p`` (``kinetic0 = |p|^2 / 2``) and per-chain step ``h``
    broadcast against the state; returns the new state, the log ratio and ``accepted`` (see :func:`_decide`)."""
    x, energy, grad = state
    p = torch.addcmul(p, h, grad, value=-0.5)
    x_new, energy_new, grad_new = x, energy, grad
    for leap in range(num_leapfrog):
        x_new = torch.addcmul(x_new, h, p)
        energy_new, grad_new = energy_and_grad(energy_fn, x_new)
        p = torch.addcmul(p, h, grad_new, value=-1.0 if leap < num_leapfrog - 1 else -0.5)
    energy_new = _finite_energy(energy_new)
    log_ratio = torch.sub(energy, energy_new).add_(kinetic0).sub_(_dot(p, p), alpha=0.5)
    new, accepted = _decide(state, x_new, energy_new, grad_new, log_ratio, threshold)
    return new, log_ratio, accepted


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
    e = torch.as_tensor(step_size, dtype=x.dtype).to(x.device)
    if e.dim() == 0:
        e = e.expand(chains).clone()
    if e.shape != (chains,) or not bool(torch.isfinite(e).all() and (e > 0).all()):
        raise ValueError(f"step_size must be a number or a tensor [{chains}] of finite values > 0, got {step_size!r}")
    return e, 0


def _run(
    make_transition: Callable[
        [torch.Generator, torch.Tensor],
        Callable[[ChainState, torch.Tensor], tuple[ChainState, torch.Tensor, torch.Tensor]],
    ],
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
    transition = make_transition(generator, x)
    state = _check_energy(energy_fn, x)
    eps, evals = _initial_step(step_size, state, energy_fn, generator)
    if step_size is None:
        eps = to_initial(eps)
    dual = adapt.dual_averaging_init(eps.log())
    chains = x.shape[0]
    record = _Recorder(x, steps // thin)
    total = num_warmup + steps
    every = max(1, total // 100)
    bar = tqdm(total=total, desc=description, disable=not progress, dynamic_ncols=True)
    try:
        for t in range(total):
            state, log_ratio, _ = transition(state, eps)
            if t < num_warmup:
                if adapt_step_size:
                    accept_prob = _statistics(log_ratio)[0]
                    dual = adapt.dual_averaging_update(dual, accept_prob, target_accept)
                    eps = (dual.log_step_size_avg if t == num_warmup - 1 else dual.log_step_size).exp()
            else:
                record.step(log_ratio)
                if (t - num_warmup + 1) % thin == 0:
                    record.keep(state)
            if (t + 1) % every == 0 or t + 1 == total:
                bar.update(t + 1 - bar.n)
                if progress:
                    accept_prob = _statistics(log_ratio)[0].mean().item()
                    bar.set_postfix(acc=f"{accept_prob:.3f}", step=f"{eps.mean().item():.3g}")
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

    def make_transition(generator, x):
        noise = _NoiseBlocks(x, generator, uniforms=adjust)
        cached: dict = {}  # the broadcast step sizes, recomputed only when the step size changes

        def transition(state, eps):
            if cached.get("eps") is not eps:
                cached.update(eps=eps, shaped=_Shaped.of(eps, x))
            xi, _, threshold = noise.draw()
            return _langevin_move(state, energy_fn, cached["shaped"], xi, threshold)

        return transition

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

    def make_transition(generator, x):
        noise = _NoiseBlocks(x, generator, uniforms=True, squares=True)
        cached: dict = {}

        def transition(state, eps):
            if cached.get("eps") is not eps:
                cached.update(eps=eps, h=_per_chain(eps, x))
            return _hmc_move(state, energy_fn, cached["h"], num_leapfrog, *noise.draw())

        return transition

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
