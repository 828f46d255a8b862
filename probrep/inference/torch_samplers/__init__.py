"""Batched Langevin (MALA, ULA) and HMC samplers in torch, for energies given as torch functions."""

from probrep.inference.torch_samplers.langevin_hmc import SamplerResult, hmc, langevin, pyro_potential

__all__ = ["langevin", "hmc", "SamplerResult", "pyro_potential"]
