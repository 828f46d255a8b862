"""MALA and ULA as NumPyro kernels: thin adapters over the pure JAX step (:mod:`.langevin`) and the shared
window adaptation (:func:`probrep.inference.mcmc.adaptation.warmup`), for ``numpyro.infer.MCMC`` and
``mcmc.sample``.

The kernel adds only what NumPyro needs: a model's potential and constraints (``initialize_model``), the state
layout NumPyro's runners collect (field names of its ``HMCState``), flattening of the sites, and one warm-up
update per step. Warm-up is the one every sampler of ours uses: dual averaging of ``log e`` to a target acceptance
of 0.574 (ULA tunes with the same Metropolis statistic, without applying it) and a diagonal or dense inverse mass
matrix from Stan's windows. The same adaptation without NumPyro is :func:`.window.window_adaptation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random
from jax.flatten_util import ravel_pytree
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.mcmc import MCMCKernel
from numpyro.infer.util import initialize_model
from numpyro.util import identity, is_prng_key, not_jax_tracer

from probrep._checks import integer, probability, real
from probrep.inference.mcmc import adaptation as adapt
from probrep.inference.mcmc.constants import OPTIMAL_MALA_ACCEPTANCE
from probrep.inference.mcmc.langevin import LangevinState, find_reasonable_step_size, init, step

__all__ = ["MALA", "ULA", "MALAState"]


class MALAState(NamedTuple):
    """Kernel state; field names follow NumPyro's ``HMCState`` so the same fields can be collected."""

    i: jax.Array
    z: Any  # unconstrained sample (a dict of sites for a model)
    z_grad: Any  # gradient of the potential energy (minus log density)
    potential_energy: jax.Array
    accept_prob: jax.Array
    mean_accept_prob: jax.Array  # running mean over warm-up, restarted when sampling begins
    diverging: jax.Array
    num_steps: jax.Array  # gradient evaluations per transition (1)
    adapt_state: adapt.WarmupState  # the step size and metric in use, and their estimators during warm-up
    rng_key: jax.Array


class MALA(MCMCKernel):
    """Metropolis-adjusted Langevin kernel for :class:`numpyro.infer.MCMC` (see the module docstring).

    Args:
        model / potential_fn: a NumPyro program (constrained sites go through NumPyro's transforms) or a
            potential energy (minus log density) of unconstrained parameters; exactly one.
        step_size: initial ``e`` (noise variance per step); ``None`` finds one by doubling/halving.
        adapt_step_size: dual averaging of ``e`` during warm-up towards ``target_accept_prob``.
        adapt_mass_matrix / dense_mass: estimate a diagonal (or dense) inverse mass matrix in Stan windows;
            default (None) on for MALA and off for ULA (without an accept step, a metric inflated by one
            excursion makes the next one larger: it can run away).
        inverse_mass_matrix: a fixed or starting inverse mass matrix (flat [d] or [d, d]).
        target_accept_prob: 0.574 by default.
        init_strategy: NumPyro initialisation strategy for models.
    """

    adjust = True

    def __init__(
        self,
        model: Callable | None = None,
        potential_fn: Callable | None = None,
        *,
        step_size: float | None = None,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool | None = None,
        dense_mass: bool = False,
        inverse_mass_matrix: Any = None,
        target_accept_prob: float = OPTIMAL_MALA_ACCEPTANCE,
        init_strategy: Callable = init_to_uniform,
        regularize_mass_matrix: bool = True,
    ):
        if (model is None) == (potential_fn is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of model= or potential_fn=")
        for name, fn in (("model", model), ("potential_fn", potential_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{type(self).__name__}: {name} must be callable, got {type(fn).__name__}")
        self._model, self._potential_fn = model, potential_fn
        self._step_size = None if step_size is None else real(step_size, "step_size", positive=True)
        if adapt_mass_matrix is None:
            adapt_mass_matrix = self.adjust
        self._adapt_step_size, self._adapt_mass_matrix = bool(adapt_step_size), bool(adapt_mass_matrix)
        self._dense_mass = bool(dense_mass)
        self._inverse_mass_matrix = None if inverse_mass_matrix is None else jnp.asarray(inverse_mass_matrix)
        self._target = probability(target_accept_prob, "target_accept_prob")
        self._init_strategy = init_strategy
        self._regularize = bool(regularize_mass_matrix)
        self._postprocess_gen: Callable | None = None
        self._sample_fn: Callable | None = None

    # ----------------------------------------------------------------------------------- MCMCKernel API
    @property
    def model(self) -> Callable | None:
        return self._model

    @property
    def sample_field(self) -> str:
        return "z"

    @property
    def default_fields(self) -> tuple[str, ...]:
        return ("z", "diverging")

    def postprocess_fn(self, model_args, model_kwargs):
        if self._postprocess_gen is None:
            return identity
        return self._postprocess_gen(*model_args, **(model_kwargs or {}))

    def get_diagnostics_str(self, state: MALAState) -> str:
        return f"step size {float(state.adapt_state.step_size):.2e}. acc. prob={float(state.mean_accept_prob):.2f}"

    def init(self, rng_key, num_warmup, init_params=None, model_args=(), model_kwargs=None):
        model_kwargs = {} if model_kwargs is None else model_kwargs
        num_warmup = integer(num_warmup, "num_warmup", minimum=0)
        batched = not is_prng_key(rng_key)
        if batched:
            rng_key, key_model = jnp.swapaxes(jax.vmap(random.split)(rng_key), 0, 1)
        else:
            rng_key, key_model = random.split(rng_key)
        if self._model is not None:
            info = initialize_model(
                key_model,
                self._model,
                init_strategy=self._init_strategy,
                dynamic_args=True,
                model_args=model_args,
                model_kwargs=model_kwargs,
            )
            potential_fn = info.potential_fn(*model_args, **model_kwargs)
            self._postprocess_gen = info.postprocess_fn
            if init_params is None:
                init_params = info.param_info.z
        else:
            potential_fn = self._potential_fn
            if init_params is None:
                raise ValueError(f"{type(self).__name__}: init_params must be given with potential_fn")
        prototype = jax.tree.map(lambda v: v[0], init_params) if batched else init_params
        flat0, unravel = ravel_pytree(prototype)
        if flat0.ndim != 1 or flat0.size == 0:
            raise ValueError(f"{type(self).__name__}: the model has no continuous latent parameters to sample")
        # Rebuild (and recompile) only when the program, its arguments (by identity, as NumPyro caches) or the
        # layout change: sequential chains share one compiled init and step.
        signature = (
            tuple(id(leaf) for leaf in jax.tree.leaves((model_args, model_kwargs))),
            jax.tree.structure(prototype),
            flat0.shape,
            flat0.dtype,
            num_warmup,
            batched,
        )
        if signature != getattr(self, "_signature", None):
            self._build(potential_fn, unravel, flat0.size, flat0.dtype, num_warmup)
            init_one = lambda z, key: self._init_one(z, key)  # noqa: E731  (a fresh closure: a fresh trace)
            self._init_jit = jax.jit(jax.vmap(init_one) if batched else init_one)
            self._signature = signature
        state = self._init_jit(init_params, rng_key)
        if not_jax_tracer(state.potential_energy) and not np.all(np.isfinite(np.asarray(state.potential_energy))):
            raise ValueError(
                f"{type(self).__name__}: the log density at init_params is not finite "
                f"(potential energy {np.asarray(state.potential_energy)})"
            )
        self._sample_fn = self._sample_batched if batched else self._sample_single
        return state

    def sample(self, state, model_args, model_kwargs):
        if self._sample_fn is None:
            raise RuntimeError(f"{type(self).__name__}: call init before sample")
        return self._sample_fn(state)

    # ---------------------------------------------------------------------------------------- internals
    def _build(self, potential_fn, unravel, dim, dtype, num_warmup) -> None:
        self._unravel, self._dim, self._dtype, self._num_warmup = unravel, dim, dtype, num_warmup
        self._logdensity = lambda x: -potential_fn(unravel(x))
        imm = self._inverse_mass_matrix
        if imm is None:
            imm = jnp.eye(dim, dtype=dtype) if self._dense_mass else jnp.ones(dim, dtype=dtype)
        elif imm.shape not in ((dim,), (dim, dim)):
            raise ValueError(
                f"{type(self).__name__}: inverse_mass_matrix has shape {imm.shape}, expected ({dim},) or "
                f"({dim}, {dim}) for {dim} unconstrained parameters"
            )
        self._imm0 = imm.astype(dtype)
        self._warmup = adapt.warmup(
            num_warmup,
            self._target,
            adapt_step_size=self._adapt_step_size,
            adapt_mass_matrix=self._adapt_mass_matrix,
            dense=self._imm0.ndim == 2,
            regularize=self._regularize,
        )
        # jnp arrays: the kernel indexes the schedule with the traced step count
        self._schedule = adapt.WarmupStage(*map(jnp.asarray, self._warmup.schedule))

    def _init_one(self, z, rng_key) -> MALAState:
        x = ravel_pytree(z)[0]
        core = init(x, self._logdensity)
        mass_sqrt = adapt.mass_matrix_sqrt(self._imm0, dense=self._imm0.ndim == 2)
        rng_key, key_search = random.split(rng_key)
        if self._step_size is None:
            step_size = find_reasonable_step_size(key_search, core, self._logdensity, mass_sqrt)
        else:
            step_size = jnp.asarray(self._step_size, dtype=self._dtype)
        zero = jnp.zeros((), dtype=self._dtype)
        return MALAState(
            jnp.array(0),
            z,
            self._unravel(-core.logdensity_grad),
            -core.logdensity,
            zero,
            zero,
            jnp.array(False),
            jnp.array(1),
            self._warmup.init(x, step_size, self._imm0),
            rng_key,
        )

    def _move(self, state: MALAState) -> MALAState:
        rng_key, key_step = random.split(state.rng_key)
        core = LangevinState(ravel_pytree(state.z)[0], -state.potential_energy, -ravel_pytree(state.z_grad)[0])
        a = state.adapt_state
        core, info = step(key_step, core, self._logdensity, a.step_size, a.mass_sqrt, adjust=self.adjust)
        t = state.i
        count = jnp.where(t < self._num_warmup, t + 1, t - self._num_warmup + 1).astype(self._dtype)
        mean_accept = state.mean_accept_prob + (info.acceptance_rate - state.mean_accept_prob) / count
        return MALAState(
            t + 1,
            self._unravel(core.position),
            self._unravel(-core.logdensity_grad),
            -core.logdensity,
            info.acceptance_rate,
            mean_accept,
            info.diverging,
            state.num_steps,
            a,
            rng_key,
        )

    def _adapt(self, state: MALAState, t: jax.Array) -> MALAState:
        """Warm-up after step ``t``: the shared update (the flags are the same for all chains, so its branches stay
        real ``cond``s when chains are vectorised)."""
        position = ravel_pytree(state.z)[0]
        adapt_state = self._warmup.update(state.adapt_state, self._schedule.at(t), position, state.accept_prob)
        return state._replace(adapt_state=adapt_state)

    def _sample_single(self, state: MALAState) -> MALAState:
        t = state.i
        state = self._move(state)
        if self._num_warmup and (self._adapt_step_size or self._adapt_mass_matrix):
            state = lax.cond(t < self._num_warmup, self._adapt, lambda s, _: s, state, t)
        return state

    def _sample_batched(self, state: MALAState) -> MALAState:
        t = state.i[0]  # chains advance in lockstep
        state = jax.vmap(self._move)(state)
        if self._num_warmup and (self._adapt_step_size or self._adapt_mass_matrix):
            adapt_all = jax.vmap(self._adapt, in_axes=(0, None))
            state = lax.cond(t < self._num_warmup, adapt_all, lambda s, _: s, state, t)
        return state


class ULA(MALA):
    """Unadjusted Langevin: MALA's proposal, always accepted. Biased at any finite step size (on ``N(0, 1)`` its
    variance is ``1 / (1 - e/4)``); the step size is still tuned during warm-up so that the Metropolis acceptance
    that MALA would have (computed, not used) reaches ``target_accept_prob``. Its metric is not adapted unless
    asked for (see ``adapt_mass_matrix``)."""

    adjust = False
