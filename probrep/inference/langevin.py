"""Langevin samplers in one place for users: the NumPyro kernels ``MALA`` and ``ULA`` (JAX) and the batched
torch samplers ``langevin`` and ``hmc``. The JAX kernels load on first use, so importing the torch samplers
from here does not load JAX.

Both Langevin families call the noise variance ``e`` of a step ``step_size``; the torch ``hmc`` calls its
leap-frog step ``h`` ``leapfrog_step``.
"""

import importlib
from typing import TYPE_CHECKING

from probrep.inference.torch_samplers import SamplerResult, hmc, langevin, pyro_potential

if TYPE_CHECKING:
    from probrep.inference.mcmc.kernels import MALA, ULA

_JAX = ("MALA", "ULA")
__all__ = ["MALA", "ULA", "langevin", "hmc", "SamplerResult", "pyro_potential"]


def __getattr__(name: str):
    if name in _JAX:
        return getattr(importlib.import_module("probrep.inference.mcmc.kernels"), name)
    raise AttributeError(f"module 'probrep.inference.langevin' has no attribute {name!r}")
