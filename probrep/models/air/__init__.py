"""Attend, Infer, Repeat (Eslami et al. 2016): the model, its recurrent guide, and the spatial transformer."""

from probrep.models.air.model import AIR, AIRInference, count_confusion, count_prior, count_prior_step_probs

__all__ = ["AIR", "AIRInference", "count_prior", "count_prior_step_probs", "count_confusion"]
