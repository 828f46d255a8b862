"""Scores of a representation against known factors, with disentanglement_lib's definitions and defaults.

Arrays in: ``factors [N, K]`` (ground-truth classes) and ``codes [N, D]`` (numpy or torch). The sampled scores
(BetaVAE, FactorVAE) take a dataset and an encoder instead.

- :mod:`~probrep.metrics.robustness`: Interventional Robustness Score (Suter et al. 2019)
- :mod:`~probrep.metrics.information`: MIG, modularity, discrete mutual information, Gaussian total correlation
- :mod:`~probrep.metrics.predictive`: DCI, SAP, explicitness (fitted classifiers: scikit-learn)
- :mod:`~probrep.metrics.sampled`: BetaVAE and FactorVAE scores (:class:`CodeCache`: each distinct image encoded once)
- :mod:`~probrep.metrics.utility`: downstream accuracy with few labels and sample efficiency, unfairness
- :mod:`~probrep.metrics.ranking`: Unsupervised Disentanglement Ranking (UDR) of models from their codes alone
- :mod:`~probrep.metrics.equivariance`: symmetry-based disentanglement (linear equivariance on a factor grid)
- :mod:`~probrep.metrics._arrays`: the input conventions every metric shares

The modules that need scikit-learn load on first use, so ``import probrep.metrics`` (and IRS) stay light.
"""

from probrep._lazy import lazy_exports

_WHERE = {
    "IRSResult": "robustness",
    "irs": "robustness",
    "MIGResult": "information",
    "ModularityResult": "information",
    "mig": "information",
    "modularity": "information",
    "gaussian_total_correlation": "information",
    "discrete_mutual_info": "information",
    "DCIResult": "predictive",
    "SAPResult": "predictive",
    "ExplicitnessResult": "predictive",
    "dci": "predictive",
    "dci_from_importance": "predictive",
    "sap": "predictive",
    "explicitness": "predictive",
    "CodeCache": "_encoding",
    "FactorVAEResult": "sampled",
    "BetaVAEResult": "sampled",
    "factor_vae_score": "sampled",
    "beta_vae_score": "sampled",
    "DownstreamResult": "utility",
    "FairnessResult": "utility",
    "downstream": "utility",
    "fairness": "utility",
    "unfairness": "utility",
    "UDRResult": "ranking",
    "udr": "ranking",
    "udr_pair": "ranking",
    "SymmetryResult": "equivariance",
    "symmetry": "equivariance",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, {name: f"probrep.metrics.{m}:{name}" for name, m in _WHERE.items()})
