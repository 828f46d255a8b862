"""Stochastic variational inference: fit any Pyro model/guide pair with the shared training loop.

    fit = svi.fit(vae, data, steps=2000, device="auto", checkpoint_dir="runs/vae", seed=0)

``target`` is a module (or any object) with ``model`` and ``guide`` methods, or a model callable with
``guide=`` (a function or a Pyro autoguide). The parameters fitted are those the programs register with Pyro
(``pyro.param``, ``pyro.module``, ``PyroModule``), found by tracing the first step, as Pyro's own ``SVI`` does;
a target may also declare ``auxiliary_parameters()`` / ``auxiliary_loss(*batch)`` (FactorVAE's discriminator),
trained by their own optimiser after each ELBO step.

The loss is ``elbo.differentiable_loss`` minimised with a plain ``torch.optim`` optimiser: the same numbers as
``pyro.infer.SVI`` with less bookkeeping per step. Pyro's argument validation runs on the first (setup) step,
where it catches malformed data, and is switched off in the loop, where it would only cost time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import pyro
import pyro.infer
import torch
from pyro import poutine

from probrep.training.loop import Callback, FitResult, train

__all__ = ["fit", "make_elbo", "ELBOS", "FitResult", "TraceGraphELBO"]


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


def make_elbo(elbo: str | pyro.infer.ELBO | None, target: Any = None, num_particles: int = 1) -> pyro.infer.ELBO:
    """An ELBO by name (see ``ELBOS``), an ELBO instance as is, or ``None`` for the target's ``default_elbo``
    (``"trace"`` when it declares none)."""
    if isinstance(elbo, pyro.infer.ELBO):
        return elbo
    name = elbo if elbo is not None else getattr(target, "default_elbo", "trace")
    if name not in ELBOS:
        raise ValueError(f"unknown elbo {name!r}: expected one of {sorted(ELBOS)} or a pyro.infer.ELBO")
    if int(num_particles) < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    kwargs: dict[str, Any] = {"num_particles": int(num_particles)}
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


def fit(
    target: Any,
    data: Any = None,
    *,
    guide: Callable | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
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
        param_options: per-parameter optimiser options by Pyro parameter name, e.g.
            ``lambda name: {"lr": 1e-3} if "baseline" in name else None``.
        lr_schedule: ``step -> factor`` multiplying every learning rate (annealing).
        elbo: ``"trace"``, ``"tracegraph"``, ``"meanfield"``, ``"jit_trace"``, ``"jit_meanfield"``, or an ELBO; ``None``
            uses ``target.default_elbo``.
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``; the target module and data move there.
        checkpoint_dir / checkpoint_every / resume: atomic checkpoints every k steps (and at the end);
            ``resume=True`` continues from the latest one, giving the parameters of an uninterrupted run. The
            ELBO, learning rate, optimiser, seed, batch size and ``target.run_config`` (a dict, if the target has
            one) are stored with each checkpoint; resuming with different ones is refused.
        distributed: ``"auto"`` trains data-parallel when launched by ``torchrun`` with several processes.
        clear_param_store: start from an empty Pyro param store, so parameters of earlier runs cannot leak in.

    Returns:
        :class:`~probrep.training.loop.FitResult` with per-step losses (negative ELBO of each batch, in nats),
        the fitted parameters and the last checkpoint.
    """
    model, guide_fn = _programs(target, guide)
    loss_maker = make_elbo(elbo, target, num_particles)
    if clear_param_store:
        pyro.clear_param_store()
    module = target if isinstance(target, torch.nn.Module) else None
    if module is None and isinstance(guide_fn, torch.nn.Module):
        module = guide_fn  # an autoguide: checkpoint and move it too

    def setup(*batch) -> dict[str, torch.Tensor]:
        # One validated pass creates every parameter (autoguides create theirs lazily) and records them.
        with pyro.validation_enabled(True), poutine.trace(param_only=True) as capture:
            loss_maker.differentiable_loss(model, guide_fn, *batch)
        return {
            name: site["value"].unconstrained() for name, site in capture.trace.nodes.items() if site["type"] == "param"
        }

    def loss_fn(*batch) -> torch.Tensor:
        with pyro.validation_enabled(False):
            return loss_maker.differentiable_loss(model, guide_fn, *batch)

    auxiliary = None
    if hasattr(target, "auxiliary_loss"):
        auxiliary = (
            target.auxiliary_loss,
            target.auxiliary_parameters(),
            float(getattr(target, "auxiliary_lr", lr)),
            dict(getattr(target, "auxiliary_optimizer_kwargs", {})),
        )
    return train(
        loss_fn,
        setup,
        data,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        optimizer_kwargs=optimizer_kwargs,
        param_options=param_options,
        lr_schedule=lr_schedule,
        auxiliary=auxiliary,
        module=module,
        device=device,
        seed=seed,
        shuffle=shuffle,
        progress=progress,
        log_every=log_every,
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        resume=resume,
        distributed=distributed,
        description=f"svi {type(target).__name__ if guide is None else getattr(target, '__name__', 'model')}",
        # a model may name settings that its parameters' shapes do not reveal (AIR's guide input), so that
        # resuming with other settings is refused
        run_config={
            "elbo": type(loss_maker).__name__,
            "lr": float(lr),
            "optimizer": str(optimizer),
            **dict(getattr(target, "run_config", None) or {}),
        },
    )
