"""An SCM as a NumPyro or Pyro program: one sample site per noise term and per node, inside a ``rows`` plate.

Unconditioned, every node is a ``Delta`` sample site at its mechanism's value, so NumPyro's ``handlers.do`` and
Pyro's ``poutine.do`` intervene on it like on any site. Conditioned on observed nodes, each observed node adds
the log probability of its value given its parents as a factor, through the constraint of
:mod:`probrep.causal.evidence`: the change of variables through the noise term its mechanism (or, for a
deterministic node, its ancestors' mechanisms) is solved for, or the width of the interval a discrete outcome
confines its uniform noise to (the noise is then placed in the interval by a ``<noise>_within`` site). The
solved noise is recorded as a deterministic site.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from probrep import _checks
from probrep.causal.compile import compile_expr
from probrep.causal.evidence import EvidenceError, plan
from probrep.causal.inversion import Region


def load_numpyro() -> None:
    """Import JAX and NumPyro with numpy's global random state kept as it was.

    JAX's import draws from numpy's global generator (its Kubernetes cluster detection calls ``np.random.rand``
    at import, in jax 0.10), so the first SCM call that needs JAX would move the caller's numpy stream.
    """
    state = np.random.get_state()
    try:
        import jax  # noqa: F401
        import numpyro  # noqa: F401
    finally:
        np.random.set_state(state)


def _primitives(backend: str, device: Any = None) -> SimpleNamespace:
    if backend == "numpyro":
        load_numpyro()
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist

        return SimpleNamespace(
            sample=numpyro.sample, deterministic=numpyro.deterministic, factor=numpyro.factor, plate=numpyro.plate,
            Delta=dist.Delta, ops="jax", asarray=lambda v: jnp.asarray(v, dtype=jnp.result_type(float)),
            broadcast=lambda v, n: jnp.broadcast_to(jnp.asarray(v, dtype=jnp.result_type(float)), (n,)),
            where=jnp.where, log=jnp.log, inf=jnp.inf, device=None,
        )  # fmt: skip
    if backend == "pyro":
        import pyro
        import pyro.distributions as dist
        import torch

        from probrep.device import resolve_device

        dev = resolve_device(device)
        dtype = torch.get_default_dtype()

        def broadcast(v, n):
            t = torch.as_tensor(v, dtype=dtype, device=dev) if not torch.is_tensor(v) else v.to(dtype)
            return t.expand(n) if t.dim() == 0 else t

        return SimpleNamespace(
            sample=pyro.sample, deterministic=pyro.deterministic, factor=pyro.factor, plate=pyro.plate,
            Delta=dist.Delta, ops="torch", asarray=lambda v: torch.as_tensor(v, dtype=dtype, device=dev),
            broadcast=broadcast, where=torch.where, log=torch.log, inf=float("inf"), device=dev,
        )  # fmt: skip
    raise ValueError(f"unknown program backend {backend!r}: expected 'numpyro' or 'pyro'")


def make_program(
    scm, backend: str, observed: Mapping[str, Any] | None = None, device: Any = None, per_row: bool = True
) -> Callable:
    """``model(n)`` (unconditioned; ``n`` rows) or ``model()`` (conditioned on ``observed`` arrays [m]).

    ``per_row=False`` (for fitting parameters) records no per-row deterministic site and integrates out each
    discrete outcome's position in its interval where nothing else reads that noise: the factor ``log P(x |
    parents)`` is then the exact marginal likelihood, and NUTS has one latent fewer per row and node.
    """
    prim = _primitives(backend, device)
    fns = scm.compiled(prim.ops)
    dists = {name: u.distribution(backend, prim.device) for name, u in scm.noises.items()}
    parameters = {name: (node, compile_expr(node.expr, prim.ops)) for name, node in scm._parameters.items()}
    for node, _ in parameters.values():
        dists.update({u.name: u.distribution(backend, prim.device) for u in node.noises})
    data, rows = {}, None
    if observed:
        for name, values in observed.items():
            array = np.asarray(values, dtype=float)
            if array.ndim == 0:
                array = array[None]
            if array.ndim != 1 or not np.all(np.isfinite(array)):
                raise ValueError(
                    f"observed values of node {name!r} must be a finite 1-D array, got shape {array.shape}"
                )
            if rows is not None and len(array) != rows:
                raise ValueError(f"observed arrays differ in length: node {name!r} has {len(array)}, expected {rows}")
            rows = len(array)
            data[name] = prim.asarray(array)
    constraints = plan(scm, list(data)) if observed else {}
    implied = [n for n in data if n not in constraints]
    if implied:
        raise EvidenceError(
            f"evidence on deterministic node(s) {implied} is already determined by the other evidence: drop it "
            "(a counterfactual checks such evidence for consistency instead)"
        )
    by_owner: dict[str, list] = {}
    for c in constraints.values():
        if isinstance(c.how, Region):
            log_width = None if c.how.log_width is None else compile_expr(c.how.log_width, prim.ops)
            solve = (compile_expr(c.how.lower, prim.ops), compile_expr(c.how.upper, prim.ops), log_width)
        else:
            solve = (compile_expr(c.how.solution, prim.ops), compile_expr(c.how.log_abs_jacobian, prim.ops), None)
        by_owner.setdefault(c.owner, []).append((c, solve))
    fixed = {c.noise for c in constraints.values()}
    confined = {c.noise for c in constraints.values() if isinstance(c.how, Region)}
    integrated = set() if per_row else confined - _read_elsewhere(scm, constraints)

    def record(name: str, value: Any) -> Any:
        return prim.deterministic(name, value) if per_row else value

    def model(n: int | None = None):
        size = rows if observed else n
        if size is None:
            raise ValueError("the SCM program needs the number of rows: model(n)")
        size = _checks.integer(size, "n")
        env: dict[str, Any] = dict(data)
        for name, (node, value) in parameters.items():  # one value for every row: outside the plate
            for u in node.noises:
                env[u.name] = prim.sample(u.name, dists[u.name])
            env[name] = prim.deterministic(name, value(env))
        with prim.plate("rows", int(size)):
            if observed:  # every free noise term first: a constraint may solve for an ancestor's noise from later ones
                for u in scm.noises:
                    if u not in fixed:
                        env[u] = prim.sample(u, dists[u])
                    elif u in confined and u not in integrated:
                        env[f"{u}_within"] = prim.sample(f"{u}_within", dists[u])  # position in the interval
            for name, node in scm._nodes.items():
                for u in node.noises:
                    if not observed:
                        env[u.name] = prim.sample(u.name, dists[u.name])
                for c, (first, second, log_width) in by_owner.get(name, ()):
                    d = dists[c.noise]
                    if isinstance(c.how, Region):
                        low, high = prim.broadcast(first(env), size), prim.broadcast(second(env), size)
                        width = high - low
                        if log_width is not None:  # the outcome's log probability, finite in float32
                            seen, (a, b) = env[c.node], c.how.outcomes
                            log_p = prim.where((seen == a) | (seen == b), log_width(env), -prim.inf)
                            log_p = prim.broadcast(log_p, size)
                        else:  # log taken only where the probability is positive
                            positive = width > 0
                            log_p = prim.where(positive, prim.log(prim.where(positive, width, 1.0)), -prim.inf)
                        prim.factor(f"{c.node}_given_parents", log_p)
                        if c.noise in integrated:
                            continue
                        u = low + width * env[f"{c.noise}_within"]
                    else:
                        u = prim.broadcast(first(env), size)
                        log_p = prim.where(d.support.check(u), d.log_prob(u), -prim.inf) + second(env)
                        prim.factor(f"{c.node}_given_parents", log_p)
                    env[c.noise] = record(c.noise, u)
                if name in data:
                    record(name, env[name])
                    continue
                value = prim.broadcast(fns[name](env), int(size))
                if observed:
                    env[name] = record(name, value)
                else:
                    env[name] = prim.sample(name, prim.Delta(value))
        return {name: env[name] for name in scm.nodes}

    return model


def _read_elsewhere(scm, constraints: Mapping[str, Any]) -> set[str]:
    """Noise terms that something besides their own node's outcome reads: another node's mechanism or the
    solution of a constraint (a deterministic node's evidence solved through its ancestors' noise)."""
    import sympy as sp

    read = set()
    for name in scm.nodes:
        own = {u.name for u in scm.node(name).noises}
        read |= {str(s) for s in scm.node(name).expr.free_symbols if isinstance(s, sp.Symbol)} - own - set(scm.nodes)
    for c in constraints.values():
        exprs = [c.how.lower, c.how.upper] if isinstance(c.how, Region) else [c.how.solution, c.how.log_abs_jacobian]
        read |= {str(s) for e in exprs for s in e.free_symbols} - {c.noise}
    return read


def numpyro_sampler(scm, n: int) -> Callable[[int], dict]:
    """A jit-compiled ``sample(seed) -> {node: array [n]}`` for the NumPyro program, cached per ``n``."""
    key = ("numpyro_sampler", n)
    if key not in scm._cache:
        load_numpyro()
        import jax
        from numpyro import handlers

        program = make_program(scm, "numpyro")

        @jax.jit
        def run(rng_key):
            trace = handlers.trace(handlers.seed(program, rng_key)).get_trace(n)
            return {name: trace[name]["value"] for name in scm.nodes}

        def sample(seed: int) -> dict:
            out = run(jax.random.PRNGKey(seed))
            return {name: out[name] for name in scm.nodes}  # jit returns keys sorted; keep topological order

        scm._cache[key] = sample
    return scm._cache[key]


def pyro_sample(scm, n: int, seed: int, device: Any = None) -> dict:
    """Run the Pyro program once with ``seed``: ``{node: tensor [n]}`` on ``device``.

    Pyro draws from torch's global generator, so the draw runs inside ``torch.random.fork_rng``: the generator
    of the device used is seeded there and the caller's state (CPU and that CUDA device) is restored afterwards.
    Python's and numpy's generators are never touched (``pyro.set_rng_seed`` would reseed all three).
    """
    import torch
    from pyro import poutine

    from probrep.device import resolve_device
    from probrep.training.rng import forked

    dev = resolve_device(device)
    program = make_program(scm, "pyro", device=dev)
    with forked(seed, dev), torch.no_grad():
        trace = poutine.trace(program).get_trace(n)
    return {name: trace.nodes[name]["value"] for name in scm.nodes}
