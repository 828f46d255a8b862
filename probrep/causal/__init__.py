"""Structural causal models: the equation language, interventions (``do``, soft), counterfactuals, and Gaussian
closed forms. The representation scores live in :mod:`probrep.metrics`; ``irs`` and ``metrics`` are re-exported
here because the README has always imported them from this package (``metrics`` loads on first use)."""

from probrep.causal.parse import EquationError
from probrep.causal.scm import SCM, Mechanism
from probrep.metrics.irs import IRSResult, irs

__all__ = ["SCM", "Mechanism", "EquationError", "irs", "IRSResult", "metrics"]


def __getattr__(name: str):
    if name == "metrics":
        import importlib

        return importlib.import_module("probrep.metrics")
    raise AttributeError(f"module 'probrep.causal' has no attribute {name!r}")
