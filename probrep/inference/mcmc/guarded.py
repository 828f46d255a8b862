"""NumPyro's NUTS and HMC with a guarded potential: a log density that is +inf or NaN somewhere counts as a
divergence there, as in the MALA / ULA kernels (:mod:`.langevin`) and the torch samplers.

Unguarded, a +inf log density (potential energy -inf) breaks both: the energy error of a move into that region
is -inf, so the move is always accepted and never flagged; NUTS then stays there for good (its step size
shrinks towards 1e-38 and every draw lies inside the region), and HMC, whose number of leapfrog steps is the
trajectory length over that shrinking step size, never finishes a transition. Mapping every non-finite
potential to +inf makes such a point impossible (density 0) instead: the move's energy error is +inf, which
NumPyro counts as a divergence and rejects. Finite potentials, and their gradients, are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from numpyro.infer import HMC as _HMC
from numpyro.infer import NUTS as _NUTS
from numpyro.infer.hmc import hmc

__all__ = ["HMC", "NUTS", "guard_potential"]


def guard_potential(potential_fn: Callable[[Any], jnp.ndarray]) -> Callable[[Any], jnp.ndarray]:
    """``potential_fn`` with every non-finite value (-inf, NaN) replaced by +inf."""

    def guarded(z: Any) -> jnp.ndarray:
        energy = potential_fn(z)
        return jnp.where(jnp.isfinite(energy), energy, jnp.inf)

    return guarded


class _Guarded:
    """Mixin for NumPyro's ``HMC`` family: the kernel's potential (given, or made from the model on each
    ``init``) goes through :func:`guard_potential`."""

    def __init__(self, model=None, potential_fn=None, *args, **kwargs):
        if potential_fn is not None:
            potential_fn = guard_potential(potential_fn)
        super().__init__(model, potential_fn, *args, **kwargs)

    def _init_state(self, rng_key, model_args, model_kwargs, init_params):
        fresh = self._init_fn is None
        init_params = super()._init_state(rng_key, model_args, model_kwargs, init_params)
        if self._model is not None:
            # NumPyro stores the model's potential generator on every init and builds its init / sample
            # functions from it on the first: both must see the guarded one
            unguarded = self._potential_fn_gen
            self._potential_fn_gen = lambda *a, **k: guard_potential(unguarded(*a, **k))
            if fresh:
                self._init_fn, self._sample_fn = hmc(
                    potential_fn_gen=self._potential_fn_gen, kinetic_fn=self._kinetic_fn, algo=self._algo
                )
        return init_params


class HMC(_Guarded, _HMC):
    """``numpyro.infer.HMC`` whose non-finite potentials are divergences (see the module docstring)."""


class NUTS(_Guarded, _NUTS):
    """``numpyro.infer.NUTS`` whose non-finite potentials are divergences (see the module docstring)."""
