"""SCMs whose parameters are learned from data, and causal queries that carry the parameters' uncertainty.

``scm.fit(data, method=...)`` conditions the NumPyro program on the observed columns (unobserved nodes stay latent,
per row) and infers the parameters: ``"nuts"`` (posterior draws, with arviz InferenceData), ``"svi"`` (draws from a
fitted ``AutoNormal``) or ``"map"`` (one point, ``AutoDelta``). The result, a :class:`FittedSCM`, answers every
query once per parameter draw (each draw fixes the parameters: an ordinary SCM) and pools or summarises the
answers, so a user gets a point estimate and a credible interval.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probrep import _checks

logger = logging.getLogger(__name__)

METHODS = ("nuts", "svi", "map")


def observed_columns(nodes: list[str], data: Any) -> dict[str, np.ndarray]:
    """``data`` (a mapping or a pandas DataFrame of observed ``nodes``) as finite float arrays of one length."""
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        data = {str(c): data[c].to_numpy() for c in data.columns}
    if not isinstance(data, Mapping) or not data:
        raise TypeError("data must be a non-empty mapping {node: values} or a pandas DataFrame of observed nodes")
    unknown = [k for k in data if k not in nodes]
    if unknown:
        raise ValueError(f"data columns {unknown} name no node; the nodes are {nodes}")
    out, rows = {}, None
    for name, values in data.items():
        try:
            array = np.asarray(values, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"data column {name!r} is not numeric") from None
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise ValueError(f"data column {name!r} has a non-finite value ({array[bad[0]]}) at row {bad[0]}")
        if rows is not None and len(array) != rows:
            raise ValueError(f"data columns differ in length: {name!r} has {len(array)} rows, expected {rows}")
        rows = len(array)
        out[name] = array
    if not rows:
        raise ValueError("data has no rows")
    return out


def fit(
    scm,
    data: Any,
    method: str = "nuts",
    *,
    num_samples: int = 1000,
    num_warmup: int = 1000,
    num_chains: int = 1,
    steps: int = 3000,
    lr: float = 0.01,
    seed: int = 0,
    progress: bool = False,
) -> FittedSCM:
    """Infer ``scm``'s parameters from ``data`` (see the module docstring). ``num_samples`` draws (per chain for
    NUTS; from the fitted guide for SVI); ``steps`` and ``lr`` are the optimiser's for SVI and MAP."""
    from probrep.causal.programs import load_numpyro

    if not scm._parameters:
        raise ValueError("this SCM has no parameters to fit: declare them with SCM.from_equations(..., parameters=)")
    method = _checks.one_of(method, "method", METHODS)
    num_samples, seed = _checks.integer(num_samples, "num_samples"), _checks.seed(seed)
    columns = observed_columns(scm.nodes, data)
    load_numpyro()
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
    from numpyro.infer.autoguide import AutoDelta, AutoNormal

    from probrep.causal.programs import make_program

    # only the parameters are kept: no per-row sites, discrete outcomes' interval positions integrated out
    program = make_program(scm, "numpyro", observed=columns, per_row=False)
    names = list(scm._parameters)
    key = jax.random.PRNGKey(seed)
    idata = None
    if method == "nuts":
        mcmc = MCMC(NUTS(program), num_warmup=_checks.integer(num_warmup, "num_warmup", 0), num_samples=num_samples,
                    num_chains=_checks.integer(num_chains, "num_chains"), progress_bar=progress)  # fmt: skip
        mcmc.run(key)
        samples = mcmc.get_samples()
        import arviz as az

        idata = az.from_numpyro(mcmc)
    else:
        guide = (AutoNormal if method == "svi" else AutoDelta)(program)
        optimizer = numpyro.optim.Adam(_checks.real(lr, "lr", positive=True))
        run = SVI(program, guide, optimizer, Trace_ELBO()).run(
            key, _checks.integer(steps, "steps"), progress_bar=progress
        )
        draws = num_samples if method == "svi" else 1
        predictive = Predictive(program, guide=guide, params=run.params, num_samples=draws, return_sites=names)
        samples = predictive(jax.random.fold_in(key, 1))
    return FittedSCM(scm, {p: np.asarray(samples[p], dtype=float).reshape(-1) for p in names}, method, idata)


@dataclass(frozen=True)
class Effect:
    """An average causal effect ``E[Y | do(X = values[1])] - E[Y | do(X = values[0])]``: ``estimate`` (mean over
    parameter draws), ``interval`` (equal-tailed, ``level``) and ``per_draw`` (one estimate per draw)."""

    treatment: str
    outcome: str
    values: tuple[float, float]
    estimate: float
    interval: tuple[float, float]
    level: float
    per_draw: np.ndarray = field(repr=False)


@dataclass
class FittedSCM:
    """An SCM with parameter draws: ``draws[name]`` is an array ``[D]`` (D = 1 for MAP)."""

    scm: Any
    draws: dict[str, np.ndarray]
    method: str
    inference_data: Any = None

    @property
    def num_draws(self) -> int:
        return len(next(iter(self.draws.values())))

    def draw(self, i: int):
        """The SCM at parameter draw ``i``: an ordinary SCM with every parameter a number."""
        return self.scm.with_parameters({name: float(v[i]) for name, v in self.draws.items()})

    def _chosen(self, num_draws: int | None) -> np.ndarray:
        total = self.num_draws
        k = total if num_draws is None else min(total, _checks.integer(num_draws, "num_draws"))
        return np.unique(np.linspace(0, total - 1, k).round().astype(int))  # spread over the whole run

    def do(self, interventions: Mapping[str, Any]) -> FittedSCM:
        return FittedSCM(self.scm.do(interventions), self.draws, self.method, self.inference_data)

    def sample(self, n: int, seed: int = 0, per_draw: bool = False, num_draws: int | None = 100) -> dict:
        """``{node: [n]}`` from the posterior predictive (rows spread evenly over ``num_draws`` draws), or with
        ``per_draw=True`` ``{node: [D, n]}``: ``n`` rows at each draw."""
        n, seed = _checks.integer(n, "n"), _checks.seed(seed)
        chosen = self._chosen(num_draws)
        per = n if per_draw else -(-n // len(chosen))
        rows = [self.draw(i).sample(per, seed=seed + j, backend="numpy") for j, i in enumerate(chosen)]
        if per_draw:
            return {node: np.stack([r[node] for r in rows]) for node in self.scm.nodes}
        return {node: np.concatenate([r[node] for r in rows])[:n] for node in self.scm.nodes}

    def counterfactual(self, evidence: Mapping[str, float], do: Mapping[str, Any], n: int = 1000, seed: int = 0,
                       num_draws: int | None = 100, **kwargs: Any) -> dict:  # fmt: skip
        """Twin-world counterfactuals integrated over the parameter draws: the rows of each world spread evenly
        over ``num_draws`` draws (each abducts the noise under its own parameters)."""
        chosen = self._chosen(num_draws)
        per = -(-_checks.integer(n, "n") // len(chosen))
        parts = [self.draw(i).counterfactual(evidence, do, n=per, seed=seed + j, **kwargs)
                 for j, i in enumerate(chosen)]  # fmt: skip
        return {world: {k: np.concatenate([p[world][k] for p in parts])[:n] for k in parts[0][world]}
                for world in parts[0]}  # fmt: skip

    def effect(self, treatment: str, outcome: str, values: tuple[float, float] = (0.0, 1.0), n: int = 2000,
               seed: int = 0, num_draws: int | None = 200, level: float = 0.9) -> Effect:  # fmt: skip
        """The average effect of setting ``treatment`` from ``values[0]`` to ``values[1]`` on ``outcome``, once per
        parameter draw (``n`` rows each, the same noise in both arms so that their difference has little Monte
        Carlo error), with the mean and an equal-tailed ``level`` credible interval over the draws."""
        return effect_of(self.draw, self._chosen(num_draws), self.scm, treatment, outcome, values, n, seed, level)


def effect_of(scm_at, chosen, scm, treatment, outcome, values, n, seed, level) -> Effect:
    """The effect computed at each chosen draw (``scm_at(i)`` the SCM at draw i); shared by SCM and FittedSCM."""
    scm._check_names([treatment, outcome], "node")
    if treatment == outcome:
        raise ValueError(f"treatment and outcome are the same node {treatment!r}")
    low, high = (_checks.real(v, "values") for v in values)
    level = _checks.probability(level, "level")
    n, seed = _checks.integer(n, "n"), _checks.seed(seed)
    per_draw = []
    for j, i in enumerate(chosen):
        fixed = scm_at(i)
        arms = [fixed.do({treatment: v}).sample(n, seed=seed + j, backend="numpy")[outcome] for v in (low, high)]
        per_draw.append(float(np.mean(arms[1]) - np.mean(arms[0])))
    per_draw = np.asarray(per_draw)
    tail = (1 - level) / 2
    interval = (float(np.quantile(per_draw, tail)), float(np.quantile(per_draw, 1 - tail)))
    return Effect(treatment, outcome, (low, high), float(per_draw.mean()), interval, level, per_draw)
