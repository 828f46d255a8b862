"""AIR's recurrent networks: an LSTM cell whose image projection is computed once per sequence, and the
neural baseline of ``z_pres``.

Speed. The LSTM input is ``[image, z_where, z_what, z_pres]``; its input projection ``W_image @ x`` is the bulk of
the LSTM's work (2500 of 2554 input features at 50x50), so it is a separate product: with the image guide it is
computed once per batch rather than once per step, for the guide and the baseline alike (the residual guide
needs it at every step). This is the same function as an ``nn.LSTMCell`` on the concatenated input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from probrep.models.layers import mlp


class ImageLSTMCell(nn.Module):
    """An LSTM cell on the input ``[image, latents]`` whose image projection is computed once per sequence.

    ``gates = W_image @ image + W_rec @ [latents, h] + b``, split into input, forget, cell and output gates
    (the order of ``nn.LSTMCell``); ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``.
    """

    def __init__(self, image_features: int, latent_features: int, hidden: int):
        super().__init__()
        self.hidden = int(hidden)
        bound = 1.0 / math.sqrt(hidden)  # nn.LSTMCell's initialisation
        self.weight_image = nn.Parameter(torch.empty(4 * hidden, image_features).uniform_(-bound, bound))
        self.weight_rec = nn.Parameter(torch.empty(4 * hidden, latent_features + hidden).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(4 * hidden).uniform_(-bound, bound))

    def image_gates(self, image: torch.Tensor) -> torch.Tensor:
        """``W_image @ image + b`` for a batch ``[B, image_features]`` -> ``[B, 4 hidden]``."""
        return F.linear(image, self.weight_image, self.bias)

    def forward(
        self, image_gates: torch.Tensor, latents: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        gates = image_gates + F.linear(torch.cat([latents, h], dim=-1), self.weight_rec)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class Baseline(nn.Module):
    """The data-dependent baseline of ``z_pres``: its own LSTM over what the guide reads and the detached latents."""

    def __init__(self, image_features: int, latent_features: int, hidden: int, head_hidden: int):
        super().__init__()
        self.rnn = ImageLSTMCell(image_features, latent_features, hidden)
        self.head = mlp((hidden, head_hidden, 1) if head_hidden else (hidden, 1))
