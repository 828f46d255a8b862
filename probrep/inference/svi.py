"""Stochastic variational inference: fit any Pyro model/guide pair with the shared training loop.

    fit = svi.fit(vae, data, steps=2000, device="auto", checkpoint_dir="runs/vae", seed=0)

``target`` is a module (or any object) with ``model`` and ``guide`` methods, or a model callable with
``guide=`` (a function or a Pyro autoguide). The parameters fitted are those the programs register with Pyro
(``pyro.param``, ``pyro.module``, ``PyroModule``), found by tracing the first step, as Pyro's own ``SVI`` does.
Besides ``model`` and ``guide``, a target may declare the optional attributes that :class:`TargetExtras` reads
(and nothing else reads): its ``default_elbo``, a ``run_config`` checked on resume, and an auxiliary objective
(``auxiliary_loss(*batch)`` over ``auxiliary_parameters()``, FactorVAE's discriminator) trained by its own
optimiser after each ELBO step.

The loss is ``elbo.differentiable_loss`` minimised with a plain ``torch.optim`` optimiser: the same numbers as
``pyro.infer.SVI`` with less bookkeeping per step. Pyro's argument validation runs on the first (setup) step, and is
switched off in the loop, where it would only cost time; so tensor data is checked whole before any work
instead: no NaN/inf (the first bad row named), the model's float dtype, and the support of the target's
``likelihood`` if it names one.

The caller's state is left alone: training runs in a Pyro param store of its own (the caller's store is put back
afterwards, with the fitted parameters added) and on forked torch generators (see :mod:`probrep.training.rng`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.infer
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch import nn

from probrep import _checks
from probrep.training.loop import Callback, FitResult, train
from probrep.training.objective import Auxiliary
from probrep.training.options import TrainOptions

__all__ = ["fit", "objective", "make_elbo", "ELBOS", "FitResult", "SVIObjective", "TargetExtras", "TraceGraphELBO"]


class TraceGraphELBO(pyro.infer.TraceGraph_ELBO):
    """``TraceGraph_ELBO`` with the ``differentiable_loss`` the training loop calls (Pyro's offers only
    ``loss_and_grads``): the value of the negative ELBO with the gradient of Pyro's surrogate loss (score-function
    terms with downstream costs minus baselines, plus the baseline loss): ``surrogate + (-elbo - surrogate).detach()``.
    """

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        elbo, surrogate = self._loss_and_surrogate_loss(model, guide, args, kwargs)
        return surrogate + (-elbo - surrogate).detach()


ELBOS: dict[str, type[pyro.infer.ELBO]] = {
    "trace": pyro.infer.Trace_ELBO,
    "tracegraph": TraceGraphELBO,
    "meanfield": pyro.infer.TraceMeanField_ELBO,
    "jit_trace": pyro.infer.JitTrace_ELBO,
    "jit_meanfield": pyro.infer.JitTraceMeanField_ELBO,
}


@dataclass(frozen=True)
class TargetExtras:
    """The optional attributes of a fit target, read by :meth:`of` and nowhere else. A target may declare

    - ``default_elbo``: the ELBO name ``fit`` uses when ``elbo=None`` (default ``"trace"``);
    - ``run_config``: a dict (or a method returning one) of settings that the parameters' shapes do not reveal
      (AIR's guide input), stored in checkpoints so that resuming with other settings is refused;
    - ``auxiliary_loss(*batch)`` with ``auxiliary_parameters()``, and optionally ``auxiliary_lr`` (default: the
      main ``lr``) and ``auxiliary_optimizer_kwargs``: a second objective with its own optimiser.
    """

    default_elbo: str = "trace"
    run_config: Mapping[str, Any] = field(default_factory=dict)
    auxiliary: Auxiliary | None = None

    @classmethod
    def of(cls, target: Any) -> TargetExtras:
        name = type(target).__name__
        auxiliary = None
        if getattr(target, "auxiliary_loss", None) is not None:
            parameters = getattr(target, "auxiliary_parameters", None)
            if not callable(parameters):
                raise TypeError(f"{name} declares auxiliary_loss but no auxiliary_parameters() method")
            auxiliary = Auxiliary(
                target.auxiliary_loss,
                parameters(),
                getattr(target, "auxiliary_lr", None),
                getattr(target, "auxiliary_optimizer_kwargs", None) or {},
            )
        run_config = getattr(target, "run_config", None)
        run_config = run_config() if callable(run_config) else run_config or {}
        if not isinstance(run_config, Mapping):
            raise TypeError(f"{name}.run_config must be a dict, got {type(run_config).__name__}")
        return cls(str(getattr(target, "default_elbo", "trace")), dict(run_config), auxiliary)


def make_elbo(elbo: str | pyro.infer.ELBO | None, target: Any = None, num_particles: int = 1) -> pyro.infer.ELBO:
    """An ELBO by name (see ``ELBOS``), an ELBO instance as is, or ``None`` for the target's ``default_elbo``
    (``"trace"`` when it declares none)."""
    if isinstance(elbo, pyro.infer.ELBO):
        return elbo
    name = elbo if elbo is not None else TargetExtras.of(target).default_elbo
    _checks.one_of(name, "elbo", ELBOS)
    kwargs: dict[str, Any] = {"num_particles": _checks.integer(num_particles, "num_particles")}
    if name.startswith("jit_"):
        kwargs["ignore_jit_warnings"] = True
    return ELBOS[name](**kwargs)


def _programs(target: Any, guide: Callable | None) -> tuple[Callable, Callable]:
    if guide is not None:
        if not callable(target):
            raise TypeError(f"with guide= given, target must be the model callable, got {type(target).__name__}")
        if not callable(guide):
            raise TypeError(f"guide must be callable, got {type(guide).__name__}")
        return target, guide
    model, guide_fn = getattr(target, "model", None), getattr(target, "guide", None)
    if not (callable(model) and callable(guide_fn)):
        raise TypeError(
            f"target {type(target).__name__} has no callable model/guide pair: pass an object with model and "
            "guide methods, or fit(model_fn, data, guide=guide_fn)"
        )
    return model, guide_fn


@dataclass(frozen=True)
class SVIObjective:
    """A Pyro model/guide pair as a training :class:`~probrep.training.objective.Objective`: the loss is the
    negative ELBO (``elbo.differentiable_loss``), the parameters those the programs register with Pyro."""

    model: Callable
    guide: Callable
    elbo: pyro.infer.ELBO
    module: nn.Module | None = None
    auxiliary: Auxiliary | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    data_size: int | None = None  # N, to check that minibatches weight the likelihood as the full data would

    def setup(self, *batch: Any) -> dict[str, torch.Tensor]:
        # One validated pass creates every parameter (autoguides create theirs lazily) and records them.
        with pyro.validation_enabled(True), poutine.trace(param_only=True) as capture:
            self.elbo.differentiable_loss(self.model, self.guide, *batch)
        nodes = capture.trace.nodes.items()
        self._check_minibatch_scaling(batch)
        return {name: site["value"].unconstrained() for name, site in nodes if site["type"] == "param"}

    def _check_minibatch_scaling(self, batch: tuple) -> None:
        """Refuse minibatches that would silently give a wrong posterior: with latent sites outside the data plate
        (global latents), a likelihood over M of N examples counts the data M/N as much as the prior unless its
        sites are scaled (a plate declared with ``size=N`` and ``subsample`` scales them by N/M)."""
        first = next((b for b in batch if torch.is_tensor(b) and b.dim() > 0), None)
        if self.data_size is None or first is None or first.shape[0] >= self.data_size:
            return
        m, n = first.shape[0], self.data_size
        with torch.no_grad(), poutine.block():
            guide_trace = poutine.trace(self.guide).get_trace(*batch)
            model_trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(*batch)
        sites = [s for s in model_trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]

        def in_data_plate(site) -> bool:
            return any(frame.size in (m, n) for frame in site["cond_indep_stack"])

        global_latents = [s["name"] for s in sites if not s["is_observed"] and not in_data_plate(s)]
        # a subsampled plate (size=N) scales its sites by N/M; any scale the user set is taken as deliberate
        unscaled = [s["name"] for s in sites if s["is_observed"] and float(s["scale"]) == 1.0]
        if global_latents and unscaled:
            raise ValueError(
                f"svi.fit: the model has latent sites outside its data plate ({', '.join(global_latents)}) and would "
                f"see minibatches of {m} of {n} examples, so its likelihood ({', '.join(unscaled)}) would count "
                f"{m}/{n} of the data against the prior and the posterior would come out too wide. Pass "
                f"batch_size=None to fit the full batch, or declare the data plate with the data's size, "
                f"pyro.plate('data', size={n}, subsample=torch.arange(len(x))), so that Pyro scales it by N/M"
            )

    def loss(self, *batch: Any) -> torch.Tensor:
        with pyro.validation_enabled(False):
            return self.elbo.differentiable_loss(self.model, self.guide, *batch)

    def run_config(self) -> dict[str, Any]:
        return {"elbo": type(self.elbo).__name__, **self.config}


def objective(
    target: Any,
    *,
    guide: Callable | None = None,
    elbo: str | pyro.infer.ELBO | None = None,
    num_particles: int = 1,
    data_size: int | None = None,
) -> SVIObjective:
    """The :class:`SVIObjective` that :func:`fit` trains (``target``, ``guide`` and ``elbo`` as there). The module
    that is moved to the device and checkpointed is the target, or else an ``nn.Module`` guide (an autoguide).
    Training it with :func:`~probrep.training.loop.train` directly uses the caller's param store; ``fit`` gives it
    one of its own. ``data_size`` (N) turns on the check that minibatches do not under-weight the likelihood."""
    model, guide_fn = _programs(target, guide)
    extras = TargetExtras.of(target)
    loss = make_elbo(elbo if elbo is not None else extras.default_elbo, target, num_particles)
    module = target if isinstance(target, nn.Module) else guide_fn if isinstance(guide_fn, nn.Module) else None
    return SVIObjective(model, guide_fn, loss, module, extras.auxiliary, extras.run_config, data_size)


#: the settings of fit that are the loop's (the rest name the objective)
_OPTION_NAMES = tuple(f.name for f in fields(TrainOptions) if f.name != "description")


def _data_size(data: Any) -> int | None:
    """N of the data ``fit`` was given (a Dataset, a tensor or array, or a tuple of them), None if unknown."""
    first = data[0] if isinstance(data, tuple | list) and data else data
    if hasattr(first, "shape") and len(first.shape) > 0:
        return int(first.shape[0])
    try:
        return len(data) if data is not None else None
    except TypeError:
        return None


#: the support of each likelihood a target may name in its ``likelihood`` attribute (probrep's VAE family), the
#: constraint Pyro's validation applies to the first batch only: checked up front on all of the data
_LIKELIHOOD_SUPPORT = {"bernoulli": dist.Bernoulli.support, "gaussian": dist.Normal.support}


def _float_dtype(module: nn.Module | None) -> torch.dtype | None:
    """The floating dtype of the module's parameters (the dtype its layers accept), None without one."""
    params = [] if module is None else [p for p in module.parameters() if p.is_floating_point()]
    return params[0].dtype if params else None


def _prepared_data(data: Any, target: Any, module: nn.Module | None) -> tuple[Any, list[str]]:
    """Tensor data checked once before any work, and the names of integer parts left as they were.

    Floating parts take the module's float dtype (float64 numpy arrays are numpy's default; torch layers refuse
    them with a bare dtype error); integer parts do too when the target names a likelihood over its data (the
    VAE family's pixels), and are otherwise left alone (they may be indices or counts). The first part is
    checked against the support of the target's ``likelihood`` where it declares one: Pyro validates only the
    first batch, so a Bernoulli target of 3.0 in a later batch would otherwise train silently. Datasets and
    ``None`` pass through; the loop refuses NaN/inf in tensors.
    """
    if data is None or (not isinstance(data, tuple | list) and not hasattr(data, "shape")):
        return data, []
    parts = list(data) if isinstance(data, tuple | list) else [data]
    if not all(torch.is_tensor(p) or isinstance(p, np.ndarray) for p in parts):
        return data, []  # the loop says what is wrong with the rest
    dtype = _float_dtype(module)
    likelihood = getattr(target, "likelihood", None)
    support = _LIKELIHOOD_SUPPORT.get(likelihood) if isinstance(likelihood, str) else None
    left_integer = []
    for i, part in enumerate(parts):
        name = "data" if len(parts) == 1 else f"data[{i}]"
        part = torch.as_tensor(part)
        floating = part.is_floating_point()
        if dtype is not None and part.dtype != dtype and (floating or support is not None):
            converted = part.to(dtype)
            if floating and bool(torch.isfinite(part).all()) and not bool(torch.isfinite(converted).all()):
                row = int((~torch.isfinite(converted)).reshape(part.shape[0], -1).any(1).nonzero()[0])
                raise ValueError(
                    f"{name} is {part.dtype} and the model computes in {dtype}, which cannot hold its values "
                    f"(row {row} overflows): rescale the data"
                )
            part = converted
        elif not floating and dtype is not None:
            left_integer.append(f"{name} is {part.dtype}")
        parts[i] = part
    if support is not None and parts and parts[0].dim() > 0:
        _check_support(parts[0], support, likelihood)
    return (tuple(parts) if isinstance(data, tuple | list) else parts[0]), left_integer


def _check_support(x: torch.Tensor, support: Any, likelihood: str) -> None:
    finite = torch.isfinite(x) if x.is_floating_point() else torch.ones_like(x, dtype=torch.bool)
    outside = (finite & ~support.check(torch.where(finite, x, torch.zeros_like(x)))).reshape(x.shape[0], -1).any(1)
    if bool(outside.any()):
        rows = outside.nonzero().reshape(-1)
        values = x[rows[0]].reshape(-1)[~support.check(x[rows[0]].reshape(-1))]
        allowed = "0 or 1" if likelihood == "bernoulli" else str(support)
        raise ValueError(
            f"data: the {likelihood} likelihood takes values {allowed}, but {rows.numel()} of {x.shape[0]} rows hold "
            f"others, the first at row {int(rows[0])} ({values[0].item()}); binarise the data or use another "
            "likelihood"
        )


@contextmanager
def _own_param_store(fresh: bool) -> Iterator[None]:
    """Train in a param store of its own, empty (``fresh``) or holding the caller's parameters; the caller's store
    comes back afterwards, with the fitted parameters added when training returned normally."""
    store = pyro.get_param_store()
    with store.scope(None if fresh else store.get_state()) as fitted:
        yield
    store.set_state(fitted)


def fit(
    target: Any,
    data: Any = None,
    *,
    guide: Callable | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = 64,
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adam",
    lr: float = 1e-3,
    optimizer_kwargs: dict[str, Any] | None = None,
    param_options: Callable[[str], dict[str, Any] | None] | None = None,
    lr_schedule: Callable[[int], float] | None = None,
    elbo: str | pyro.infer.ELBO | None = None,
    num_particles: int = 1,
    device: str | torch.device = "auto",
    seed: int = 0,
    shuffle: bool = True,
    progress: bool = True,
    log_every: int = 100,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    resume: bool = False,
    overwrite: bool = False,
    distributed: str | bool = "auto",
    clear_param_store: bool = True,
) -> FitResult:
    """Fit a Pyro model/guide pair by minimising the negative ELBO.

    Args:
        target: an object with ``model``/``guide`` (ours or a user's ``nn.Module``/``PyroModule``), or a model
            callable when ``guide=`` is given.
        data: a tensor/array ``[N, ...]``, a tuple of them (passed to the programs as positional arguments),
            a map-style ``Dataset``, or ``None`` for programs without arguments (then give ``steps``).
        steps / epochs: how long to train (exactly one).
        batch_size: examples per step; ``None`` fits the full batch. A model with latent sites outside its data
            plate (global latents) is refused minibatches unless its data plate declares the data's size
            (``pyro.plate("data", size=N, subsample=...)``, which Pyro scales by N/M): its posterior would
            otherwise be fitted to M/N of the evidence.
        param_options: per-parameter optimiser options by Pyro parameter name, e.g.
            ``lambda name: {"lr": 1e-3} if "baseline" in name else None``.
        lr_schedule: ``step -> factor`` multiplying every learning rate (annealing).
        elbo: ``"trace"``, ``"tracegraph"``, ``"meanfield"``, ``"jit_trace"``, ``"jit_meanfield"``, or an ELBO; ``None``
            uses ``target.default_elbo``.
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``; the target module and data move there.
        seed: seeds the run's forked torch generators and its data order; the caller's generators are untouched.
        checkpoint_dir / checkpoint_every / resume: atomic checkpoints every k steps (and at the end);
            ``resume=True`` continues from the latest one, giving the parameters of an uninterrupted run. The
            ELBO, learning rate, optimiser, seed, batch size and ``target.run_config`` (a dict, if the target has
            one) are stored with each checkpoint; resuming with different ones is refused. A fresh run in a folder
            that holds checkpoints is refused unless ``overwrite=True`` (which deletes them).
        distributed: ``"auto"`` trains data-parallel when launched by ``torchrun`` with several processes.
        clear_param_store: training always runs in a Pyro param store of its own, and the caller's store is
            never cleared: it is put back afterwards with the fitted parameters added (replacing same-named ones).
            ``True`` starts that store empty, so parameters of earlier runs cannot leak in; ``False`` starts it
            with the caller's parameters, to continue from them.

    Returns:
        :class:`~probrep.training.results.FitResult` with per-step losses (negative ELBO of each batch, in nats),
        the fitted parameters (also in Pyro's param store, and in the target module) and the last checkpoint.
    """
    given = dict(locals())  # fit's arguments by name; TrainOptions takes those it has fields for
    if not isinstance(clear_param_store, bool):
        raise TypeError(f"clear_param_store must be True or False, got {type(clear_param_store).__name__}")
    label = type(target).__name__ if guide is None else getattr(target, "__name__", "model")
    options = TrainOptions(**{name: given[name] for name in _OPTION_NAMES if name in given}, description=f"svi {label}")
    goal = objective(target, guide=guide, elbo=elbo, num_particles=num_particles, data_size=_data_size(data))
    data, left_integer = _prepared_data(data, target, goal.module)
    with _own_param_store(fresh=clear_param_store):
        try:
            return train(goal, data, options)
        except RuntimeError as exc:
            # torch's own message ("mat1 and mat2 must have the same dtype") names no argument of fit
            if left_integer and ("dtype" in str(exc) or "scalar type" in str(exc)):
                exc.add_note(
                    f"svi.fit: {', '.join(left_integer)} while the model computes in {_float_dtype(goal.module)}; "
                    "if the programs take it as numbers rather than indices, pass it as float (x.float())"
                )
            raise
