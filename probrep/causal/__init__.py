"""Causal models: structural causal models with interventions and counterfactuals."""

from probrep.causal.irs import IRSResult, irs
from probrep.causal.parse import EquationError
from probrep.causal.scm import SCM, Mechanism

__all__ = ["SCM", "Mechanism", "EquationError", "irs", "IRSResult"]
