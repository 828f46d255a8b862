"""The distributions of the SCM language, each declared once.

A :class:`Family` holds everything the rest of :mod:`probrep.causal` knows about one distribution name that an
equation may call: its parameters in order, their constraints and defaults (the parser checks constant
parameters against them), how to draw it with numpy (the ``"numpy"`` backend), how to build it with Pyro (torch)
or NumPyro (the programs), whether it is discrete, and, where one exists, how to write it through a standard noise
when its parameters depend on parents (``Normal(m, s) = m + s * U`` with ``U ~ Normal(0, 1)``), so that every
node stays a deterministic function of its parents and its noise.

Parameterisations are those of Pyro and NumPyro: ``Exponential(rate)``, ``Gamma(concentration, rate)``,
``Beta(concentration1, concentration0)``, ``HalfNormal(scale)``, ``StudentT(df, loc=0, scale=1)``,
``Categorical(probs)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

#: a parameter constraint: (test of the value, what the message says the value must be)
_CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "real": (lambda v: True, "be a real number"),
    "positive": (lambda v: v > 0, "be > 0"),
    "probability": (lambda v: 0.0 <= v <= 1.0, "be in [0, 1]"),
    "simplex": (lambda v: min(v) >= 0 and math.isclose(sum(v), 1.0, abs_tol=1e-6), "be >= 0 and sum to 1"),
}

#: ``noise(family_name, params) -> symbol``: makes a fresh noise term of the node being parsed
NewNoise = Callable[[str, tuple], sp.Symbol]


@dataclass(frozen=True)
class Param:
    """One parameter: its name, constraint (a key of ``_CONSTRAINTS``), and whether it is a vector (a list)."""

    name: str
    constraint: str = "real"
    vector: bool = False


@dataclass(frozen=True)
class Family:
    """One distribution of the language; see the module docstring for what each part is used for.

    ``draw(rng, params, shape)`` samples with numpy. ``standardise(params, noise)`` returns the distribution as an
    expression of its (possibly parent-dependent) parameter expressions and one new standard noise term, or is
    None where no such form exists (the parameters must then be constants). ``constant`` names the parameters that
    must be constants even then (StudentT's df). ``defaults`` are the values of trailing parameters that may be
    left out together (``StudentT(df)`` is ``StudentT(df, 0, 1)``).
    """

    name: str
    params: tuple[Param, ...]
    draw: Callable[[np.random.Generator, tuple, tuple[int, ...]], np.ndarray]
    standardise: Callable[[Sequence[sp.Expr], NewNoise], sp.Expr] | None = None
    constant: tuple[str, ...] = ()
    defaults: tuple[float, ...] = ()
    ordered: bool = False  # the two parameters must satisfy first < second (Uniform's low < high)
    discrete: bool = False

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def violation(self, values: Sequence[Any]) -> str | None:
        """What is wrong with constant parameter ``values`` (a message naming the parameter), or None."""
        for param, value in zip(self.params, values):
            ok, must = _CONSTRAINTS[param.constraint]
            if not ok(value):
                shown = list(value) if param.vector else value
                return f"{param.name} must {must}, got {shown!r}"
        if self.ordered and not values[0] < values[1]:
            first, second = self.param_names
            return f"{first} must be < {second}, got {values[0]!r} and {values[1]!r}"
        return None

    def describe(self, values: Sequence[Any]) -> str:
        """The call as an equation writes it, e.g. ``Normal(0, 0.5)`` or ``Categorical([0.2, 0.8])``."""
        shown = [str(list(v)) if p.vector else _fmt(v) for p, v in zip(self.params, values)]
        return f"{self.name}({', '.join(shown)})"

    def pyro(self, values: Sequence[Any], device: Any = None):
        """The Pyro distribution with these parameters, as tensors of the default dtype on ``device``."""
        import pyro.distributions as dist
        import torch

        dtype = torch.get_default_dtype()
        args = [
            torch.tensor(v if p.vector else float(v), dtype=dtype, device=device) for p, v in zip(self.params, values)
        ]
        return getattr(dist, self.name)(*args)

    def numpyro(self, values: Sequence[Any]):
        """The NumPyro distribution with these parameters (vectors as float arrays)."""
        import numpyro.distributions as dist

        args = [np.asarray(v, dtype=float) if p.vector else v for p, v in zip(self.params, values)]
        return getattr(dist, self.name)(*args)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _loc_scale(name: str) -> Callable[[Sequence[sp.Expr], NewNoise], sp.Expr]:
    """``loc + scale * U`` with ``U`` the family's standard member ``name(0, 1)``."""
    return lambda p, noise: p[0] + p[1] * noise(name, (0.0, 1.0))


def _bernoulli(p: Sequence[sp.Expr], noise: NewNoise) -> sp.Expr:
    u = noise("Uniform", (0.0, 1.0))
    return sp.Piecewise((sp.Integer(1), sp.Lt(u, p[0])), (sp.Integer(0), True))


_LOC_SCALE = (Param("loc"), Param("scale", "positive"))

#: every distribution an equation may call, by the name users write
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("Normal", _LOC_SCALE, lambda rng, p, shape: rng.normal(p[0], p[1], shape), _loc_scale("Normal")),
        Family(
            "Uniform",
            (Param("low"), Param("high")),
            lambda rng, p, shape: rng.uniform(p[0], p[1], shape),
            lambda p, noise: p[0] + (p[1] - p[0]) * noise("Uniform", (0.0, 1.0)),
            ordered=True,
        ),
        Family("Laplace", _LOC_SCALE, lambda rng, p, shape: rng.laplace(p[0], p[1], shape), _loc_scale("Laplace")),
        Family(
            "HalfNormal",
            (Param("scale", "positive"),),
            lambda rng, p, shape: np.abs(rng.normal(0.0, p[0], shape)),
            lambda p, noise: p[0] * noise("HalfNormal", (1.0,)),
        ),
        Family(
            "Exponential",
            (Param("rate", "positive"),),
            lambda rng, p, shape: rng.exponential(1.0 / p[0], shape),
            lambda p, noise: noise("Exponential", (1.0,)) / p[0],
        ),
        Family(
            "Gamma",
            (Param("concentration", "positive"), Param("rate", "positive")),
            lambda rng, p, shape: rng.gamma(p[0], 1.0 / p[1], shape),
        ),
        Family(
            "Beta",
            (Param("concentration1", "positive"), Param("concentration0", "positive")),
            lambda rng, p, shape: rng.beta(p[0], p[1], shape),
        ),
        Family(
            "StudentT",
            (Param("df", "positive"), *_LOC_SCALE),
            lambda rng, p, shape: p[1] + p[2] * rng.standard_t(p[0], shape),
            lambda p, noise: p[1] + p[2] * noise("StudentT", (float(p[0]), 0.0, 1.0)),
            constant=("df",),
            defaults=(0.0, 1.0),
        ),
        Family(
            "Cauchy", _LOC_SCALE, lambda rng, p, shape: p[0] + p[1] * rng.standard_cauchy(shape), _loc_scale("Cauchy")
        ),
        Family(
            "Bernoulli",
            (Param("probs", "probability"),),
            lambda rng, p, shape: (rng.random(shape) < p[0]).astype(float),
            _bernoulli,
            discrete=True,
        ),
        Family(
            "Categorical",
            (Param("probs", "simplex", vector=True),),
            lambda rng, p, shape: rng.choice(len(p[0]), size=shape, p=np.asarray(p[0])).astype(float),
            discrete=True,
        ),
    )
}


@dataclass(frozen=True)
class Noise:
    """One exogenous noise term: its symbol name, distribution name (a key of :data:`FAMILIES`) and constant
    parameters (a tuple of floats, or of one tuple for Categorical's probabilities)."""

    name: str
    dist: str
    params: tuple[float, ...] | tuple[tuple[float, ...]]

    @property
    def family(self) -> Family:
        return FAMILIES[self.dist]

    def describe(self) -> str:
        return self.family.describe(self.params)

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw with numpy (the parameterisation of Pyro and NumPyro)."""
        return self.family.draw(rng, self.params, shape)

    def distribution(self, backend: str, device: Any = None):
        """The distribution from NumPyro (``backend="numpyro"``) or Pyro (``"pyro"``, tensors on ``device``)."""
        if backend == "numpyro":
            return self.family.numpyro(self.params)
        if backend == "pyro":
            return self.family.pyro(self.params, device)
        raise ValueError(f"unknown backend {backend!r} for noise {self.name!r}: expected 'numpyro' or 'pyro'")
