"""Langevin samplers in one place for users: the NumPyro kernels ``MALA`` and ``ULA`` (JAX) and the batched
torch samplers ``langevin`` and ``hmc``. The JAX kernels load on first use, so importing the torch samplers
from here does not load JAX.

Both Langevin families call the noise variance ``e`` of a step ``step_size``; the torch ``hmc`` calls its
leap-frog step ``h`` ``leapfrog_step``.
"""

from typing import TYPE_CHECKING

from probrep._lazy import lazy_exports
from probrep.inference.torch_samplers import SamplerResult, hmc, langevin, pyro_potential

if TYPE_CHECKING:
    from probrep.inference.mcmc.kernels import MALA, ULA

__all__ = ["MALA", "ULA", "langevin", "hmc", "SamplerResult", "pyro_potential"]
__getattr__, __dir__ = lazy_exports(
    __name__, {"MALA": "probrep.inference.mcmc.kernels:MALA", "ULA": "probrep.inference.mcmc.kernels:ULA"}
)
