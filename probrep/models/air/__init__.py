"""Attend, Infer, Repeat (Eslami et al. 2016): the model and its recurrent guide (``model``), the count prior
(``priors``), the networks (``networks``), the spatial transformer (``spatial``) and what a trained model counts
(``diagnostics``)."""

from probrep.models.air.model import AIR, AIRInference
from probrep.models.air.priors import count_prior, count_prior_step_probs

__all__ = ["AIR", "AIRInference", "count_prior", "count_prior_step_probs"]
