"""Batched Langevin (MALA, ULA) and HMC samplers in torch, for energies given as torch functions: all chains
move in one call, on any device.

Layered as BlackJAX layers its samplers: pure ``init`` / ``step`` pairs (:mod:`.kernels`, on the shared pieces of
:mod:`.core`), one driver that composes a kernel with warm-up adaptation, a recorder and a progress bar
(:mod:`.driver`, :mod:`.warmup`, :mod:`.recorder`, :mod:`.noise`), and the two entry points ``langevin`` and
``hmc`` (:mod:`.samplers`). ``pyro_potential`` turns a Pyro model into an energy (:mod:`.pyro_energy`).
"""

from probrep.inference.torch_samplers.core import ChainState, TransitionInfo, energy_and_grad
from probrep.inference.torch_samplers.driver import SamplerResult
from probrep.inference.torch_samplers.kernels import hmc_init, hmc_step, langevin_init, langevin_step
from probrep.inference.torch_samplers.pyro_energy import PyroPotential, pyro_potential
from probrep.inference.torch_samplers.samplers import hmc, langevin

__all__ = [
    "langevin",
    "hmc",
    "SamplerResult",
    "pyro_potential",
    "PyroPotential",
    "ChainState",
    "TransitionInfo",
    "energy_and_grad",
    "langevin_init",
    "langevin_step",
    "hmc_init",
    "hmc_step",
]
