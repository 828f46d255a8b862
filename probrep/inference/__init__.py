"""Inference: SVI (``svi.fit``) on the shared training loop, checkpoints, MCMC (``mcmc``, ``langevin``),
score matching, and divergences. The JAX-backed modules load on first use, so ``import probrep.inference``
does not pull in JAX, NumPyro and arviz."""

import importlib

from probrep.inference import checkpoint, svi

_LAZY = ("mcmc", "langevin", "langevin_torch", "adaptation", "divergences", "score_matching", "score_matching_jax")
__all__ = ["checkpoint", "svi", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"probrep.inference.{name}")
    raise AttributeError(f"module 'probrep.inference' has no attribute {name!r}")
