"""Linear-Gaussian SCMs in closed form: moments, noise posteriors and counterfactual distributions.

With every mechanism linear in its parents and Gaussian noise terms, ``x = B x + A u + c`` with
``u ~ N(mu, diag(s^2))``, so ``x = T (c + A u)``, ``T = (I - B)^-1``: mean ``T (c + A mu)``, covariance
``T A diag(s^2) A^T T^T``. Observing some nodes is a linear-Gaussian observation of ``u``; a counterfactual
world is another linear map of the same ``u`` (plus any fresh noise that its interventions bring).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp


@dataclass
class LinearGaussian:
    """``x = offset + loading @ u`` over ``nodes``, ``u ~ N(noise_mean, diag(noise_var))`` over ``noise_names``."""

    nodes: list[str]
    noise_names: list[str]
    offset: np.ndarray  # [d]
    loading: np.ndarray  # [d, k]
    noise_mean: np.ndarray  # [k]
    noise_var: np.ndarray  # [k]

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.offset + self.loading @ self.noise_mean
        cov = (self.loading * self.noise_var) @ self.loading.T
        return mean, cov

    def noise_posterior(self, evidence: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of ``u`` given observed node values (Gaussian conditioning)."""
        idx = [self.nodes.index(k) for k in evidence]
        h = self.loading[idx]  # [m, k]
        e = np.array([float(v) for v in evidence.values()])
        prior_cov = np.diag(self.noise_var)
        gain_cov = h @ prior_cov @ h.T
        gain = prior_cov @ h.T @ np.linalg.pinv(gain_cov)
        mean = self.noise_mean + gain @ (e - self.offset[idx] - h @ self.noise_mean)
        cov = prior_cov - gain @ h @ prior_cov
        return mean, 0.5 * (cov + cov.T)


def linear_gaussian(scm) -> LinearGaussian:
    """Derive the linear-Gaussian form of ``scm`` symbolically; ValueError naming the first node that is not."""
    nodes = scm.nodes
    noises = scm.noises
    noise_names = list(noises)
    d, k = len(nodes), len(noise_names)
    b, a, c = np.zeros((d, d)), np.zeros((d, k)), np.zeros(d)
    for u in noises.values():
        if u.dist != "Normal":
            raise ValueError(f"gaussian() needs Gaussian noise; {u.name} is {u.describe()}")
    for i, name in enumerate(nodes):
        node = scm.node(name)
        if not node.symbolic:
            raise ValueError(f"gaussian() needs symbolic equations; node {name!r} has a callable mechanism")
        symbols = {s.name: s for s in node.expr.free_symbols}
        constant = node.expr.subs({s: 0 for s in symbols.values()})
        linear = constant
        for sym_name, sym in symbols.items():
            coef = sp.diff(node.expr, sym)
            if coef.free_symbols:
                raise ValueError(f"gaussian() needs linear equations; node {name!r} is not linear in {sym_name}")
            linear = linear + coef * sym
            if sym_name in noises:
                a[i, noise_names.index(sym_name)] = float(coef)
            else:
                b[i, nodes.index(sym_name)] = float(coef)
        if sp.simplify(node.expr - linear) != 0 or not constant.is_number:
            raise ValueError(f"gaussian() needs linear equations; node {name!r} is {node.text!r}")
        c[i] = float(constant)
    t = np.linalg.inv(np.eye(d) - b)
    mean = np.array([noises[n].params[0] for n in noise_names], dtype=float)
    var = np.array([noises[n].params[1] ** 2 for n in noise_names], dtype=float)
    return LinearGaussian(nodes, noise_names, t @ c, t @ a, mean, var)


def gaussian_counterfactual(scm, evidence: Mapping[str, float], do: Mapping) -> dict[str, np.ndarray | list]:
    """Exact counterfactual distribution of a linear-Gaussian SCM.

    Returns ``mean``/``cov`` over ``scm.nodes`` in the intervened world and the abducted noise posterior
    (``noise_names``, ``noise_mean``, ``noise_cov``).
    """
    factual = linear_gaussian(scm)
    post_mean, post_cov = factual.noise_posterior(evidence)
    twin = linear_gaussian(scm.do(do))
    # joint distribution of the twin world's noise: shared terms from the posterior, fresh ones from the prior
    k = len(twin.noise_names)
    mean, cov = np.zeros(k), np.zeros((k, k))
    shared = [(j, factual.noise_names.index(n)) for j, n in enumerate(twin.noise_names) if n in factual.noise_names]
    for j, i in shared:
        mean[j] = post_mean[i]
        for jj, ii in shared:
            cov[j, jj] = post_cov[i, ii]
    for j, n in enumerate(twin.noise_names):
        if n not in factual.noise_names:
            mean[j], cov[j, j] = twin.noise_mean[j], twin.noise_var[j]
    cf_mean = twin.offset + twin.loading @ mean
    cf_cov = twin.loading @ cov @ twin.loading.T
    return {
        "mean": cf_mean,
        "cov": cf_cov,
        "noise_names": factual.noise_names,
        "noise_mean": post_mean,
        "noise_cov": post_cov,
    }
