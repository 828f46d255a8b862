"""Learned mechanisms as named functions of the equation language: small multilayer perceptrons held as plain arrays.

A :class:`Network` maps its inputs ``x`` through ``h = act(W h + b)`` (``tanh`` or ``relu``) to a last layer ``z``
and an output: ``"identity"`` (``z``, e.g. an additive mechanism's mean), ``"softplus"`` (a positive scale) or
``"classes"`` (the cumulative softmax of ``z`` over the category ``values``). An SCM's equations call it by name:

    mlp_Y(X, Z) + Normal(0, 0.3)                  additive noise, X = f(parents) + U
    Normal(loc_Y(X), 1.7*scale_Y(X))              an affine flow, Y = loc(X) + scale(X) * U: invertible in U
    classes_D(X, Uniform(0, 1))                   a classifier with inverse-CDF noise: the category k whose
                                                  interval [F_(k-1)(X), F_k(X)) holds U

A ``"classes"`` call is written out as ``Piecewise((v_0, U < F_0(X)), (v_1, U < F_1(X)), ..., (v_K-1, True))``, the
form a ``Bernoulli`` takes, so observing the node confines U to an interval (:mod:`probrep.causal.inversion`).
Each output is a sympy function that carries its network, so the compiler computes it with numpy, JAX or torch
(:meth:`Network.compile`) and inversion, conditioning and abduction treat it like any function of the parents.

An SCM's JSON lists its networks under ``"functions"``: weights as lists of numbers, checked (names, shapes,
finiteness, size) before use. Nothing in it is code and nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from probrep.causal.functions import named_functions
from probrep.causal.parse import EquationError, check_node_name

ACTIVATIONS = ("tanh", "relu")
OUTPUTS = ("identity", "softplus", "classes")
#: the most weights and biases a network read from a file may have (a bound on hostile input)
MAX_PARAMETERS = 1_000_000
_KEYS = {"name", "activation", "output", "layers"}


def _numbers(value: Any, what: str, ndim: int) -> np.ndarray:
    """A list (``ndim`` 1) or list of equal-length lists (``ndim`` 2) of finite numbers as a float64 array."""
    rows = value if ndim == 2 else [value]
    if not isinstance(value, list) or not all(isinstance(r, list) for r in rows):
        raise ValueError(f"{what} must be a {'list of lists' if ndim == 2 else 'list'} of numbers")
    if sum(len(r) for r in rows) > MAX_PARAMETERS:
        raise ValueError(f"{what} has more than {MAX_PARAMETERS} numbers")
    for row in rows:
        if not all(type(v) in (int, float) for v in row):  # no bool, no str: np.asarray would read "1.5" as 1.5
            bad = next(v for v in row if type(v) not in (int, float))
            raise ValueError(f"{what} holds {type(bad).__name__} {repr(bad)[:40]}, not a number")
    if ndim == 2 and len({len(r) for r in rows}) > 1:
        raise ValueError(f"{what} has rows of different lengths")
    try:
        array = np.array(value, dtype=float)
    except OverflowError:
        raise ValueError(f"{what} holds an integer beyond the floating-point range") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} holds a non-finite number")
    return array.reshape(len(value), -1) if ndim == 2 else array


class Network:
    """A named multilayer perceptron; see the module docstring. ``layers``: ``[(weight [out, in], bias [out])]``."""

    def __init__(self, name: str, layers: Sequence[tuple[Any, Any]], activation: str = "tanh",
                 output: str = "identity", values: Sequence[float] = ()):  # fmt: skip
        try:
            self.name = check_node_name(name)
        except EquationError as exc:
            raise ValueError(str(exc).replace("node name", "function name")) from None
        if activation not in ACTIVATIONS:
            raise ValueError(f"network {name!r}: activation {activation!r} is not one of {ACTIVATIONS}")
        if output not in OUTPUTS:
            raise ValueError(f"network {name!r}: output {output!r} is not one of {OUTPUTS}")
        if not layers:
            raise ValueError(f"network {name!r} has no layers")
        self.layers = [(np.array(w, dtype=float), np.array(b, dtype=float)) for w, b in layers]
        width = self.layers[0][0].shape[-1] if self.layers[0][0].ndim == 2 else None
        for i, (w, b) in enumerate(self.layers):
            if w.ndim != 2 or b.shape != (w.shape[0],) or w.shape[1] != width or not w.shape[0]:
                raise ValueError(f"network {name!r}, layer {i}: weight {w.shape} and bias {b.shape} do not chain "
                                 f"(expected weight [out, {width}] and bias [out], out >= 1)")  # fmt: skip
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ValueError(f"network {name!r}, layer {i}: weights must be finite")
            width = w.shape[0]
        if sum(w.size + b.size for w, b in self.layers) > MAX_PARAMETERS:
            raise ValueError(f"network {name!r} has more than {MAX_PARAMETERS} parameters")
        self.activation, self.output = activation, output
        self.values = tuple(float(v) for v in values)
        if output == "classes":
            if width < 2 or len(self.values) != width or len(set(self.values)) != width:
                raise ValueError(f"network {name!r}: 'classes' needs one distinct value per output ({width}), got "
                                 f"{list(self.values)}")  # fmt: skip
            if not all(math.isfinite(v) for v in self.values):
                raise ValueError(f"network {name!r}: class values must be finite")
        elif width != 1 or self.values:
            raise ValueError(f"network {name!r}: an {output!r} output has one unit and no class values")
        self.digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
        self._weights: dict[Any, list] = {}  # per array library (and torch device and dtype)
        self._functions: dict[int, Any] = {}

    @property
    def inputs(self) -> int:
        return self.layers[0][0].shape[1]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Network) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        sizes = [self.inputs] + [w.shape[0] for w, _ in self.layers]
        return f"Network({self.name!r}, sizes={sizes}, {self.activation}, output={self.output!r})"

    # ------------------------------------------------------------------------------------------ computing
    def forward(self, x: Any, arrays: str = "numpy") -> Any:
        """The outputs for inputs ``x`` [..., inputs] on "numpy", "jax" or "torch" arrays: [..., 1] for a mean or
        scale, the cumulative class probabilities [..., K] for ``"classes"``."""
        lib, ops = _library(arrays)
        h = x
        weights = self._arrays(arrays, x)
        for w, b in weights[:-1]:
            h = ops["act"][self.activation](h @ w.T + b)
        w, b = weights[-1]
        z = h @ w.T + b
        if self.output == "softplus":
            return ops["softplus"](z)
        if self.output == "classes":
            return lib.cumsum(ops["softmax"](z), -1)
        return z

    def _arrays(self, arrays: str, like: Any) -> list:
        if arrays == "numpy":
            return self.layers
        if arrays == "torch":
            key = ("torch", like.device, like.dtype)
            if key not in self._weights:
                import torch

                as_tensor = lambda a: torch.as_tensor(a, dtype=like.dtype, device=like.device)  # noqa: E731
                self._weights[key] = [(as_tensor(w), as_tensor(b)) for w, b in self.layers]
            return self._weights[key]
        import jax.numpy as jnp

        key = ("jax", np.dtype(jnp.result_type(float)))  # numpy arrays: under jit they are constants, not tracers
        if key not in self._weights:
            self._weights[key] = [(w.astype(key[1]), b.astype(key[1])) for w, b in self.layers]
        return self._weights[key]

    def compile(self, arrays: str, column: int, args: Sequence[Callable]) -> Callable[[Mapping[str, Any]], Any]:
        """``f(columns)``: output ``column`` of the network at the compiled arguments ``args`` (broadcast together)."""
        lib, ops = _library(arrays)

        def value(env):
            x = ops["stack"]([a(env) for a in args])
            return self.forward(x, arrays)[..., column]

        return value

    # ------------------------------------------------------------------------------------ in the equations
    def function(self, column: int = 0):
        """The sympy function of output ``column`` (it carries the network: equal networks give equal functions)."""
        if column not in self._functions:
            name = f"{self.name}_cdf{column}" if self.output == "classes" else self.name
            positive = {"positive": True} if self.output == "softplus" else {}
            self._functions[column] = sp.Function(name, network=self, column=column, **positive)
        return self._functions[column]

    def apply(self, args: list, noises: Sequence[Any], fail: Callable[[str], Exception]) -> sp.Expr:
        """What a call in an equation means (the parser calls this with the arguments it has translated)."""
        if self.output != "classes":
            if len(args) != self.inputs:
                raise fail(f"{self.name} takes {self.inputs} argument(s), got {len(args)}")
            if not self.inputs:  # a constant: folded here, as the parser folds every constant
                return sp.Float(float(self.forward(np.zeros(0))[0]))
            return self.function(0)(*args)
        if len(args) != self.inputs + 1:
            raise fail(f"{self.name} takes {self.inputs} parent value(s) and a Uniform(0, 1) noise, got "
                       f"{len(args)} argument(s)")  # fmt: skip
        u, parents = args[-1], args[:-1]
        noise = next((n for n in noises if isinstance(u, sp.Symbol) and n.name == u.name), None)
        if noise is None or noise.dist != "Uniform" or tuple(noise.params) != (0.0, 1.0):
            raise fail(f"the last argument of {self.name} must be its noise, Uniform(0, 1)")
        if parents:
            thresholds = [self.function(k)(*parents) for k in range(len(self.values) - 1)]
        else:
            thresholds = [sp.Float(float(t)) for t in self.forward(np.zeros(0))[:-1]]
        values = [sp.Integer(int(v)) if v.is_integer() else sp.Float(v) for v in self.values]
        return sp.Piecewise(*[(v, sp.Lt(u, t)) for v, t in zip(values, thresholds)], (values[-1], True))

    # ---------------------------------------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "activation": self.activation, "output": self.output,
               "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in self.layers]}  # fmt: skip
        if self.output == "classes":
            out["values"] = list(self.values)
        return out

    @classmethod
    def from_dict(cls, entry: Any, where: str = "network") -> Network:
        """Read :meth:`to_dict`'s form, checking every field (a ValueError names ``where`` and the field)."""
        if not isinstance(entry, Mapping) or not _KEYS <= set(entry) <= _KEYS | {"values"}:
            raise ValueError(f"{where} must be {{'name', 'activation', 'output', 'layers'[, 'values']}}, got "
                             f"{repr(entry)[:200]}")  # fmt: skip
        if not all(isinstance(entry[k], str) for k in ("name", "activation", "output")):
            raise ValueError(f"{where}: 'name', 'activation' and 'output' must be text")
        layers = entry["layers"]
        if not isinstance(layers, list) or not layers or len(layers) > 100:
            raise ValueError(f"{where} ({entry['name']!r}): 'layers' must be a list of 1 to 100 layers")
        parsed = []
        for i, layer in enumerate(layers):
            what = f"{where} ({entry['name']!r}), layer {i}"
            if not isinstance(layer, Mapping) or set(layer) != {"weight", "bias"}:
                raise ValueError(f"{what}: must be {{'weight': ..., 'bias': ...}}")
            parsed.append((_numbers(layer["weight"], f"{what} weight", 2), _numbers(layer["bias"], f"{what} bias", 1)))
        values = _numbers(entry.get("values", []), f"{where} ({entry['name']!r}) values", 1)
        try:
            return cls(entry["name"], parsed, entry["activation"], entry["output"], values.tolist())
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None


def networks_of(scm) -> list[Network]:
    """The networks that ``scm``'s equations call, by name (two different networks of one name are refused)."""
    found: dict[str, Network] = {}
    for name in scm.nodes:
        node = scm.node(name)
        for call in node.expr.atoms(sp.core.function.AppliedUndef) if node.symbolic else ():
            network = getattr(call.func, "network", None)
            if network is None:
                continue
            if found.setdefault(network.name, network) != network:
                raise ValueError(f"two different networks are named {network.name!r}")
    return [found[k] for k in sorted(found)]


def networks_from(data: Mapping[str, Any]) -> list[Network]:
    """The networks an SCM description lists under ``"functions"`` (none if absent), checked: a name may be
    neither a node's nor another network's."""
    entries = data.get("functions", [])
    if not isinstance(entries, list):
        raise ValueError("'functions' must be a list of networks")
    nodes = {e.get("name") for e in data.get("nodes", []) if isinstance(e, Mapping) and isinstance(e.get("name"), str)}
    out: dict[str, Network] = {}
    for i, entry in enumerate(entries):
        network = Network.from_dict(entry, f"functions[{i}]")
        if network.name in nodes or network.name in out:
            what = "a node" if network.name in nodes else "another function"
            raise ValueError(f"functions[{i}]: the name {network.name!r} is also {what}'s")
        out[network.name] = network
    return list(out.values())


def _library(arrays: str) -> tuple[Any, dict[str, Any]]:
    """The array module of ``arrays`` and the few operations a network needs, with inputs stacked on the last axis
    (broadcast together; numbers and 0-d arrays included)."""
    if arrays == "numpy":
        from scipy.special import softmax

        def stack(values):
            values = np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in values]) if values else []
            return np.stack(values, -1) if values else np.zeros(0)

        return np, {"act": {"tanh": np.tanh, "relu": lambda h: np.maximum(h, 0.0)}, "stack": stack,
                    "softplus": lambda z: np.logaddexp(0.0, z), "softmax": lambda z: softmax(z, -1)}  # fmt: skip
    if arrays == "jax":
        import jax
        import jax.numpy as jnp

        def stack(values):
            dtype = jnp.result_type(float)
            values = jnp.broadcast_arrays(*[jnp.asarray(v, dtype=dtype) for v in values]) if values else []
            return jnp.stack(values, -1) if values else jnp.zeros(0, dtype)

        return jnp, {"act": {"tanh": jnp.tanh, "relu": jax.nn.relu}, "stack": stack, "softplus": jax.nn.softplus,
                     "softmax": lambda z: jax.nn.softmax(z, -1)}  # fmt: skip
    if arrays == "torch":
        import torch
        import torch.nn.functional as F

        def stack(values):
            like = next((v for v in values if torch.is_tensor(v) and v.is_floating_point()), None)
            like = like if like is not None else next((v for v in values if torch.is_tensor(v)), None)
            dtype = like.dtype if like is not None and like.is_floating_point() else torch.get_default_dtype()
            device = like.device if like is not None else None
            values = torch.broadcast_tensors(*[torch.as_tensor(v, dtype=dtype, device=device) for v in values])
            return torch.stack(values, -1) if values else torch.zeros(0, dtype=dtype, device=device)

        return torch, {"act": {"tanh": torch.tanh, "relu": torch.relu}, "stack": stack, "softplus": F.softplus,
                       "softmax": lambda z: torch.softmax(z, -1)}  # fmt: skip
    raise ValueError(f"unknown array library {arrays!r}: expected 'numpy', 'jax' or 'torch'")


def functions_entry(scm) -> dict[str, Any]:
    """``{"functions": [network dicts]}`` for an SCM description, or ``{}`` where its equations call none."""
    networks = networks_of(scm)
    return {"functions": [n.to_dict() for n in networks]} if networks else {}


def reading_functions(data: Mapping[str, Any]):
    """The context in which an SCM description's equations are parsed: its ``"functions"``, checked, callable."""
    return named_functions(networks_from(data))
