"""Sample the posterior of any NumPyro program into arviz ``InferenceData``.

    idata = mcmc.sample(model, *args, kernel="nuts", num_chains=4, seed=0, **model_kwargs)
    mcmc.print_summary(idata)   # R-hat, bulk/tail ESS, divergences, compile / warm-up / sampling time

Kernels: ``"nuts"`` and ``"hmc"`` (NumPyro's, whose non-finite potentials count as divergences:
:mod:`probrep.inference.mcmc.guarded`), ``"mala"`` and ``"ula"`` (:mod:`probrep.inference.mcmc.kernels`), or
any :class:`numpyro.infer.mcmc.MCMCKernel` instance. The runner calls the kernel's pure ``init`` / ``sample``
and nothing else: chains advance inside one compiled ``fori_loop`` per chunk of steps (compiled once, ahead of
time, so the compile time is measured apart from warm-up and sampling), which keeps the progress bar cheap.
``chain_method``: ``"sequential"`` (one chain after another, same compiled code), ``"vectorized"`` (all chains
in one batched call) or ``"parallel"`` (one chain per JAX device; falls back to sequential with a warning when
there are fewer devices than chains).

The result has ``posterior`` (constrained sites and deterministic sites, [chain, draw, ...]),
``sample_stats`` (``diverging``, ``acceptance_rate``, ``step_size``, ``n_steps`` = gradient evaluations per draw,
``lp`` = log density in the unconstrained space) and ``observed_data``; timings and settings are in the
``attrs`` of ``posterior`` and ``sample_stats``. As ``az.from_numpyro`` it also has ``log_likelihood`` (so
``az.loo`` / ``az.waic`` work), ``posterior_predictive``, ``prior`` and ``prior_predictive``
(:mod:`probrep.inference.mcmc.predictive`), each of which can be turned off; the time they took is the attr
``groups_seconds``, apart from ``total_seconds``.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jax import lax
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.mcmc import MCMCKernel
from tqdm.auto import tqdm

from probrep._checks import integer, one_of
from probrep._checks import seed as check_seed
from probrep.inference.mcmc.diagnostics import MCMCWarning, diagnose
from probrep.inference.mcmc.guarded import HMC, NUTS  # NumPyro's, with +inf log density a divergence
from probrep.inference.mcmc.kernels import MALA, ULA
from probrep.inference.mcmc.predictive import extra_groups, observed_sites

__all__ = ["sample", "make_kernel", "KERNELS", "CHAIN_METHODS"]

logger = logging.getLogger(__name__)

KERNELS: dict[str, type[MCMCKernel]] = {"nuts": NUTS, "hmc": HMC, "mala": MALA, "ula": ULA}
CHAIN_METHODS = ("sequential", "vectorized", "parallel")

# sample_stats name -> where it lives on the kernel state (NumPyro's HMCState and our MALAState agree)
_STATS: dict[str, tuple[str, Any]] = {
    "diverging": ("diverging", jnp.bool_),
    "acceptance_rate": ("accept_prob", None),
    "step_size": ("adapt_state.step_size", None),
    "n_steps": ("num_steps", jnp.int32),
    "lp": ("potential_energy", None),  # negated below
}


def make_kernel(kernel: str | MCMCKernel, model: Callable, **kernel_kwargs: Any) -> MCMCKernel:
    """A kernel by name (``"nuts" | "hmc" | "mala" | "ula"``) for ``model``, or a copy of a kernel instance (the
    copy is initialised, so the caller's object is left untouched)."""
    if isinstance(kernel, MCMCKernel):
        if kernel_kwargs:
            raise ValueError(
                f"kernel_kwargs {sorted(kernel_kwargs)} given with a kernel instance; configure the instance instead"
            )
        return copy.copy(kernel)
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be one of {sorted(KERNELS)} or a NumPyro MCMCKernel, got {type(kernel).__name__}")
    name = kernel.lower()
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}: expected one of {sorted(KERNELS)} or a NumPyro MCMCKernel")
    if name == "hmc" and "num_steps" in kernel_kwargs:
        # NumPyro's HMC defaults to trajectory_length=2 pi, which with num_steps disables step-size adaptation
        kernel_kwargs.setdefault("trajectory_length", None)
    try:
        return KERNELS[name](model, **kernel_kwargs)
    except TypeError as exc:
        raise TypeError(f"kernel_kwargs for {name!r}: {exc}") from exc


# ----------------------------------------------------------------------------------------------- checks
def _prototype_trace(model: Callable, args: tuple, kwargs: dict) -> dict:
    """One run of the model with latent sites set as NumPyro initialises them (works with improper priors)."""
    substituted = handlers.substitute(handlers.seed(model, 0), substitute_fn=init_to_uniform)
    return handlers.trace(substituted).get_trace(*args, **kwargs)


def _check_init_params(init_params: Any, trace: dict, num_chains: int) -> dict[str, jax.Array]:
    """Unconstrained initial values, one leading [num_chains] axis when num_chains > 1 (NumPyro's convention)."""
    if not isinstance(init_params, dict):
        raise TypeError(f"init_params must be a dict of site name -> unconstrained value, got {type(init_params)}")
    latent = {
        name: site
        for name, site in trace.items()
        if site["type"] == "sample" and not site["is_observed"] and not site["fn"].support.is_discrete
    }
    unknown = sorted(set(init_params) - set(latent))
    missing = sorted(set(latent) - set(init_params))
    if unknown or missing:
        raise ValueError(
            f"init_params: unknown sites {unknown}, missing sites {missing}; the latent sites are {sorted(latent)}"
        )
    lead = (num_chains,) if num_chains > 1 else ()
    out = {}
    for name, site in latent.items():
        value = jnp.asarray(init_params[name])
        expected = lead + tuple(biject_to(site["fn"].support).inverse_shape(jnp.shape(site["value"])))
        if value.shape != expected:
            raise ValueError(
                f"init_params[{name!r}] has shape {value.shape}, expected {expected} "
                f"([num_chains] + the site's unconstrained shape)"
            )
        if not bool(jnp.all(jnp.isfinite(value))):
            raise ValueError(f"init_params[{name!r}] contains NaN or infinite values")
        out[name] = value
    return out


# ------------------------------------------------------------------------------------------------ runner
def _stats(state: Any) -> dict[str, jax.Array]:
    out = {}
    for name, (path, dtype) in _STATS.items():
        try:
            value = jnp.asarray(attrgetter(path)(state))
        except AttributeError:
            continue
        if name == "lp":
            value = -value
        out[name] = value.astype(dtype) if dtype is not None else value
    return out


def _chunk_fn(kernel: MCMCKernel, args: tuple, kwargs: dict, chunk: int, batched: bool) -> Callable:
    """``run(state, n, collect) -> (state, stats[chunk], draws[chunk])``: ``n <= chunk`` kernel steps in one
    ``fori_loop``; per-step stats are always kept, constrained draws only when ``collect``."""
    postprocess = kernel.postprocess_fn(args, kwargs)
    if batched:
        postprocess = jax.vmap(postprocess)
    field = attrgetter(kernel.sample_field)

    def draws(state):
        value = postprocess(field(state))
        return value if isinstance(value, dict) else {"z": value}

    def run(state, n, collect):
        def zeros(like):
            return jax.tree.map(lambda v: jnp.zeros((chunk,) + v.shape, v.dtype), like)

        stats0 = zeros(jax.eval_shape(_stats, state))
        draws0 = zeros(jax.eval_shape(draws, state))

        def write(buffer, j, values):
            return jax.tree.map(lambda b, v: b.at[j].set(v), buffer, values)

        def body(j, carry):
            state, stats, kept = carry
            state = kernel.sample(state, args, kwargs)
            stats = write(stats, j, _stats(state))
            kept = lax.cond(collect, lambda k: write(k, j, draws(state)), lambda k: k, kept)
            return state, stats, kept

        return lax.fori_loop(0, n, body, (state, stats0, draws0))

    return run


class _Progress:
    def __init__(self, total: int, enabled: bool, description: str):
        self.bar = tqdm(total=total, desc=description, disable=not enabled, dynamic_ncols=True)
        self.enabled = enabled
        self.divergences = 0

    def update(self, n: int, stats: dict, phase: str) -> None:
        self.divergences += int(np.sum(stats["diverging"])) if "diverging" in stats else 0
        if self.enabled:
            postfix = {"phase": phase, "div": self.divergences}
            if "acceptance_rate" in stats:
                postfix["acc"] = f"{float(np.mean(stats['acceptance_rate'])):.3f}"
            if "step_size" in stats:
                postfix["step"] = f"{float(np.mean(stats['step_size'][-1])):.3g}"
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def _run_phase(compiled, state, steps: int, chunk: int, collect: bool, progress: _Progress, phase: str, axis: int):
    """Advance ``steps`` steps in chunks; returns the state and the per-step stats / draws as numpy arrays whose
    axis ``axis`` (0, or 1 under ``pmap``) indexes the steps."""
    stats_parts, draw_parts = [], []
    done = 0

    def first(tree, n):
        return jax.tree.map(lambda v: np.asarray(v)[(slice(None),) * axis + (slice(0, n),)], tree)

    while done < steps:
        n = min(chunk, steps - done)
        state, stats, draws = compiled(state, np.int32(n), np.bool_(collect))
        stats_parts.append(first(stats, n))
        if collect:
            draw_parts.append(first(draws, n))
        progress.update(n, stats_parts[-1], phase)
        done += n

    def cat(parts):
        return jax.tree.map(lambda *vs: np.concatenate(vs, axis=axis), *parts) if parts else {}

    return state, cat(stats_parts), cat(draw_parts)


def sample(
    model: Callable,
    *args: Any,
    kernel: str | MCMCKernel = "nuts",
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    chain_method: str = "sequential",
    seed: int = 0,
    progress: bool = True,
    thinning: int = 1,
    init_params: dict | None = None,
    kernel_kwargs: dict | None = None,
    chunk_size: int | None = None,
    log_likelihood: bool = True,
    posterior_predictive: bool = True,
    prior: bool = True,
    num_prior_samples: int | None = None,
    **kwargs: Any,
) -> az.InferenceData:
    """Run MCMC on the NumPyro program ``model(*args, **kwargs)``; return arviz ``InferenceData``.

    Args:
        kernel: ``"nuts" | "hmc" | "mala" | "ula"`` (built with ``kernel_kwargs``) or a NumPyro ``MCMCKernel``.
        num_warmup / num_samples / num_chains / thinning: as in NumPyro; ``num_samples // thinning`` draws are
            kept per chain (the last of each block of ``thinning``).
        chain_method: ``"sequential" | "vectorized" | "parallel"``.
        seed: the same seed gives the same draws on the same machine. Chain ``c`` gets the ``c``-th key of
            ``jax.random.split(PRNGKey(seed), num_chains)``, as in ``numpyro.infer.MCMC``.
        init_params: unconstrained initial values per latent site, with a leading ``[num_chains]`` axis when
            ``num_chains > 1``.
        chunk_size: steps per compiled call (default: 1/20 of the run, so the progress bar moves).
        log_likelihood / posterior_predictive / prior: the groups ``az.from_numpyro`` adds, all on by default:
            ``log_likelihood``, the pointwise log density of every observed site at every kept draw,
            ``[chain, draw, *batch shape of the site]`` (NumPyro's ``log_likelihood``; ``az.loo`` and ``az.waic``
            read it); ``posterior_predictive``, every observed site drawn afresh at every kept draw,
            ``[chain, draw, *shape of its data]`` (NumPyro's ``Predictive``); ``prior`` (latent and deterministic
            sites) with ``prior_predictive`` (observed sites), from ``num_prior_samples`` forward runs of the
            model, ``[1, num_prior_samples, ...]``. Each holds about chains x draws x observations numbers and
            costs a compilation: False leaves it out, to save memory and time. Groups with nothing in them are
            left out (a model without observed sites gets only ``prior``; an improper ``ImproperUniform`` prior
            cannot be drawn, so no ``prior`` / ``prior_predictive``). ``numpyro.factor`` terms are not data: they
            are in none of these groups nor in ``observed_data``, and the prior draws ignore them. The draws
            come from ``fold_in(PRNGKey(seed), ...)``, a stream apart from the chains' keys: the same seed gives
            the same draws, and turning one group off leaves the others unchanged.
        num_prior_samples: prior draws (default: ``num_samples``).
        **kwargs: keyword arguments of the model (so a model argument cannot share a name with the options
            above; pass such a model's arguments positionally).
    """
    if not callable(model):
        raise TypeError(f"model must be a callable NumPyro program, got {type(model).__name__}")
    _refuse_torch_programs(model, args, kwargs)
    num_warmup = integer(num_warmup, "num_warmup", minimum=0)
    num_samples = integer(num_samples, "num_samples")
    num_chains = integer(num_chains, "num_chains")
    thinning = integer(thinning, "thinning")
    seed = check_seed(seed)
    flags = {"log_likelihood": log_likelihood, "posterior_predictive": posterior_predictive, "prior": prior}
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    num_prior_samples = num_samples if num_prior_samples is None else integer(num_prior_samples, "num_prior_samples")
    one_of(chain_method, "chain_method", CHAIN_METHODS)
    if num_samples < thinning:
        raise ValueError(f"num_samples ({num_samples}) must be >= thinning ({thinning})")
    kernel_name = kernel.lower() if isinstance(kernel, str) else type(kernel).__name__
    sampler = make_kernel(kernel, model, **(kernel_kwargs or {}))
    trace = _prototype_trace(model, args, kwargs)
    if not any(site["type"] == "sample" and not site.get("is_observed") for site in trace.values()):
        raise ValueError(
            "mcmc.sample: the model declared no latent numpyro.sample site, so there is nothing to sample. A Pyro "
            "(torch) program calls pyro.sample, which NumPyro does not see: write it with numpyro.sample, or "
            "sample a torch energy with probrep.inference.langevin.langevin / hmc (torch_samplers.pyro_potential)"
        )
    if init_params is not None:
        init_params = _check_init_params(init_params, trace, num_chains)
    if chain_method == "parallel" and num_chains > 1 and jax.local_device_count() < num_chains:
        logger.warning(
            "chain_method='parallel' needs %d JAX devices, found %d: running the chains sequentially "
            "(on CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=%d before importing JAX)",
            num_chains,
            jax.local_device_count(),
            num_chains,
        )
        chain_method = "sequential"
    if num_chains == 1:
        chain_method = "sequential"

    total = num_warmup + num_samples
    chunk = integer(chunk_size, "chunk_size") if chunk_size is not None else max(1, math.ceil(total / 20))
    key = jax.random.PRNGKey(seed)
    keys = jax.random.split(key, num_chains) if num_chains > 1 else key[None]
    timing = {"compile": 0.0, "warmup": 0.0, "sampling": 0.0}
    progress_total = total * (num_chains if chain_method == "sequential" else 1)
    bar = _Progress(progress_total, progress, f"{kernel_name} x{num_chains} {chain_method}")
    start = time.perf_counter()
    try:
        if chain_method == "sequential":
            results = _run_sequential(
                sampler, keys, init_params, args, kwargs, num_warmup, num_samples, chunk, bar, timing
            )
        else:
            results = _run_batched(
                sampler, keys, init_params, args, kwargs, num_warmup, num_samples, chunk, bar, timing, chain_method
            )
    finally:
        bar.close()
    timing["total"] = time.perf_counter() - start
    warm_stats, stats, draws = results
    keep = slice(thinning - 1, None, thinning)
    posterior = {name: np.asarray(v)[:, keep] for name, v in draws.items()}
    sample_stats = {name: np.asarray(v)[:, keep] for name, v in stats.items()}
    observed = {name: np.asarray(site["value"]) for name, site in observed_sites(trace).items()}
    tic = time.perf_counter()
    groups, problems = extra_groups(
        model,
        args,
        kwargs,
        trace,
        posterior,
        key,
        log_likelihood=log_likelihood,
        posterior_predictive=posterior_predictive,
        prior=prior,
        num_prior_samples=num_prior_samples,
    )
    timing["groups"] = time.perf_counter() - tic
    for problem in problems:
        warnings.warn(f"mcmc.sample: {problem}", UserWarning, stacklevel=2)  # the draws are fine: no MCMCWarning
    idata = az.from_dict(posterior=posterior, sample_stats=sample_stats, observed_data=observed or None, **groups)
    grads_warmup = int(np.sum(warm_stats["n_steps"])) if "n_steps" in warm_stats else None
    grads_sampling = int(np.sum(stats["n_steps"])) if "n_steps" in stats else None
    attrs = {
        "inference_library": "probrep + numpyro",
        "numpyro_version": numpyro.__version__,
        "kernel": kernel_name,
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "thinning": thinning,
        "chain_method": chain_method,
        "seed": seed,
        "compile_seconds": timing["compile"],
        "warmup_seconds": timing["warmup"],
        "sampling_seconds": timing["sampling"],
        "total_seconds": timing["total"],
        "groups_seconds": timing["groups"],
        "warmup_divergences": int(np.sum(warm_stats.get("diverging", 0))),
    }
    if grads_sampling is not None:
        attrs["grad_evals_warmup"] = grads_warmup
        attrs["grad_evals_sampling"] = grads_sampling
    for group in ("posterior", "sample_stats"):
        idata[group].attrs.update(attrs)
    divergences = int(np.sum(sample_stats.get("diverging", 0)))
    for problem in diagnose(idata):
        warnings.warn(f"mcmc.sample ({kernel_name}): {problem}", MCMCWarning, stacklevel=2)
    logger.info(
        "%s: %d chains, %d divergences; compile %.2fs, warm-up %.2fs, sampling %.2fs",
        kernel_name,
        num_chains,
        divergences,
        timing["compile"],
        timing["warmup"],
        timing["sampling"],
    )
    return idata


def _refuse_torch_programs(model: Callable, args: tuple, kwargs: dict) -> None:
    """A Pyro (torch) program would fail deep inside NumPyro (``KeyError: 'posterior'``): say what to pass."""

    torch = sys.modules.get("torch")
    arrays = [*args, *kwargs.values()]
    if isinstance(model, getattr(sys.modules.get("torch.nn"), "Module", ())) or (
        torch is not None and any(torch.is_tensor(a) for a in arrays)
    ):
        raise TypeError(
            "mcmc.sample runs NumPyro programs on JAX arrays; this looks like a Pyro (torch) program or torch data. "
            "Write the model with numpyro.sample and pass numpy/JAX arrays, or sample a torch energy with "
            "probrep.inference.langevin.langevin / hmc (probrep.inference.torch_samplers.pyro_potential turns a "
            "Pyro model into one)"
        )


def _compile(fn: Callable, state: Any, chunk: int, parallel: bool = False):
    args = (state, np.int32(chunk), np.bool_(True))
    if parallel:
        return jax.pmap(fn, in_axes=(0, None, None)).lower(*args).compile()
    return jax.jit(fn).lower(*args).compile()


def _chain_slice(tree: Any, c: int) -> Any:
    return None if tree is None else jax.tree.map(lambda v: v[c], tree)


def _run_sequential(sampler, keys, init_params, args, kwargs, num_warmup, num_samples, chunk, bar, timing):
    compiled = None
    warm_all, stats_all, draws_all = [], [], []
    for c in range(keys.shape[0]):
        tic = time.perf_counter()
        init_c = _chain_slice(init_params, c) if keys.shape[0] > 1 else init_params
        state = sampler.init(keys[c], num_warmup, init_c, args, kwargs)
        if compiled is None:
            compiled = _compile(_chunk_fn(sampler, args, kwargs, chunk, batched=False), state, chunk)
        jax.block_until_ready(state)
        toc = time.perf_counter()
        timing["compile"] += toc - tic
        state, warm, _ = _run_phase(compiled, state, num_warmup, chunk, False, bar, "warmup", 0)
        tac = time.perf_counter()
        timing["warmup"] += tac - toc
        state, stats, draws = _run_phase(compiled, state, num_samples, chunk, True, bar, "sample", 0)
        timing["sampling"] += time.perf_counter() - tac
        warm_all.append(warm)
        stats_all.append(stats)
        draws_all.append(draws)

    def stack(parts):
        return jax.tree.map(lambda *vs: np.stack(vs), *parts) if parts and parts[0] else {}

    return stack(warm_all), stack(stats_all), stack(draws_all)


def _run_batched(sampler, keys, init_params, args, kwargs, num_warmup, num_samples, chunk, bar, timing, method):
    num_chains = keys.shape[0]
    tic = time.perf_counter()
    if method == "vectorized":
        state = sampler.init(keys, num_warmup, init_params, args, kwargs)
        compiled = _compile(_chunk_fn(sampler, args, kwargs, chunk, batched=True), state, chunk)
        chain_axis = 1  # buffers are [steps, chains, ...]
    else:  # parallel: one chain per device
        states = []
        for c in range(num_chains):
            init_c = _chain_slice(init_params, c)
            states.append(sampler.init(keys[c], num_warmup, init_c, args, kwargs))
        state = jax.tree.map(lambda *vs: jnp.stack(vs), *states)
        compiled = _compile(_chunk_fn(sampler, args, kwargs, chunk, batched=False), state, chunk, parallel=True)
        chain_axis = 0  # pmap puts chains first: [chains, steps, ...]
    jax.block_until_ready(state)
    toc = time.perf_counter()
    timing["compile"] += toc - tic
    step_axis = 1 - chain_axis
    state, warm, _ = _run_phase(compiled, state, num_warmup, chunk, False, bar, "warmup", step_axis)
    tac = time.perf_counter()
    timing["warmup"] += tac - toc
    state, stats, draws = _run_phase(compiled, state, num_samples, chunk, True, bar, "sample", step_axis)
    timing["sampling"] += time.perf_counter() - tac

    def chains_first(tree):
        return jax.tree.map(lambda v: np.moveaxis(v, chain_axis, 0) if chain_axis else v, tree)

    return chains_first(warm), chains_first(stats), chains_first(draws)
