"""Langevin samplers: MALA and ULA as NumPyro kernels, on a pure JAX ``init`` / ``step`` pair.

Parameterisation. With step size ``e`` (the variance of the injected noise, not its scale), inverse mass matrix
``C = L L^T`` and ``g = grad log p(x)``, one step proposes

    x' = x + (e/2) C g + sqrt(e) L xi,        xi ~ N(0, I),

which is one leap-frog step of HMC with step ``h = sqrt(e)``. MALA accepts it with probability
``min(1, p(x') q(x | x') / (p(x) q(x' | x)))``; the exact asymmetric correction reduces to

    log q(x | x') - log q(x' | x) = -1/2 (|xi + (sqrt(e)/2) L^T (g + g')|^2 - |xi|^2),

so no linear solve is needed for a dense ``C``. ULA always moves and is biased: on ``N(0, 1)`` with ``C = 1``
its chain is ``x' = (1 - e/2) x + sqrt(e) xi``, whose stationary variance is ``1 / (1 - e/4)`` (not 1).
A proposal with a non-finite log density or gradient is rejected and counted as a divergence (the chain goes
on); MALA also counts proposals whose log acceptance ratio is below -1000, as Stan does for HMC.

Warm-up (both kernels): dual averaging of ``log e`` to a target acceptance of 0.574, the optimal scaling of
Roberts and Rosenthal (1998) (ULA tunes its step size with the same Metropolis statistic, without using it),
and a diagonal or dense inverse mass matrix estimated in Stan-style windows (:mod:`.adaptation`).

The batched torch samplers for energy functions (:func:`langevin`, :func:`hmc`) live in
:mod:`probrep.inference.torch_samplers.langevin` and are re-exported here.
"""

from __future__ import annotations

import logging
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

from probrep.inference.mcmc import adaptation as adapt
from probrep.inference.torch_samplers.langevin_hmc import (
    SamplerResult,
    hmc,
    hmc_init,
    hmc_step,
    langevin,
    langevin_init,
)
from probrep.inference.torch_samplers.langevin_hmc import langevin_step as torch_langevin_step

__all__ = [
    "MALA",
    "ULA",
    "LangevinState",
    "LangevinInfo",
    "init",
    "step",
    "find_reasonable_step_size",
    "OPTIMAL_MALA_ACCEPTANCE",
    "langevin",
    "hmc",
    "langevin_init",
    "torch_langevin_step",
    "hmc_init",
    "hmc_step",
    "SamplerResult",
]

logger = logging.getLogger(__name__)

OPTIMAL_MALA_ACCEPTANCE = 0.574  # Roberts and Rosenthal (1998), for d -> infinity
MAX_ENERGY_ERROR = 1000.0


# -------------------------------------------------------------------------------------- pure init / step
class LangevinState(NamedTuple):
    """Position (flat), its log density and the gradient of the log density."""

    position: jax.Array
    logdensity: jax.Array
    logdensity_grad: jax.Array


class LangevinInfo(NamedTuple):
    acceptance_rate: jax.Array  # min(1, exp(log ratio)); 0 for a non-finite proposal
    is_accepted: jax.Array  # whether the chain moved
    diverging: jax.Array


def init(position: jax.Array, logdensity_fn: Callable[[jax.Array], jax.Array]) -> LangevinState:
    """The sampler state at ``position`` (a flat array)."""
    logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
    return LangevinState(position, logdensity, grad)


def _factor_times(mass_sqrt: jax.Array, v: jax.Array) -> jax.Array:  # L v
    return mass_sqrt * v if mass_sqrt.ndim == 1 else mass_sqrt @ v


def _factor_t_times(mass_sqrt: jax.Array, v: jax.Array) -> jax.Array:  # L^T v
    return mass_sqrt * v if mass_sqrt.ndim == 1 else v @ mass_sqrt


def step(
    rng_key: jax.Array,
    state: LangevinState,
    logdensity_fn: Callable[[jax.Array], jax.Array],
    step_size: jax.Array | float,
    mass_sqrt: jax.Array | None = None,
    adjust: bool = True,
) -> tuple[LangevinState, LangevinInfo]:
    """One Langevin step ``x' = x + (e/2) C grad log p(x) + sqrt(e) L xi`` (``C = L L^T``, identity if
    ``mass_sqrt`` is None: a vector for diagonal ``C``, a lower-triangular matrix for dense), Metropolis-adjusted
    when ``adjust`` (MALA), always moving otherwise (ULA). Pure: state in, state and info out."""
    key_noise, key_accept = random.split(rng_key)
    x, logp, grad = state
    xi = random.normal(key_noise, jnp.shape(x), dtype=jnp.result_type(x))
    root = jnp.sqrt(step_size)
    if mass_sqrt is None:
        x_new = x + 0.5 * step_size * grad + root * xi
    else:
        x_new = x + _factor_times(mass_sqrt, 0.5 * step_size * _factor_t_times(mass_sqrt, grad) + root * xi)
    logp_new, grad_new = jax.value_and_grad(logdensity_fn)(x_new)
    grad_sum = grad + grad_new
    if mass_sqrt is not None:
        grad_sum = _factor_t_times(mass_sqrt, grad_sum)
    momentum_new = xi + 0.5 * root * grad_sum
    log_ratio = logp_new - logp - 0.5 * (jnp.sum(momentum_new**2) - jnp.sum(xi**2))
    finite = jnp.isfinite(logp_new) & jnp.all(jnp.isfinite(grad_new))
    log_ratio = jnp.where(finite & ~jnp.isnan(log_ratio), log_ratio, -jnp.inf)
    acceptance = jnp.exp(jnp.minimum(log_ratio, 0.0))
    if adjust:
        accepted = finite & (jnp.log(random.uniform(key_accept, dtype=jnp.result_type(logp))) < log_ratio)
        diverging = ~finite | (log_ratio < -MAX_ENERGY_ERROR)
    else:
        accepted, diverging = finite, ~finite
    new_state = LangevinState(
        jnp.where(accepted, x_new, x), jnp.where(accepted, logp_new, logp), jnp.where(accepted, grad_new, grad)
    )
    return new_state, LangevinInfo(acceptance, accepted, diverging)


def find_reasonable_step_size(
    rng_key: jax.Array,
    state: LangevinState,
    logdensity_fn: Callable[[jax.Array], jax.Array],
    mass_sqrt: jax.Array | None = None,
    initial: float = 1.0,
    threshold: float = 0.5,
    max_doublings: int = 60,
) -> jax.Array:
    """Double (or halve) the step size from ``initial`` until the one-step MALA acceptance, at fixed noise,
    crosses ``threshold``; return the first step size on the far side. A rough start for dual averaging."""
    dtype = jnp.result_type(state.position)

    def log_accept(step_size):
        _, info = step(rng_key, state, logdensity_fn, step_size, mass_sqrt, adjust=True)
        return jnp.log(info.acceptance_rate)

    log_threshold = np.log(threshold)
    step0 = jnp.asarray(initial, dtype=dtype)
    direction = jnp.where(log_accept(step0) > log_threshold, 2.0, 0.5).astype(dtype)

    def keep_going(carry):
        step_size, count, above = carry
        return (count < max_doublings) & (above == (direction > 1))

    def body(carry):
        step_size, count, _ = carry
        step_size = step_size * direction
        return step_size, count + 1, log_accept(step_size) > log_threshold

    step_size, _, _ = lax.while_loop(keep_going, body, (step0, 0, direction > 1))
    return step_size


# ------------------------------------------------------------------------------------------ NumPyro kernels
class MALAAdaptState(NamedTuple):
    step_size: jax.Array
    inverse_mass_matrix: jax.Array  # [d] or [d, d]
    mass_sqrt: jax.Array  # sqrt of the diagonal, or the lower Cholesky factor
    dual_averaging: adapt.DualAveragingState
    welford: adapt.WelfordState


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
    adapt_state: MALAAdaptState
    rng_key: jax.Array


def _mass_sqrt(inverse_mass_matrix: jax.Array) -> jax.Array:
    if inverse_mass_matrix.ndim == 1:
        return jnp.sqrt(inverse_mass_matrix)
    return jnp.linalg.cholesky(inverse_mass_matrix)


class MALA(MCMCKernel):
    """Metropolis-adjusted Langevin kernel for :class:`numpyro.infer.MCMC` (see the module docstring).

    Args:
        model / potential_fn: a NumPyro program (constrained sites go through NumPyro's transforms) or a
            potential energy (minus log density) of unconstrained parameters; exactly one.
        step_size: initial ``e`` (noise variance per step); ``None`` finds one by doubling/halving.
        adapt_step_size: dual averaging of ``e`` during warm-up towards ``target_accept_prob``.
        adapt_mass_matrix / dense_mass: estimate a diagonal (or dense) inverse mass matrix in Stan windows.
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
        adapt_mass_matrix: bool = True,
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
        if step_size is not None and not (np.isfinite(step_size) and step_size > 0):
            raise ValueError(f"{type(self).__name__}: step_size must be a finite number > 0, got {step_size}")
        if not 0 < target_accept_prob < 1:
            raise ValueError(f"{type(self).__name__}: target_accept_prob must be in (0, 1), got {target_accept_prob}")
        self._model, self._potential_fn = model, potential_fn
        self._step_size = step_size
        self._adapt_step_size, self._adapt_mass_matrix = bool(adapt_step_size), bool(adapt_mass_matrix)
        self._dense_mass = bool(dense_mass)
        self._inverse_mass_matrix = None if inverse_mass_matrix is None else jnp.asarray(inverse_mass_matrix)
        self._target = float(target_accept_prob)
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
        num_warmup = int(num_warmup)
        if num_warmup < 0:
            raise ValueError(f"num_warmup must be >= 0, got {num_warmup}")
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
        in_window, window_end = adapt.warmup_schedule(num_warmup)
        self._in_window, self._window_end = jnp.asarray(in_window), jnp.asarray(window_end)
        imm = self._inverse_mass_matrix
        if imm is None:
            imm = jnp.eye(dim, dtype=dtype) if self._dense_mass else jnp.ones(dim, dtype=dtype)
        elif imm.shape not in ((dim,), (dim, dim)):
            raise ValueError(
                f"{type(self).__name__}: inverse_mass_matrix has shape {imm.shape}, expected ({dim},) or "
                f"({dim}, {dim}) for {dim} unconstrained parameters"
            )
        self._imm0 = imm.astype(dtype)

    def _init_one(self, z, rng_key) -> MALAState:
        x = ravel_pytree(z)[0]
        core = init(x, self._logdensity)
        mass_sqrt = _mass_sqrt(self._imm0)
        rng_key, key_search = random.split(rng_key)
        if self._step_size is None:
            step_size = find_reasonable_step_size(key_search, core, self._logdensity, mass_sqrt)
        else:
            step_size = jnp.asarray(self._step_size, dtype=self._dtype)
        adapt_state = MALAAdaptState(
            step_size,
            self._imm0,
            mass_sqrt,
            adapt.dual_averaging_init(jnp.log(step_size)),
            adapt.welford_init(self._dim, self._imm0.ndim == 2, self._dtype),
        )
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
            adapt_state,
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
        """Warm-up bookkeeping after step ``t`` (the same for all chains, so the branches stay real ``cond``s
        when chains are vectorised)."""
        a = state.adapt_state
        da, imm, mass_sqrt, welford = a.dual_averaging, a.inverse_mass_matrix, a.mass_sqrt, a.welford
        if self._adapt_step_size:
            da = adapt.dual_averaging_update(da, state.accept_prob, self._target)
        if self._adapt_mass_matrix:
            x = ravel_pytree(state.z)[0]
            welford = lax.cond(self._in_window[t], lambda w: adapt.welford_update(w, x), identity, welford)

            def end_window(carry):
                _, _, welford, da = carry
                cov = adapt.welford_covariance(welford, regularize=self._regularize).astype(self._dtype)
                fresh = adapt.welford_init(self._dim, cov.ndim == 2, self._dtype)
                return cov, _mass_sqrt(cov), fresh, adapt.dual_averaging_restart(da)

            imm, mass_sqrt, welford, da = lax.cond(
                self._window_end[t], end_window, identity, (imm, mass_sqrt, welford, da)
            )
        step_size = a.step_size
        if self._adapt_step_size:
            last = t == self._num_warmup - 1
            step_size = jnp.exp(jnp.where(last, da.log_step_size_avg, da.log_step_size)).astype(self._dtype)
        return state._replace(adapt_state=MALAAdaptState(step_size, imm, mass_sqrt, da, welford))

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
    that MALA would have (computed, not used) reaches ``target_accept_prob``."""

    adjust = False
