"""One node's mechanism fitted from data, per family; :mod:`probrep.causal.learn` picks among them.

Every family returns a :class:`Fit`: the node's equation (text of the SCM language, calling the fitted
:class:`~probrep.causal.networks.Network` objects by name), those networks, and the log-likelihood of each held-out
row under the mechanism fitted without it (a density for continuous families, a probability for classifiers).

- ``linear``: ``X = c + b . parents + U``, U ~ Normal(0, sigma), by least squares (sigma: the residuals' RMS).
- ``mlp``: ``X = f(parents) + U``, U ~ Normal(0, sigma), f an MLP trained on the mean squared error (the Gaussian
  likelihood for fixed sigma); sigma is the training residuals' RMS.
- ``flow``: ``X = loc(parents) + scale(parents) * U``, U ~ Normal(0, 1): an affine conditional flow, both networks
  trained together on the Gaussian likelihood; abduction ``U = (X - loc) / scale`` is exact.
- ``classifier`` (softmax of a linear function of the parents) and ``mlp_classifier`` (of an MLP): the categories
  in order ``v_0 < ... < v_K-1`` with inverse-CDF noise U ~ Uniform(0, 1); trained on the cross-entropy. A root
  node's class probabilities are the data's frequencies.

Networks are trained with Adam on minibatches of the training rows, with early stopping on the held-out rows (the
epoch of best held-out loss is kept), in float32 from a local ``torch.Generator`` seeded per node and family: the
same seed gives the same fit, and no global random state is read or moved. Inputs and a continuous target are
standardised for training; the standardisation is folded into the first and last layers, so the stored networks
take and give values on the data's own scale.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probrep.causal.networks import Network

_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Options:
    """Training options shared by the network families (hidden layer widths, Adam, minibatches, early stopping)."""

    hidden: tuple[int, ...] = (32, 32)
    activation: str = "tanh"
    lr: float = 1e-2
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 5
    lr_cuts: int = 2
    seed: int = 0


@dataclass
class Fit:
    """A fitted mechanism: its ``equation``, the ``networks`` it calls, the held-out rows' log-likelihood."""

    family: str
    equation: str
    heldout: np.ndarray
    networks: list[Network] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """What one node's fit needs: its name, values, parents (names and design matrix), the row split and the names
    its networks may take (``names(base)`` gives an unused one)."""

    node: str
    x: np.ndarray
    parents: list[str]
    design: np.ndarray
    train: np.ndarray
    held: np.ndarray
    names: Any


def _num(value: float) -> str:
    return repr(float(value))


def _gaussian(r: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    return -0.5 * (r / scale) ** 2 - np.log(scale) - 0.5 * _LOG_2PI


def fit_linear(task: Task, options: Options) -> Fit:
    """Least squares of the node on ``[1, parents]``: the equation from all rows, the score from the training rows."""
    x, n = task.x, len(task.x)
    design = np.column_stack([np.ones(n), task.design])
    if n <= design.shape[1]:
        raise ValueError(f"{n} rows cannot fit {design.shape[1]} coefficients")
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    residual = x - design @ coef
    sigma = float(np.sqrt(np.mean(residual**2)))
    if not sigma > 0:
        raise ValueError("the node is an exact linear function of its parents (zero residual): no noise to fit")
    tr, held = task.train, task.held
    c_train, *_ = np.linalg.lstsq(design[tr], x[tr], rcond=None)
    s_train = float(np.sqrt(np.mean((x[tr] - design[tr] @ c_train) ** 2)))
    heldout = _gaussian(x[held] - design[held] @ c_train, max(s_train, 1e-300))
    terms = [_num(coef[0])] + [f"{_num(c)}*{p}" for c, p in zip(coef[1:], task.parents)]
    r2 = 1.0 - float(np.var(residual) / np.var(x)) if np.var(x) > 0 else 0.0
    return Fit("linear", " + ".join(terms) + f" + Normal(0, {_num(sigma)})", heldout, stats={"sigma": sigma, "r2": r2})


def _standardiser(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, sd = values[rows].mean(0), values[rows].std(0)
    return mean, np.where(sd > 0, sd, 1.0)


def _fold(layers: list, x_mean: np.ndarray, x_sd: np.ndarray, y_mean: float = 0.0, y_sd: float = 1.0) -> list:
    """Layers trained on standardised inputs (and target) as layers on the data's scale."""
    layers = [(w.copy(), b.copy()) for w, b in layers]
    w, b = layers[0]
    w /= x_sd[None, :]
    layers[0] = (w, b - w @ x_mean)
    w, b = layers[-1]
    layers[-1] = (w * y_sd, b * y_sd + y_mean)
    return layers


def _train(task: Task, family: str, sizes: dict[str, list[int]], loss, inputs, target, options: Options):
    """Adam on minibatches of the training rows with early stopping on the held-out rows.

    ``loss(outputs, target_rows) -> per-row loss`` with ``outputs`` the networks' last layers by name. Returns the
    best epoch's layers (numpy) by name, its per-row held-out loss and the number of epochs run.
    """
    import torch

    seed = (zlib.crc32(f"{task.node}/{family}".encode()) + 7919 * options.seed) % 2**63
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(inputs, dtype=torch.float32)
    y = torch.as_tensor(target, dtype=torch.float32 if target.dtype.kind == "f" else torch.long)
    params = {}
    for name, widths in sizes.items():
        layers = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = 1.0 / math.sqrt(max(fan_in, 1))
            w = ((torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound).requires_grad_()
            b = ((torch.rand(fan_out, generator=gen) * 2 - 1) * bound).requires_grad_()
            layers.append((w, b))
        params[name] = layers
    act = torch.tanh if options.activation == "tanh" else torch.relu

    def outputs(rows):
        out = {}
        for name, layers in params.items():
            h = x[rows]
            for w, b in layers[:-1]:
                h = act(h @ w.T + b)
            w, b = layers[-1]
            out[name] = h @ w.T + b
        return out

    optimiser = torch.optim.Adam([p for layers in params.values() for wb in layers for p in wb], lr=options.lr)
    train, held = torch.as_tensor(task.train), torch.as_tensor(task.held)
    best, best_state, stale, epochs, cuts = math.inf, None, 0, 0, 0
    while epochs < options.max_epochs:
        epochs += 1
        order = train[torch.randperm(len(train), generator=gen)]
        for start in range(0, len(order), options.batch_size):
            rows = order[start : start + options.batch_size]
            optimiser.zero_grad()
            loss(outputs(rows), y[rows]).mean().backward()
            optimiser.step()
        with torch.no_grad():
            held_loss = float(loss(outputs(held), y[held]).mean())
        if best_state is None or held_loss < best - 1e-6 * abs(best):  # a NaN loss is never an improvement
            best, stale = held_loss, 0
            best_state = {k: [(w.detach().clone(), b.detach().clone()) for w, b in v] for k, v in params.items()}
        else:
            stale += 1
            if stale >= options.patience and cuts == options.lr_cuts:
                break
            if stale >= options.patience:  # a plateau: go on with a smaller step from the best epoch so far
                cuts, stale = cuts + 1, 0
                for group in optimiser.param_groups:
                    group["lr"] *= 0.2
    with torch.no_grad():
        for name, layers in params.items():
            for (w, b), (bw, bb) in zip(layers, best_state[name]):
                w.copy_(bw)
                b.copy_(bb)
        per_row = loss(outputs(held), y[held]).double().numpy()
    state = {k: [(w.double().numpy(), b.double().numpy()) for w, b in v] for k, v in best_state.items()}
    return state, per_row, epochs


def _widths(task: Task, options: Options, out: int = 1, hidden: tuple[int, ...] | None = None) -> list[int]:
    return [task.design.shape[1], *(options.hidden if hidden is None else hidden), out]


def fit_mlp(task: Task, options: Options) -> Fit:
    """``X = f(parents) + Normal(0, sigma)``, f an MLP fitted to the mean squared error."""
    x_mean, x_sd = _standardiser(task.design, task.train)
    y_mean, y_sd = _standardiser(task.x, task.train)
    z, t = (task.design - x_mean) / x_sd, (task.x - y_mean) / y_sd
    state, _, epochs = _train(task, "mlp", {"f": _widths(task, options)}, lambda o, y: (o["f"][:, 0] - y) ** 2, z, t,
                              options)  # fmt: skip
    name = task.names(f"mlp_{task.node}")
    network = Network(name, _fold(state["f"], x_mean, x_sd, float(y_mean), float(y_sd)), options.activation)
    fitted = network.forward(task.design)[:, 0]
    sigma = float(np.sqrt(np.mean((task.x[task.train] - fitted[task.train]) ** 2)))
    if not sigma > 0:
        raise ValueError("the MLP fits the training rows exactly (zero residual): no noise to fit")
    residual = task.x - fitted
    heldout = _gaussian(residual[task.held], sigma)
    r2 = 1.0 - float(np.var(residual[task.held]) / max(np.var(task.x[task.held]), 1e-300))
    equation = f"{name}({', '.join(task.parents)}) + Normal(0, {_num(sigma)})"
    return Fit("mlp", equation, heldout, [network], {"sigma": sigma, "r2": r2, "epochs": epochs})


def _softplus(z):
    import torch.nn.functional as F

    return F.softplus(z)


def fit_flow(task: Task, options: Options) -> Fit:
    """``X = loc(parents) + scale(parents) * U``, U ~ Normal(0, 1), by the Gaussian likelihood."""
    x_mean, x_sd = _standardiser(task.design, task.train)
    y_mean, y_sd = _standardiser(task.x, task.train)
    z, t = (task.design - x_mean) / x_sd, (task.x - y_mean) / y_sd

    def nll(o, y):
        scale = _softplus(o["scale"][:, 0]) + 1e-6
        return 0.5 * ((y - o["loc"][:, 0]) / scale) ** 2 + scale.log() + 0.5 * _LOG_2PI

    widths = _widths(task, options)
    state, per_row, epochs = _train(task, "flow", {"loc": widths, "scale": widths}, nll, z, t, options)
    loc_name, scale_name = task.names(f"loc_{task.node}"), task.names(f"scale_{task.node}")
    loc = Network(loc_name, _fold(state["loc"], x_mean, x_sd, float(y_mean), float(y_sd)), options.activation)
    scale = Network(scale_name, _fold(state["scale"], x_mean, x_sd), options.activation, "softplus")
    # the scale network gives the standardised scale: its unit, y_sd, stays in the equation
    heldout = -per_row - math.log(y_sd)
    ps = ", ".join(task.parents)
    equation = f"Normal({loc_name}({ps}), {_num(y_sd)}*{scale_name}({ps}))"
    return Fit("flow", equation, heldout, [loc, scale], {"epochs": epochs})


def fit_classifier(task: Task, options: Options, hidden: tuple[int, ...] = ()) -> Fit:
    """Softmax over the node's categories (a linear or MLP function of the parents), inverse-CDF noise."""
    values = np.unique(task.x)
    target = np.searchsorted(values, task.x)
    name = task.names(f"classes_{task.node}")
    family = "mlp_classifier" if hidden else "classifier"
    if not task.parents:  # the frequencies: from all rows for the mechanism, smoothed training counts for the score
        counts = np.bincount(target, minlength=len(values))
        train = np.bincount(target[task.train], minlength=len(values)) + 0.5
        heldout = np.log(train / train.sum())[target[task.held]]
        network = Network(name, [(np.zeros((len(values), 0)), np.log(counts / counts.sum()))], options.activation,
                          "classes", values.tolist())  # fmt: skip
        return Fit(family, f"{name}(Uniform(0, 1))", heldout, [network], {"classes": values.tolist()})
    import torch.nn.functional as F

    x_mean, x_sd = _standardiser(task.design, task.train)
    z = (task.design - x_mean) / x_sd
    widths = _widths(task, options, len(values), hidden)
    loss = lambda o, y: F.cross_entropy(o["logits"], y, reduction="none")  # noqa: E731
    state, per_row, epochs = _train(task, family, {"logits": widths}, loss, z, target, options)
    network = Network(name, _fold(state["logits"], x_mean, x_sd), options.activation, "classes", values.tolist())
    equation = f"{name}({', '.join(task.parents)}, Uniform(0, 1))"
    return Fit(family, equation, -per_row, [network], {"classes": values.tolist(), "epochs": epochs})


FAMILIES = {
    "linear": fit_linear,
    "mlp": fit_mlp,
    "flow": fit_flow,
    "classifier": fit_classifier,
    "mlp_classifier": lambda task, options: fit_classifier(task, options, options.hidden),
}
