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
    the summed energy is each chain's own gradient)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        energy = energy_fn(x)
        (grad,) = torch.autograd.grad(energy.sum(), x)
    return energy.detach(), grad


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


def _event_sum(v: torch.Tensor) -> torch.Tensor:
    return v.sum(dim=tuple(range(1, v.dim())))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-chain inner product over the event dimensions: [chains, ...] x [chains, ...] -> [chains]."""
    return torch.linalg.vecdot(a.flatten(1), b.flatten(1))


_CONSTANTS: dict[tuple, torch.Tensor] = {}


def _constant(value: float, like: torch.Tensor) -> torch.Tensor:
    """A cached 0-d tensor on ``like``'s device and dtype (a Python scalar would be converted on every call)."""
    key = (value, like.device, like.dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(value, device=like.device, dtype=like.dtype)
    return _CONSTANTS[key]


def _finish(state, x_new, energy_new, grad_new, log_ratio, adjust, generator) -> tuple[ChainState, StepInfo]:
    """Metropolis decision (or unconditional move) per chain, shared by Langevin and HMC.

    A non-finite energy or gradient at the proposal makes ``log_ratio`` NaN or infinite (the gradient enters it
    through the momentum), so one test on [chains] catches them all; such proposals are rejected and, being below
    ``-MAX_ENERGY_ERROR``, counted as divergences. ULA moves unless the proposal is non-finite."""
    if adjust:
        log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf, posinf=-math.inf)
        accept_prob = torch.minimum(log_ratio, _constant(0.0, log_ratio)).exp()
        u = torch.rand(log_ratio.shape, generator=generator, device=log_ratio.device, dtype=log_ratio.dtype)
        accepted = u < accept_prob
        diverging = log_ratio < _constant(-MAX_ENERGY_ERROR, log_ratio)
    else:
        accepted = torch.isfinite(log_ratio)
        diverging = ~accepted
        accept_prob = torch.nan_to_num(log_ratio, nan=-math.inf, posinf=-math.inf).clamp(max=0.0).exp()
    mask = _per_chain(accepted, state.x)
    new = ChainState(
        torch.where(mask, x_new, state.x),
        torch.where(accepted, energy_new, state.energy),
        torch.where(mask, grad_new, state.grad),
    )
    return new, StepInfo(accept_prob, accepted, diverging)


def _langevin_move(state, energy_fn, e, root, generator, adjust, noise=None) -> tuple[ChainState, StepInfo]:
    """The step with per-chain ``e`` and ``sqrt(e)`` [chains] given (the loop caches ``sqrt(e)``)."""
    x, energy, grad = state
    xi = noise if noise is not None else torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    e_b, root_b = _per_chain(e, x), _per_chain(root, x)
    x_new = torch.addcmul(x, e_b, grad, value=-0.5).addcmul_(root_b, xi)
    energy_new, grad_new = energy_and_grad(energy_fn, x_new)
    # with s = g + g': |xi - (sqrt(e)/2) s|^2 - |xi|^2 = (e/4) |s|^2 - sqrt(e) xi . s
    total = grad + grad_new
    correction = torch.addcmul(_dot(xi, total) * root, _dot(total, total), e, value=-0.25).neg_()
    log_ratio = (energy - energy_new).sub_(correction, alpha=0.5)
    return _finish(state, x_new, energy_new, grad_new, log_ratio, adjust, generator)


def langevin_step(
    state: ChainState,
    energy_fn: EnergyFn,
    step_size: torch.Tensor,
    generator: torch.Generator | None = None,
    adjust: bool = True,
    noise: torch.Tensor | None = None,
) -> tuple[ChainState, StepInfo]:
    """One batched Langevin step with per-chain ``step_size`` [chains] (the noise variance ``e``)."""
    return _langevin_move(state, energy_fn, step_size, step_size.sqrt(), generator, adjust, noise)


def hmc_step(
    state: ChainState,
    energy_fn: EnergyFn,
    step_size: torch.Tensor,
    num_leapfrog: int,
    generator: torch.Generator | None = None,
) -> tuple[ChainState, StepInfo]:
    """One batched HMC transition: fresh momentum, ``num_leapfrog`` leap-frog steps of per-chain size
    ``step_size`` [chains], Metropolis accept on ``H = E + |p|^2/2``."""
    x, energy, grad = state
    h = _per_chain(step_size, x)
    p = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    kinetic0 = 0.5 * _event_sum(p * p)
    p = torch.addcmul(p, h, grad, value=-0.5)
    x_new, energy_new, grad_new = x, energy, grad
    for leap in range(num_leapfrog):
        x_new = torch.addcmul(x_new, h, p)
        energy_new, grad_new = energy_and_grad(energy_fn, x_new)
        p = torch.addcmul(p, h, grad_new, value=-1.0 if leap < num_leapfrog - 1 else -0.5)
    log_ratio = energy + kinetic0 - energy_new - 0.5 * _event_sum(p * p)
    return _finish(state, x_new, energy_new, grad_new, log_ratio, True, generator)


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
    make_transition: Callable[[torch.Generator], Callable[[ChainState, torch.Tensor], tuple[ChainState, StepInfo]]],
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
    transition = make_transition(generator)
    state = _check_energy(energy_fn, x)
    eps, evals = _initial_step(step_size, state, energy_fn, generator)
    if step_size is None:
        eps = to_initial(eps)
    dual = adapt.dual_averaging_init(eps.log())
    chains, kept = x.shape[0], steps // thin
    samples = torch.empty((kept,) + tuple(x.shape), device=x.device, dtype=x.dtype)
    energies = torch.empty((kept, chains), device=x.device, dtype=x.dtype)
    accept_sum = torch.zeros(chains, device=x.device, dtype=x.dtype)
    diverging = torch.zeros((steps, chains), device=x.device, dtype=torch.bool)
    total = num_warmup + steps
    every = max(1, total // 100)
    bar = tqdm(total=total, desc=description, disable=not progress, dynamic_ncols=True)
    try:
        for t in range(total):
            state, info = transition(state, eps)
            if t < num_warmup:
                if adapt_step_size:
                    dual = adapt.dual_averaging_update(dual, info.accept_prob, target_accept)
                    eps = (dual.log_step_size_avg if t == num_warmup - 1 else dual.log_step_size).exp()
            else:
                s = t - num_warmup
                accept_sum.add_(info.accept_prob)
                diverging[s] = info.diverging
                if (s + 1) % thin == 0:
                    samples[s // thin] = state.x
                    energies[s // thin] = state.energy
            if (t + 1) % every == 0 or t + 1 == total:
                bar.update(t + 1 - bar.n)
                if progress:
                    bar.set_postfix(acc=f"{info.accept_prob.mean().item():.3f}", step=f"{eps.mean().item():.3g}")
    finally:
        bar.close()
    accept_rate = accept_sum / steps
    divergences = diverging.sum(0)
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
        samples=samples,
        energy=energies,
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

    def make_transition(generator):
        shaped: dict = {}  # sqrt(e), recomputed only when the step size changes

        def transition(state, eps):
            if shaped.get("eps") is not eps:
                shaped.update(eps=eps, root=eps.sqrt())
            return _langevin_move(state, energy_fn, eps, shaped["root"], generator, adjust)

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

    def make_transition(generator):
        return lambda state, eps: hmc_step(state, energy_fn, eps, num_leapfrog, generator)

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
