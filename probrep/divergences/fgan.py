"""Critic training on the f table: divergence estimates from samples, and f-GAN (Nowozin et al. 2016).

Both maximise the variational bound ``E_P[g_f(v)] - E_Q[f*(g_f(v))]`` of :mod:`probrep.divergences.fdiv` over a
critic ``v`` with the shared training loop (:func:`probrep.training.loop.train`: devices, seeds, a tqdm bar
that ``progress=False`` turns off, logging).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from probrep._checks import integer, probability
from probrep.device import resolve_device
from probrep.divergences._util import Estimate, as_samples, same_space
from probrep.divergences.fdiv import FDivergence, f_lower_bound, get_f_divergence
from probrep.training import Auxiliary, FunctionObjective, TrainOptions, rng, train

logger = logging.getLogger(__name__)

GENERATOR_LOSSES = ("nonsaturating", "saturating")


def critic_mlp(in_features: int, hidden: Sequence[int] = (64, 64)) -> nn.Sequential:
    """A dense critic ``[N, in_features] -> [N]`` with ELU activations."""
    sizes = (integer(in_features, "in_features"), *[integer(h, "hidden") for h in hidden], 1)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    layers.append(nn.Flatten(0))
    return nn.Sequential(*layers)


def _seeded_init(seed: int, build):
    """Build a module with parameters drawn from ``seed`` without touching the global random state (modules are
    built on the CPU, so only its generator is forked and seeded)."""
    with rng.forked(seed, torch.device("cpu")):
        return build()


def _outputs(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    v = critic(x)
    if v.dim() > 1:
        if v.shape[1:].numel() != 1:
            raise ValueError(f"the critic must return one number per sample, got output shape {tuple(v.shape)}")
        v = v.reshape(v.shape[0])
    return v


@dataclass(frozen=True)
class CriticEstimate(Estimate):
    """A divergence estimate from a trained critic: ``value`` and ``stderr`` on held-out samples (the
    standard error covers the evaluation samples only; an imperfect critic biases ``value`` downwards)."""

    critic: nn.Module | None = None
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_value: float = math.nan

    def __repr__(self) -> str:
        return f"CriticEstimate({self.value:.6g} +- {self.stderr:.2g}, n={self.n}, train {self.train_value:.4g})"


def _split(x: torch.Tensor, holdout: float, gen: torch.Generator, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    n = x.shape[0]
    n_eval = int(round(holdout * n))
    if n_eval < 2 or n - n_eval < 1:
        raise ValueError(f"{name} has {n} samples: too few to hold out {holdout:.0%} for evaluation")
    order = torch.randperm(n, generator=gen).to(x.device)
    return x[order[n_eval:]], x[order[:n_eval]]


def _bound_and_stderr(critic, xp, xq, fd: FDivergence) -> tuple[float, float]:
    with torch.no_grad():
        a = fd.activation(_outputs(critic, xp)).double()
        b = fd.conjugate_activation(_outputs(critic, xq)).double()
    value = float(a.mean() - b.mean())
    stderr = math.sqrt(float(a.var()) / a.numel() + float(b.var()) / b.numel())
    return value, stderr


def estimate_divergence(
    xp,
    xq,
    name: str | FDivergence = "kl",
    *,
    alpha: float | None = None,
    critic: nn.Module | None = None,
    hidden: Sequence[int] = (64, 64),
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    holdout: float = 0.5,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> CriticEstimate:
    """Estimate ``D_f(P||Q)`` from samples ``xp ~ P`` and ``xq ~ Q`` by training a critic on the variational bound.

    A fraction ``holdout`` of each sample set is kept out of training; the bound evaluated on it is the estimate,
    with standard error ``sqrt(Var_P[g(v)]/n_p + Var_Q[f*(g(v))]/n_q)``. ``critic`` maps ``[N, d] -> [N]``
    (default: :func:`critic_mlp` with ``hidden``).
    """
    fd = get_f_divergence(name, alpha)
    holdout = probability(holdout, "holdout")
    dev = resolve_device(device)
    xp, xq = same_space(as_samples(xp, "xp", dev, min_rows=3), as_samples(xq, "xq", dev, min_rows=3), ("xp", "xq"))
    gen = torch.Generator().manual_seed(seed)
    xp_train, xp_eval = _split(xp, holdout, gen, "xp")
    xq_train, xq_eval = _split(xq, holdout, gen, "xq")
    if critic is None:
        critic = _seeded_init(seed, lambda: critic_mlp(xp.shape[1], hidden))
    if not isinstance(critic, nn.Module):
        raise TypeError(f"critic must be a torch.nn.Module, got {type(critic).__name__}")
    critic.to(dev)
    n_p, n_q = xp_train.shape[0], xq_train.shape[0]

    def loss_fn(index: torch.Tensor) -> torch.Tensor:
        return -f_lower_bound(_outputs(critic, xp_train[index % n_p]), _outputs(critic, xq_train[index % n_q]), fd)

    options = TrainOptions(
        steps=integer(steps, "steps", 0),
        batch_size=batch_size,
        lr=lr,
        device=dev,
        seed=seed,
        progress=progress,
        distributed=False,
        description=f"critic {fd.name}",
    )
    fit = train(FunctionObjective(loss_fn, module=critic), (torch.arange(max(n_p, n_q)),), options)
    critic.eval()
    value, stderr = _bound_and_stderr(critic, xp_eval, xq_eval, fd)
    train_value, _ = _bound_and_stderr(critic, xp_train, xq_train, fd)
    logger.info("%s estimate %.5g +- %.2g (train %.5g)", fd.name, value, stderr, train_value)
    return CriticEstimate(
        value, stderr, xp_eval.shape[0] + xq_eval.shape[0], critic=critic, losses=fit.losses, train_value=train_value
    )


# ------------------------------------------------------------------------------------------------------ f-GAN
def fgan_critic_loss(v_real: torch.Tensor, v_fake: torch.Tensor, name: str | FDivergence, **kw) -> torch.Tensor:
    """The critic's loss: minus the bound ``E_data[g_f(v)] - E_model[f*(g_f(v))]``."""
    return -f_lower_bound(v_real, v_fake, name, **kw)


def fgan_generator_loss(
    v_fake: torch.Tensor, name: str | FDivergence, *, mode: str = "nonsaturating", alpha: float | None = None
) -> torch.Tensor:
    """The generator's loss on critic outputs of its samples.

    ``"saturating"``: ``-E_model[f*(g_f(v))]``, the bound's own dependence on the generator (at the optimal
    critic its gradient is that of ``D_f(data||model)``); ``"nonsaturating"``: ``-E_model[g_f(v)]``, Nowozin et
    al.'s alternative with stronger gradients early on.
    """
    fd = get_f_divergence(name, alpha)
    if mode == "saturating":
        return -fd.conjugate_activation(v_fake).mean()
    if mode == "nonsaturating":
        return -fd.activation(v_fake).mean()
    raise ValueError(f"unknown generator loss mode {mode!r}: expected one of {list(GENERATOR_LOSSES)}")


@dataclass
class FGANResult:
    """A trained f-GAN: the generator and critic, and per-step generator losses and critic bounds."""

    generator: nn.Module
    critic: nn.Module
    generator_losses: np.ndarray
    critic_bounds: np.ndarray
    seconds: float


def train_fgan(
    data,
    generator: nn.Module,
    noise_dim: int,
    name: str | FDivergence = "jensen_shannon",
    *,
    alpha: float | None = None,
    critic: nn.Module | None = None,
    critic_hidden: Sequence[int] = (128, 128),
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 2e-4,
    critic_lr: float | None = None,
    betas: tuple[float, float] = (0.5, 0.999),
    generator_loss: str = "nonsaturating",
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> FGANResult:
    """Train ``generator`` (noise ``[B, noise_dim]`` -> samples) against ``data [N, ...]`` with any f of the table.

    Each step updates the generator on :func:`fgan_generator_loss`, then the critic on
    :func:`fgan_critic_loss` with fresh generator samples (single-step alternation, as Nowozin et al.).
    """
    fd = get_f_divergence(name, alpha)
    if generator_loss not in GENERATOR_LOSSES:
        raise ValueError(f"unknown generator_loss {generator_loss!r}: expected one of {list(GENERATOR_LOSSES)}")
    if not isinstance(generator, nn.Module):
        raise TypeError(f"generator must be a torch.nn.Module, got {type(generator).__name__}")
    noise_dim = integer(noise_dim, "noise_dim")
    dev = resolve_device(device)
    x = as_samples(data, "data", dev, min_rows=2)
    generator.to(dev)
    with torch.no_grad():
        probe = generator(torch.zeros(2, noise_dim, device=dev))
    if probe.reshape(2, -1).shape[1] != x.shape[1]:
        raise ValueError(
            f"the generator makes samples of dimension {probe.reshape(2, -1).shape[1]} but data has dimension "
            f"{x.shape[1]} (shape {tuple(x.shape)})"
        )
    if critic is None:
        critic = _seeded_init(seed + 1, lambda: critic_mlp(x.shape[1], critic_hidden))
    critic.to(dev)
    bounds: list[torch.Tensor] = []

    def fake(n: int) -> torch.Tensor:
        return generator(torch.randn(n, noise_dim, device=dev)).reshape(n, -1)

    def generator_step(real: torch.Tensor) -> torch.Tensor:
        return fgan_generator_loss(_outputs(critic, fake(real.shape[0])), fd, mode=generator_loss)

    def critic_step(real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            samples = fake(real.shape[0])
        bound = f_lower_bound(_outputs(critic, real), _outputs(critic, samples), fd)
        bounds.append(bound.detach())
        return -bound

    options = TrainOptions(
        steps=integer(steps, "steps", 0),
        batch_size=batch_size,
        lr=lr,
        optimizer_kwargs={"betas": betas},
        device=dev,
        seed=seed,
        progress=progress,
        distributed=False,
        description=f"f-GAN {fd.name}",
    )
    critic_update = Auxiliary(critic_step, list(critic.parameters()), critic_lr or lr, {"betas": betas})
    fit = train(FunctionObjective(generator_step, module=generator, auxiliary=critic_update), (x,), options)
    critic_bounds = torch.stack(bounds).cpu().numpy() if bounds else np.zeros(0)
    return FGANResult(generator, critic, fit.losses, critic_bounds, fit.seconds)
