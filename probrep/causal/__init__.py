"""Causal models (SCMs, interventions, counterfactuals) and the representation measures: IRS and, in
``probrep.causal.metrics`` (imported on first use: it loads scikit-learn), the disentanglement metrics."""

from probrep.causal.irs import IRSResult, irs
from probrep.causal.parse import EquationError
from probrep.causal.scm import SCM, Mechanism

__all__ = ["SCM", "Mechanism", "EquationError", "irs", "IRSResult"]


def __getattr__(name: str):
    if name == "metrics":
        import importlib

        return importlib.import_module("probrep.causal.metrics")
    raise AttributeError(f"module 'probrep.causal' has no attribute {name!r}")
