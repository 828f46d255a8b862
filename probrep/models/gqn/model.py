"""Generative Query Network (Eslami et al. 2018) as a Pyro program: a scene representation from context views,
and a ConvDRAW generator that renders the scene from a query viewpoint, with uncertainty.

    r = sum_k f(x_k, v_k)                                       (tower, pool or pyramid network)
    p(x_q | v_q, r) = int prod_l p(z_l | z_<l, v_q, r) N(x_q | g(z_1..L, v_q, r), sigma^2) dz
    negative ELBO = -E_q[log N(x_q | g, sigma^2)] + sum_l E_q[KL(q(z_l | x_q, z_<l) || p(z_l | z_<l))]

The model samples ``z_1 .. z_L`` from the per-step priors and observes the query image; the guide samples them
from the per-step posteriors. With the mean-field ELBO (the default) every KL term is the closed form of two
diagonal Gaussians, KL = sum 0.5 (log(s_p^2 / s_q^2) + (s_q^2 + (m_q - m_p)^2) / s_p^2 - 1), evaluated at the
guide's sample of z_<l. The pixel sigma is an attribute (``gqn.sigma``) that a training callback anneals
(:class:`probrep.training.schedules.AnnealAttribute`; 2.0 -> 0.7 in the paper).

Speed: the generator states the guide computed for its z's are the ones the model needs for the same z's, so
the guide leaves them behind and the model reuses them when it is replayed on exactly those samples (checked by
tensor identity; anything else recomputes). That spares the model its pass through the generator and the
representation network (a third of a small-tier step on the CPU) and changes no number;
``reuse_guide_states=False`` turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from probrep._checks import integer, one_of, real
from probrep.models.gqn.convdraw import ConvDRAW, GeneratorState

REPRESENTATIONS = ("tower", "pool", "pyramid")
#: what the representation network's last convolution is followed by: the paper's ReLU, or nothing ("linear"),
#: so that its last layer cannot die (a ReLU unit negative for every input outputs 0 and gets no gradient again;
#: the ReLUs before it still can)
REPRESENTATION_OUTPUTS = ("relu", "linear")


# ------------------------------------------------------------------------------------------ representations
class TowerRepresentation(nn.Module):
    """The "tower" network: image ``[N, C, H, W]`` and viewpoint ``[N, V]`` -> ``[N, R, H/4, W/4]``
    (``[N, R, 1, 1]`` with ``pool=True``, the "pool" network: the tower followed by global average pooling).

    conv2x2/2 (R) -> [skip: conv2x2/2 (R)] + conv3x3 (R/2) -> conv2x2/2 (R); concat v broadcast;
    [skip: conv3x3 (R)] + conv3x3 (R/2) -> conv3x3 (R); conv1x1 (R). ReLU after every convolution (after the
    last only with ``output="relu"``, the default).
    """

    def __init__(
        self, image_channels: int, viewpoint_dim: int, r_channels: int, pool: bool = False, output: str = "relu"
    ):
        super().__init__()
        r, half = r_channels, max(1, r_channels // 2)
        self.pool = pool
        self.output = one_of(output, "output", REPRESENTATION_OUTPUTS)
        self.conv1 = nn.Conv2d(image_channels, r, 2, stride=2)
        self.skip1 = nn.Conv2d(r, r, 2, stride=2)
        self.conv2 = nn.Conv2d(r, half, 3, padding=1)
        self.conv3 = nn.Conv2d(half, r, 2, stride=2)
        self.skip2 = nn.Conv2d(r + viewpoint_dim, r, 3, padding=1)
        self.conv4 = nn.Conv2d(r + viewpoint_dim, half, 3, padding=1)
        self.conv5 = nn.Conv2d(half, r, 3, padding=1)
        self.conv6 = nn.Conv2d(r, r, 1)

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.conv1(x))
        y = F.relu(self.conv3(F.relu(self.conv2(a)))) + F.relu(self.skip1(a))
        y = torch.cat([y, v[:, :, None, None].expand(-1, -1, *y.shape[-2:])], dim=1)
        y = F.relu(self.conv5(F.relu(self.conv4(y)))) + F.relu(self.skip2(y))
        y = self.conv6(y)
        y = F.relu(y) if self.output == "relu" else y
        return y.mean(dim=(2, 3), keepdim=True) if self.pool else y


class PyramidRepresentation(nn.Module):
    """The "pyramid" network: [image, viewpoint broadcast to every pixel] -> ``[N, R, 1, 1]``.

    conv2x2/2 (R/8) -> conv2x2/2 (R/4) -> conv2x2/2 (R/2) -> conv (H/8)x(H/8) (R), ReLU after each (after the last
    only with ``output="relu"``, the default).
    """

    def __init__(self, image_channels: int, viewpoint_dim: int, r_channels: int, image_size: int, output: str = "relu"):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"the pyramid network needs image_size divisible by 8, got {image_size}")
        one_of(output, "output", REPRESENTATION_OUTPUTS)
        c = [max(1, r_channels // 8), max(1, r_channels // 4), max(1, r_channels // 2)]
        self.convs = nn.Sequential(
            nn.Conv2d(image_channels + viewpoint_dim, c[0], 2, stride=2),
            nn.ReLU(),
            nn.Conv2d(c[0], c[1], 2, stride=2),
            nn.ReLU(),
            nn.Conv2d(c[1], c[2], 2, stride=2),
            nn.ReLU(),
            nn.Conv2d(c[2], r_channels, image_size // 8),
            nn.ReLU() if output == "relu" else nn.Identity(),
        )

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([x, v[:, :, None, None].expand(-1, -1, *x.shape[-2:])], dim=1))


def make_representation(
    kind: str, image_channels: int, viewpoint_dim: int, r_channels: int, image_size: int, output: str = "relu"
) -> nn.Module:
    """The representation network ``kind`` in ``("tower", "pool", "pyramid")``, its last convolution followed by
    ``output`` (``REPRESENTATION_OUTPUTS``)."""
    if kind == "tower":
        return TowerRepresentation(image_channels, viewpoint_dim, r_channels, output=output)
    if kind == "pool":
        return TowerRepresentation(image_channels, viewpoint_dim, r_channels, pool=True, output=output)
    if kind == "pyramid":
        return PyramidRepresentation(image_channels, viewpoint_dim, r_channels, image_size, output=output)
    raise ValueError(f"unknown representation {kind!r}: expected one of {REPRESENTATIONS}")


# ---------------------------------------------------------------------------------------------------- GQN
@dataclass
class _GuideRun:
    inputs: tuple[torch.Tensor, ...]
    condition: torch.Tensor
    z: list[torch.Tensor]
    states: list[GeneratorState]  # states[l]: before step l; states[L]: the final state


class GQN(nn.Module):
    """Generative Query Network with a ConvDRAW generator.

    Args:
        image_size / image_channels / viewpoint_dim: the data (square images).
        representation: ``"tower"`` (spatial r on the generator grid), ``"pool"`` or ``"pyramid"`` (a vector r).
        representation_output: ``"relu"`` (the paper's) or ``"linear"``: what follows the representation
            network's last convolution. Under a ReLU a unit negative for every input is dead for good, and when all
            of the last layer's are, the model ignores its context (measured by
            :func:`probrep.experiments.gqn.live_representation`).
        r_channels / h_channels / z_channels / canvas_channels: widths (paper: 256 / 128 / 64 / 128).
        steps: L, the DRAW steps (12 in the paper).
        share_cores: one inference and one generator ConvLSTM for all steps, or one per step.
        kernel_size: of the ConvLSTMs and the prior / posterior convolutions (5 in the paper).
        sigma: the pixel standard deviation (annealed during training by
            :class:`probrep.training.schedules.AnnealAttribute`).
        checkpoint_steps: activation checkpointing per DRAW step (less memory for long L).
        coordinates: append two channels of grid coordinates in [-1, 1] to the generator's conditioning
            (CoordConv, Liu et al. 2018). Convolutions are translation invariant, so without them a generator
            conditioned on a vector r (``"pool"``, ``"pyramid"``) learns where it draws only from the zero
            padding at the borders; the paper's GQN does without.
        reuse_guide_states: let the model reuse the generator states the guide computed (see module doc).
        name: prefix of the Pyro parameter names.
    """

    default_elbo = "meanfield"

    def __init__(
        self,
        image_size: int = 64,
        image_channels: int = 3,
        viewpoint_dim: int = 7,
        representation: str = "tower",
        representation_output: str = "relu",
        r_channels: int = 256,
        h_channels: int = 128,
        z_channels: int = 64,
        canvas_channels: int | None = None,
        steps: int = 12,
        share_cores: bool = True,
        kernel_size: int = 5,
        sigma: float = 2.0,
        checkpoint_steps: bool = False,
        coordinates: bool = False,
        reuse_guide_states: bool = True,
        name: str = "gqn",
    ):
        super().__init__()
        for arg, value in {
            "image_size": image_size,
            "image_channels": image_channels,
            "viewpoint_dim": viewpoint_dim,
            "r_channels": r_channels,
            "h_channels": h_channels,
            "z_channels": z_channels,
            "steps": steps,
        }.items():
            try:
                integer(value, arg)
            except TypeError as exc:
                raise ValueError(str(exc)) from exc
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4 (the generator grid is 1/4 of it), got {image_size}")
        one_of(representation, "representation", REPRESENTATIONS)
        one_of(representation_output, "representation_output", REPRESENTATION_OUTPUTS)
        real(sigma, "sigma", positive=True)
        self.image_shape = (int(image_channels), int(image_size), int(image_size))
        self.viewpoint_dim, self.representation_kind = int(viewpoint_dim), representation
        self.representation_output = representation_output
        self.r_channels, self.steps, self.sigma = int(r_channels), int(steps), float(sigma)
        self.reuse_guide_states, self.name = bool(reuse_guide_states), name
        self.coordinates = bool(coordinates)
        self.representation = make_representation(
            representation, image_channels, viewpoint_dim, r_channels, image_size, output=representation_output
        )
        self.generator = ConvDRAW(
            image_channels,
            image_size,
            condition_channels=viewpoint_dim + r_channels + (2 if self.coordinates else 0),
            h_channels=h_channels,
            z_channels=z_channels,
            canvas_channels=canvas_channels,
            steps=steps,
            share_cores=share_cores,
            kernel_size=kernel_size,
            checkpoint_steps=checkpoint_steps,
        )
        self._guide_run: _GuideRun | None = None

    @classmethod
    def small(cls, **overrides: Any) -> GQN:
        """The small tier for 32x32 rooms that trains on a laptop CPU: narrow networks, 4 DRAW steps, grid
        coordinates in the generator's conditioning (in a 1,500-step probe the novel-view MSE was 0.47x the
        context-mean baseline's with them and 0.50x without)."""
        config: dict[str, Any] = {
            "image_size": 32,
            "representation": "tower",
            "r_channels": 32,
            "h_channels": 32,
            "z_channels": 4,
            "canvas_channels": 16,
            "steps": 4,
            "kernel_size": 3,
            "coordinates": True,
        }
        return cls(**{**config, **overrides})

    def run_config(self) -> dict[str, Any]:
        """Settings the parameters' shapes do not reveal (a tower and a pool network, or a ReLU and a linear output,
        have the same weights): stored in checkpoints, so that a resume with other settings is refused."""
        return {"representation": self.representation_kind, "representation_output": self.representation_output}

    @property
    def checkpoint_steps(self) -> bool:
        return self.generator.checkpoint_steps

    @checkpoint_steps.setter
    def checkpoint_steps(self, value: bool) -> None:
        self.generator.checkpoint_steps = bool(value)

    # ---------------------------------------------------------------------------------------------- checks
    def _check(
        self,
        context_images: torch.Tensor,
        context_viewpoints: torch.Tensor,
        query_viewpoint: torch.Tensor,
        query_image: torch.Tensor | None = None,
    ) -> None:
        named = {
            "context_images": context_images,
            "context_viewpoints": context_viewpoints,
            "query_viewpoint": query_viewpoint,
        }
        if query_image is not None:
            named["query_image"] = query_image
        for arg, t in named.items():
            if not torch.is_tensor(t):
                raise TypeError(f"{arg} must be a torch.Tensor, got {type(t).__name__}")
        c, h, w = self.image_shape
        if context_images.dim() != 5 or tuple(context_images.shape[2:]) != self.image_shape:
            raise ValueError(f"context_images must be [B, K, {c}, {h}, {w}], got {tuple(context_images.shape)}")
        b, k = context_images.shape[:2]
        if k < 1:
            raise ValueError("context_images holds no views (K = 0): GQN needs at least one context view")
        if tuple(context_viewpoints.shape) != (b, k, self.viewpoint_dim):
            raise ValueError(
                f"context_viewpoints must be [B, K, {self.viewpoint_dim}] = [{b}, {k}, {self.viewpoint_dim}] to match "
                f"context_images, got {tuple(context_viewpoints.shape)}"
            )
        if tuple(query_viewpoint.shape) != (b, self.viewpoint_dim):
            raise ValueError(f"query_viewpoint must be [{b}, {self.viewpoint_dim}], got {tuple(query_viewpoint.shape)}")
        if query_image is not None and tuple(query_image.shape) != (b, *self.image_shape):
            raise ValueError(f"query_image must be [{b}, {c}, {h}, {w}], got {tuple(query_image.shape)}")

    # -------------------------------------------------------------------------------------------- networks
    def represent(self, context_images: torch.Tensor, context_viewpoints: torch.Tensor) -> torch.Tensor:
        """Scene representation ``r = sum_k f(x_k, v_k)``: ``[B, R, H/4, W/4]`` (tower) or ``[B, R, 1, 1]``."""
        b, k = context_images.shape[:2]
        r = self.representation(context_images.reshape(b * k, *self.image_shape), context_viewpoints.reshape(b * k, -1))
        return r.reshape(b, k, *r.shape[1:]).sum(dim=1)

    def _condition(self, context_images, context_viewpoints, query_viewpoint) -> torch.Tensor:
        """[v_q, r] (and the grid coordinates) on the generator grid ``[B, V + R (+ 2), g, g]``."""
        r = self.represent(context_images, context_viewpoints)
        g = self.generator.grid
        r = r.expand(-1, -1, g, g) if r.shape[-1] == 1 else r
        v = query_viewpoint[:, :, None, None].expand(-1, -1, g, g)
        parts = [v, r]
        if self.coordinates:
            axis = torch.linspace(-1.0, 1.0, g, device=r.device, dtype=r.dtype)
            rows, cols = torch.meshgrid(axis, axis, indexing="ij")
            parts.append(torch.stack([rows, cols])[None].expand(r.shape[0], -1, -1, -1))
        return torch.cat(parts, dim=1)

    # ------------------------------------------------------------------------------------------ Pyro programs
    def model(
        self,
        context_images: torch.Tensor,
        context_viewpoints: torch.Tensor,
        query_viewpoint: torch.Tensor,
        query_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """p(z_1..L | v_q, r) p(x_q | z, v_q, r); ``query_image`` observed when given. Returns the pixel means."""
        pyro.module(self.name, self)
        self._check(context_images, context_viewpoints, query_viewpoint, query_image)
        run, self._guide_run = self._guide_run, None
        if run is not None and not (
            self.reuse_guide_states
            and len(run.inputs) == 3
            and all(a is b for a, b in zip(run.inputs, (context_images, context_viewpoints, query_viewpoint)))
        ):
            run = None
        batch = context_images.shape[0]
        if run is not None:
            condition, state = run.condition, run.states[0]
        else:
            condition = self._condition(context_images, context_viewpoints, query_viewpoint)
            state = self.generator.initial_state(batch, condition)
        with pyro.plate("scenes", batch):
            for step in range(self.steps):
                loc, scale = self.generator.prior(step, state)
                z = pyro.sample(f"z_{step + 1}", dist.Normal(loc, scale).to_event(3))
                if run is not None and z is run.z[step]:
                    state = run.states[step + 1]
                else:
                    run = None
                    state = self.generator.generate(step, z, condition, state)
            mean = self.generator.mean(state)
            pyro.sample("query_image", dist.Normal(mean, self.sigma).to_event(3), obs=query_image)
        return mean

    def guide(
        self,
        context_images: torch.Tensor,
        context_viewpoints: torch.Tensor,
        query_viewpoint: torch.Tensor,
        query_image: torch.Tensor,
    ) -> None:
        """q(z_1..L | x_q, v_q, r): each step's posterior from the inference core."""
        pyro.module(self.name, self)
        if query_image is None:
            raise ValueError("the guide needs query_image (the posterior is conditioned on it)")
        self._check(context_images, context_viewpoints, query_viewpoint, query_image)
        batch = context_images.shape[0]
        condition = self._condition(context_images, context_viewpoints, query_viewpoint)
        x = self.generator.image_features(query_image)
        state = self.generator.initial_state(batch, condition)
        inference = self.generator.initial_inference_state(batch, condition)
        zs, states = [], [state]
        with pyro.plate("scenes", batch):
            for step in range(self.steps):
                loc, scale, inference = self.generator.posterior(step, x, condition, state, inference)
                z = pyro.sample(f"z_{step + 1}", dist.Normal(loc, scale).to_event(3))
                state = self.generator.generate(step, z, condition, state)
                zs.append(z)
                states.append(state)
        if self.reuse_guide_states:
            self._guide_run = _GuideRun((context_images, context_viewpoints, query_viewpoint), condition, zs, states)

    # ----------------------------------------------------------------------------------------------- utils
    def _rollout(self, condition: torch.Tensor, sample: bool) -> torch.Tensor:
        state = self.generator.initial_state(condition.shape[0], condition)
        for step in range(self.steps):
            loc, scale = self.generator.prior(step, state)
            z = loc + scale * torch.randn_like(loc) if sample else loc
            state = self.generator.generate(step, z, condition, state)
        return self.generator.mean(state)

    @torch.no_grad()
    def predict(
        self, context_images: torch.Tensor, context_viewpoints: torch.Tensor, query_viewpoint: torch.Tensor
    ) -> torch.Tensor:
        """A point prediction ``[B, C, H, W]`` of the query views: the pixel means with every z_l at its prior mean."""
        self._check(context_images, context_viewpoints, query_viewpoint)
        return self._rollout(self._condition(context_images, context_viewpoints, query_viewpoint), sample=False)

    @torch.no_grad()
    def sample(
        self,
        context_images: torch.Tensor,
        context_viewpoints: torch.Tensor,
        query_viewpoint: torch.Tensor,
        num_samples: int = 1,
    ) -> torch.Tensor:
        """Renderings ``[S, B, C, H, W]`` of the query views with z ~ p(z | v_q, r) (pixel means given z)."""
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self._check(context_images, context_viewpoints, query_viewpoint)
        condition = self._condition(context_images, context_viewpoints, query_viewpoint)
        return torch.stack([self._rollout(condition, sample=True) for _ in range(int(num_samples))])
