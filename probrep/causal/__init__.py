"""Structural causal models: the equation language, interventions (``do``, soft), counterfactuals, and Gaussian
closed forms. The representation scores live in :mod:`probrep.metrics`; ``irs`` and ``metrics`` are re-exported
here because the README has always imported them from this package (``metrics`` loads on first use)."""

from probrep._lazy import lazy_exports
from probrep.causal.parse import EquationError
from probrep.causal.scm import SCM, Mechanism
from probrep.metrics.robustness import IRSResult, irs

__all__ = ["SCM", "Mechanism", "EquationError", "irs", "IRSResult", "metrics"]


__getattr__, __dir__ = lazy_exports(__name__, {"metrics": "probrep.metrics"})
