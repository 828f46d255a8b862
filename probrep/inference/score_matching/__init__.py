"""Score matching: the objectives (torch in ``objectives``; JAX in ``objectives_jax``, imported by name, so that
torch users never load JAX), fitting a model with them (``fitting``) and sampling a noise-conditional score
(``annealed``).

    from probrep.inference import score_matching as sm
    loss = sm.denoising(model.score, x, sm.geometric_sigmas(20.0, 0.5, 10))
"""

from probrep.inference.score_matching.annealed import annealed_langevin
from probrep.inference.score_matching.fitting import OBJECTIVES, fit_score_model
from probrep.inference.score_matching.objectives import (
    denoising,
    exact,
    geometric_sigmas,
    sliced,
)
from probrep.models.scores import ScoreFn, score_from_energy, score_from_log_density

__all__ = [
    "ScoreFn",
    "exact",
    "sliced",
    "denoising",
    "geometric_sigmas",
    "score_from_energy",
    "score_from_log_density",
    "fit_score_model",
    "annealed_langevin",
    "OBJECTIVES",
]
