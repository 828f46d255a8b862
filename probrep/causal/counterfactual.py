"""Abduction: the noise values consistent with evidence, exactly where possible, else by NUTS."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from probrep.causal.evidence import plan
from probrep.causal.inversion import Inversion

logger = logging.getLogger(__name__)


def _check_evidence(scm, evidence: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(evidence, Mapping) or not evidence:
        raise ValueError("evidence must be a non-empty mapping {node: observed value}")
    scm._check_names(list(evidence), "evidence node")
    out = {}
    for name, value in evidence.items():
        array = np.asarray(value, dtype=float)
        if array.size != 1 or not np.isfinite(array).all():
            raise ValueError(f"evidence for node {name!r} must be one finite number, got {value!r}")
        out[name] = float(array.reshape(()))
    return out


def free_noise(scm, evidence: Mapping[str, float]) -> list[str]:
    """Noise terms that the evidence does not pin down (those NUTS must sample): all but the ones an observed
    mechanism is solved for (a discrete outcome only confines its noise to an interval: that noise stays free)."""
    solved = {c.noise for c in plan(scm, list(evidence)).values() if isinstance(c.how, Inversion)}
    return [u for u in scm.noises if u not in solved]


def abduct(
    scm, evidence: Mapping[str, float], n: int, seed: int = 0, num_warmup: int = 1000, progress: bool = False
) -> dict[str, np.ndarray]:
    """``n`` draws of every noise term given ``evidence``: ``{noise name: array [n]}``.

    Exact when every noise term is recovered by inverting an observed mechanism (all draws equal): a node's own
    noise from its value (``Y = f(X) + U`` for any ``f``), an ancestor's noise from a deterministic node's value
    (``Y = 2*X`` pins ``X``). Otherwise the remaining noise is sampled from its posterior with NumPyro's NUTS on
    ``scm.condition(evidence)`` (a Bernoulli outcome confines its uniform noise to the interval that gives it).
    """
    evidence = _check_evidence(scm, evidence)
    free = free_noise(scm, evidence)
    if not free:
        return _exact(scm, evidence, n)
    discrete = [u for u in free if scm.noises[u].family.discrete]
    if discrete:
        raise ValueError(
            f"cannot abduct discrete noise {discrete} by NUTS; observe the nodes they belong to, "
            "or make them continuous"
        )
    from probrep.causal.programs import load_numpyro

    load_numpyro()
    import jax
    from numpyro.infer import MCMC, NUTS

    logger.info("abduction by NUTS over %s", free)
    program = scm.condition({k: [v] for k, v in evidence.items()}, backend="numpyro")
    mcmc = MCMC(NUTS(program), num_warmup=num_warmup, num_samples=n, progress_bar=progress)
    mcmc.run(jax.random.PRNGKey(seed))
    samples = mcmc.get_samples()
    return {u: np.asarray(samples[u]).reshape(n) for u in scm.noises}


def _exact(scm, evidence: Mapping[str, float], n: int) -> dict[str, np.ndarray]:
    """Every noise term solved from the evidence, node by node in topological order (a deterministic node's
    evidence solves an ancestor's noise, from the evidence alone); evidence the others already determine is
    checked for consistency."""
    from probrep.causal.compile import compile_expr

    constraints = plan(scm, list(evidence))
    env: dict[str, float] = dict(evidence)
    fns = scm.compiled("numpy")
    noise = {}
    for name in scm.nodes:
        for c in constraints.values():
            if c.owner == name:
                env[c.noise] = noise[c.noise] = float(compile_expr(c.how.solution, "numpy")(env))
        if name not in evidence:
            env[name] = float(fns[name](env))
        elif name not in constraints:
            implied = float(fns[name](env))
            if not np.isclose(implied, evidence[name], rtol=1e-9, atol=1e-9):
                raise ValueError(
                    f"evidence {name}={evidence[name]} is impossible: its mechanism gives {implied} "
                    "from the other evidence"
                )
    return {u: np.full(n, noise[u]) for u in scm.noises}
