"""The ConvDRAW generator of the Generative Query Network: ConvLSTM cores, per-step prior and posterior, a canvas.

With a scene representation r and a query viewpoint v, for steps l = 1..L (Eslami et al. 2018, Gregor et al.
2016), on a grid 1/``scale`` of the image size:

    prior          p(z_l | z_<l) = N(mu_p(h_g), softplus(s_p(h_g)))               (5x5 conv of the generator state)
    posterior      h_e = C_e([x_q, v, r, h_g], h_e);  q(z_l | x_q, z_<l) = N(mu_q(h_e), softplus(s_q(h_e)))
    generator      h_g = C_g([v, r, z_l], h_g);  u <- u + Deconv(h_g)             (transposed conv to full size)
    image          x_q ~ N(sigmoid(conv1x1(u)), sigma^2)

``C_e`` and ``C_g`` are ConvLSTM cells (one shared by all steps, or one per step). The query image enters the
inference core through a lossless space-to-depth rearrangement to the grid (``pixel_unshuffle``). Each
ConvLSTM update (with the posterior head) can run under activation checkpointing (``torch.utils.checkpoint``),
which keeps only the states between steps and recomputes the gates in the backward pass: less memory for long L,
more compute. The canvas update stays outside, where it saves only the small state ``h``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM cell (Shi et al. 2015).

    gates = conv([x, h]) split into i, f, o, g;  c' = sigma(f) c + sigma(i) tanh(g);  h' = sigma(o) tanh(c').
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 5):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same-size padding), got {kernel_size}")
        self.hidden_channels = int(hidden_channels)
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, o, g = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


@dataclass
class GeneratorState:
    """ConvLSTM states of the generator (``h``, ``c``) and the canvas ``u`` (full resolution)."""

    h: torch.Tensor
    c: torch.Tensor
    u: torch.Tensor


def _gaussian(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loc, raw = params.chunk(2, dim=1)
    return loc, F.softplus(raw) + 1e-4


class ConvDRAW(nn.Module):
    """The generator's networks and its step functions; :class:`probrep.models.gqn.model.GQN` runs the loop.

    Args:
        image_channels / image_size: the query images.
        condition_channels: channels of the conditioning [v, r] on the grid.
        h_channels / z_channels / canvas_channels: ConvLSTM state, latent and canvas channels.
        steps: L, the number of DRAW steps.
        share_cores: one inference and one generator core for all steps (else one per step); the prior,
            posterior and canvas networks follow the same choice.
        kernel_size: of the ConvLSTM and of the prior / posterior convolutions.
        scale: the grid is ``image_size / scale``.
        checkpoint_steps: activation checkpointing of every step's deterministic pieces while training.
    """

    def __init__(
        self,
        image_channels: int,
        image_size: int,
        condition_channels: int,
        h_channels: int = 128,
        z_channels: int = 64,
        canvas_channels: int | None = None,
        steps: int = 12,
        share_cores: bool = True,
        kernel_size: int = 5,
        scale: int = 4,
        checkpoint_steps: bool = False,
    ):
        super().__init__()
        if image_size % scale:
            raise ValueError(f"image_size {image_size} must be divisible by the generator scale {scale}")
        self.steps, self.scale, self.share_cores = int(steps), int(scale), bool(share_cores)
        self.image_channels, self.image_size = int(image_channels), int(image_size)
        self.grid = self.image_size // self.scale
        self.h_channels, self.z_channels = int(h_channels), int(z_channels)
        self.canvas_channels = int(canvas_channels or h_channels)
        self.checkpoint_steps = bool(checkpoint_steps)
        copies = 1 if share_cores else self.steps
        x_channels = image_channels * scale * scale
        pad = kernel_size // 2

        def many(make) -> nn.ModuleList:
            return nn.ModuleList(make() for _ in range(copies))

        self.inference_cores = many(
            lambda: ConvLSTMCell(x_channels + condition_channels + h_channels, h_channels, kernel_size)
        )
        self.generator_cores = many(lambda: ConvLSTMCell(condition_channels + z_channels, h_channels, kernel_size))
        self.priors = many(lambda: nn.Conv2d(h_channels, 2 * z_channels, kernel_size, padding=pad))
        self.posteriors = many(lambda: nn.Conv2d(h_channels, 2 * z_channels, kernel_size, padding=pad))
        self.canvas = many(lambda: nn.ConvTranspose2d(h_channels, self.canvas_channels, scale, stride=scale))
        self.observation = nn.Conv2d(self.canvas_channels, image_channels, 1)

    def _pick(self, modules: nn.ModuleList, step: int) -> nn.Module:
        return modules[0 if self.share_cores else step]

    def _maybe_checkpoint(self, fn, *args):
        if self.checkpoint_steps and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    # --------------------------------------------------------------------------------------------- states
    def initial_state(self, batch: int, like: torch.Tensor) -> GeneratorState:
        zeros = like.new_zeros(batch, self.h_channels, self.grid, self.grid)
        canvas = like.new_zeros(batch, self.canvas_channels, self.image_size, self.image_size)
        return GeneratorState(zeros, zeros.clone(), canvas)

    def initial_inference_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = like.new_zeros(batch, self.h_channels, self.grid, self.grid)
        return zeros, zeros.clone()

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        """The query image on the grid, losslessly: ``[B, C * scale^2, grid, grid]``."""
        return F.pixel_unshuffle(image, self.scale)

    # ---------------------------------------------------------------------------------------- step pieces
    def prior(self, step: int, state: GeneratorState) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale ``[B, z, grid, grid]`` of p(z_l | z_<l)."""
        return _gaussian(self._pick(self.priors, step)(state.h))

    def posterior(
        self,
        step: int,
        x_features: torch.Tensor,
        condition: torch.Tensor,
        state: GeneratorState,
        inference: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Update the inference core; location and scale of q(z_l | x, z_<l) and the new inference state."""
        core, head = self._pick(self.inference_cores, step), self._pick(self.posteriors, step)

        def run(x, cond, h_g, h_e, c_e):
            h_e, c_e = core(torch.cat([x, cond, h_g], dim=1), h_e, c_e)
            loc, scale = _gaussian(head(h_e))
            return loc, scale, h_e, c_e

        loc, scale, h_e, c_e = self._maybe_checkpoint(run, x_features, condition, state.h, *inference)
        return loc, scale, (h_e, c_e)

    def generate(self, step: int, z: torch.Tensor, condition: torch.Tensor, state: GeneratorState) -> GeneratorState:
        """One generator step: the ConvLSTM takes [v, r, z_l]; the canvas adds the upsampled new state."""
        core, up = self._pick(self.generator_cores, step), self._pick(self.canvas, step)

        def run(z, cond, h, c):
            return core(torch.cat([cond, z], dim=1), h, c)

        h, c = self._maybe_checkpoint(run, z, condition, state.h, state.c)
        # outside the checkpoint: the sum saves nothing, so the full-size canvases of earlier steps can be freed
        return GeneratorState(h, c, state.u + up(h))

    def mean(self, state: GeneratorState) -> torch.Tensor:
        """Pixel means ``sigmoid(conv1x1(u))`` in (0, 1)."""
        return torch.sigmoid(self.observation(state.u))
