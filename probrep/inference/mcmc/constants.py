"""The numbers every sampler of ours shares (JAX and torch alike), written down once.

- ``OPTIMAL_MALA_ACCEPTANCE = 0.574``: the acceptance rate at which MALA mixes fastest as the dimension grows
  (Roberts and Rosenthal 1998); MALA and ULA tune their step size to it.
- ``OPTIMAL_HMC_ACCEPTANCE = 0.65``: the same for HMC with a fixed number of leap-frog steps (Beskos, Pillai,
  Roberts, Sanz-Serna and Stuart 2013).
- ``MAX_ENERGY_ERROR = 1000``: a transition whose log acceptance ratio is below ``-MAX_ENERGY_ERROR`` (or not a
  number) is counted as divergent, as Stan and NumPyro do for HMC.

No imports: the torch samplers read these without loading JAX.
"""

OPTIMAL_MALA_ACCEPTANCE = 0.574
OPTIMAL_HMC_ACCEPTANCE = 0.65
MAX_ENERGY_ERROR = 1000.0

__all__ = ["OPTIMAL_MALA_ACCEPTANCE", "OPTIMAL_HMC_ACCEPTANCE", "MAX_ENERGY_ERROR"]
