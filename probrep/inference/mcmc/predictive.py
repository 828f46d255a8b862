"""The groups of ``mcmc.sample``'s InferenceData beyond the posterior, as ``az.from_numpyro`` gives them.

- ``log_likelihood``: ``numpyro.infer.util.log_likelihood`` at every kept draw, pointwise (one value per
  observation, the shape of the site's batch), so ``az.loo`` and ``az.waic`` work;
- ``posterior_predictive``: the observed sites drawn afresh at every kept draw (``numpyro.infer.Predictive``);
- ``prior`` / ``prior_predictive``: the latent and deterministic sites, and the observed sites, of the model run
  forward ``num_prior_samples`` times (one chain).

All of them are batched over chains and draws in one vectorised call each. Only *data* sites count as observed:
``numpyro.factor`` terms are observed sites of NumPyro's ``Unit`` distribution, which carry no data and cannot be
drawn, so they are left out. An observed site is drawn with the shape of its data: ``Normal(mu, 1)`` observed at
``y`` of shape ``[n]`` outside a plate is drawn ``[n]`` times, not once.

Randomness comes only from the key given (derived from ``sample``'s ``seed``), never from global state; the prior
and the posterior predictive use separate streams, so leaving one out does not change the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.distribution import Unit
from numpyro.infer import Predictive
from numpyro.infer.util import log_likelihood as numpyro_log_likelihood
from numpyro.primitives import Messenger

__all__ = ["observed_sites", "extra_groups"]

logger = logging.getLogger(__name__)

# fold_in(PRNGKey(seed), i) equals split(PRNGKey(seed), n)[i], the key of chain i: take a stream no chain reaches
_STREAM = 0x70726564  # "pred"
_PRIOR, _POSTERIOR_PREDICTIVE = 0, 1


def _key(key: jax.Array, stream: int) -> jax.Array:
    """A group's key, derived from the sampler's ``PRNGKey(seed)`` apart from every chain's key."""
    return jax.random.fold_in(jax.random.fold_in(key, _STREAM), stream)


def _is_factor(site: dict) -> bool:
    return isinstance(site["fn"], Unit) or bool(site.get("infer", {}).get("is_auxiliary"))


def observed_sites(trace: dict) -> dict[str, dict]:
    """The observed sample sites of a model trace that hold data (``numpyro.factor`` terms left out)."""
    return {
        name: site
        for name, site in trace.items()
        if site["type"] == "sample" and site.get("is_observed") and not _is_factor(site)
    }


class _Unobserve(Messenger):
    """Draw the named observed sites instead of returning their data, in the data's shape (the distribution is
    expanded to the data's batch shape when it broadcasts against the data rather than matching it)."""

    def __init__(self, fn: Callable, names: set[str]):
        self.names = names
        super().__init__(fn)

    def process_message(self, msg: dict) -> None:
        if msg["type"] != "sample" or msg["name"] not in self.names or not msg["is_observed"]:
            return
        fn, value = msg["fn"], msg["value"]
        batch = tuple(jnp.shape(value))[: max(jnp.ndim(value) - len(fn.event_shape), 0)]
        try:
            wider = fn.batch_shape != batch and jnp.broadcast_shapes(fn.batch_shape, batch) == batch
        except ValueError:
            wider = False
        if wider:
            msg["fn"] = fn.expand(batch)
        msg["value"] = None
        msg["is_observed"] = False


def _numpy(tree: dict) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in jax.device_get(tree).items()}


# Each group is one compiled call with the model's arguments closed over, as the sampler compiles them: a model
# that computes with numpy on its data runs here as it ran there, and XLA fuses the batched computation.
def _log_likelihood(model, posterior, observed, args, kwargs) -> dict[str, np.ndarray]:
    def run(draws):
        values = numpyro_log_likelihood(model, draws, *args, parallel=True, batch_ndims=2, **kwargs)
        return {name: values[name] for name in observed}

    return _numpy(jax.jit(run)(posterior))


def _posterior_predictive(model, posterior, observed, key, args, kwargs) -> dict[str, np.ndarray]:
    predictive = Predictive(
        _Unobserve(model, set(observed)),
        posterior_samples=posterior,
        return_sites=list(observed),
        parallel=True,
        batch_ndims=2,
    )
    return _numpy(jax.jit(lambda k: predictive(k, *args, **kwargs))(key))


def _prior(model, trace, observed, num_draws, key, args, kwargs) -> tuple[dict, dict]:
    predictive = Predictive(_Unobserve(model, set(observed)), num_samples=num_draws, parallel=True)
    draws = _numpy(jax.jit(lambda k: predictive(k, *args, **kwargs))(key))
    factors = {name for name, site in trace.items() if site["type"] == "sample" and _is_factor(site)}
    prior = {name: v[None] for name, v in draws.items() if name not in observed and name not in factors}
    prior_predictive = {name: draws[name][None] for name in observed if name in draws}
    return prior, prior_predictive


def _latent_missing(trace: dict, posterior: dict) -> list[str]:
    return sorted(
        name
        for name, site in trace.items()
        if site["type"] == "sample" and not site.get("is_observed") and name not in posterior
    )


def extra_groups(
    model: Callable,
    args: tuple,
    kwargs: dict,
    trace: dict,
    posterior: dict[str, np.ndarray],
    key: jax.Array,
    *,
    log_likelihood: bool,
    posterior_predictive: bool,
    prior: bool,
    num_prior_samples: int,
) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """``({group: {site: [chain, draw, ...]}}, problems)`` for the groups asked for that have something in them.

    ``trace`` is a prototype trace of the model (which sites are observed and latent); ``posterior`` holds the
    kept draws, ``[chain, draw, ...]``; ``key`` is the sampler's ``PRNGKey(seed)``. A group that cannot be computed
    is left out and said in ``problems`` (the draws already made are never thrown away for it); an improper
    prior (``ImproperUniform``, which cannot be drawn) leaves out ``prior`` and ``prior_predictive`` with a note
    in the log only.
    """
    observed = observed_sites(trace)
    groups: dict[str, dict[str, np.ndarray]] = {}
    problems: list[str] = []
    missing = _latent_missing(trace, posterior)
    if observed and (log_likelihood or posterior_predictive) and missing:
        problems.append(
            f"no log_likelihood / posterior_predictive: the posterior lacks the latent sites {missing} "
            "(discrete or not sampled), so the model cannot be run at its draws"
        )
    elif observed:
        if log_likelihood:
            try:
                groups["log_likelihood"] = _log_likelihood(model, posterior, observed, args, kwargs)
            except Exception as exc:  # the posterior is kept; the group is reported missing
                problems.append(f"no log_likelihood group: {type(exc).__name__}: {exc}")
        if posterior_predictive:
            try:
                sub = _key(key, _POSTERIOR_PREDICTIVE)
                groups["posterior_predictive"] = _posterior_predictive(model, posterior, observed, sub, args, kwargs)
            except Exception as exc:
                problems.append(f"no posterior_predictive group: {type(exc).__name__}: {exc}")
    if prior:
        try:
            sub = _key(key, _PRIOR)
            prior_draws, prior_predictive = _prior(model, trace, observed, num_prior_samples, sub, args, kwargs)
        except NotImplementedError as exc:  # ImproperUniform.sample: the prior cannot be drawn
            logger.info("no prior / prior_predictive group: the model's prior cannot be drawn (%r)", exc)
        except Exception as exc:
            problems.append(f"no prior / prior_predictive group: {type(exc).__name__}: {exc}")
        else:
            if prior_draws:
                groups["prior"] = prior_draws
            if prior_predictive:
                groups["prior_predictive"] = prior_predictive
    return groups, problems
