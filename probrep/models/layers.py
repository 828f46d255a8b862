"""Networks shared by the models: the conv encoder/decoder of the disentanglement literature and an MLP.

The conv pair is the architecture used across beta-VAE, FactorVAE, beta-TCVAE and disentanglement_lib for
64x64 images: four 4x4 stride-2 convolutions with 32, 32, 64, 64 channels, then a 256-unit dense layer; the
decoder mirrors it with transposed convolutions. Other image sizes work as long as each side is divisible by 16.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

CONV_CHANNELS = (32, 32, 64, 64)


def _check_image_shape(image_shape: Sequence[int], divisor: int = 16) -> tuple[int, int, int]:
    if len(image_shape) != 3 or any(int(s) <= 0 for s in image_shape):
        raise ValueError(f"image_shape must be (channels, height, width) with positive sizes, got {image_shape}")
    c, h, w = (int(s) for s in image_shape)
    if h % divisor or w % divisor:
        raise ValueError(
            f"image_shape {tuple(image_shape)}: the conv networks halve each side four times, so height and "
            f"width must be divisible by {divisor}; use arch='mlp' for other sizes"
        )
    return c, h, w


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """Image ``[N, C, H, W]`` -> features ``[N, out_features]`` (conv 32-32-64-64, k4 s2, dense 256)."""

    def __init__(self, image_shape: Sequence[int], out_features: int, hidden: int = 256):
        super().__init__()
        c, h, w = _check_image_shape(image_shape)
        convs: list[nn.Module] = []
        channels = (c, *CONV_CHANNELS)
        for n_in, n_out in zip(channels[:-1], channels[1:]):
            convs += [nn.Conv2d(n_in, n_out, kernel_size=4, stride=2, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*convs)
        flat = CONV_CHANNELS[-1] * (h // 16) * (w // 16)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x))


class ConvDecoder(nn.Module):
    """Code ``[N, in_features]`` -> image-shaped output ``[N, C, H, W]`` (mirror of :class:`ConvEncoder`)."""

    def __init__(self, image_shape: Sequence[int], in_features: int, hidden: int = 256):
        super().__init__()
        c, h, w = _check_image_shape(image_shape)
        self._grid = (CONV_CHANNELS[-1], h // 16, w // 16)
        self.head = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, int(torch.tensor(self._grid).prod())),
            nn.ReLU(),
        )
        deconvs: list[nn.Module] = []
        channels = (*CONV_CHANNELS[::-1], c)
        for i, (n_in, n_out) in enumerate(zip(channels[:-1], channels[1:])):
            deconvs.append(nn.ConvTranspose2d(n_in, n_out, kernel_size=4, stride=2, padding=1))
            if i < len(channels) - 2:
                deconvs.append(nn.ReLU())
        self.deconvs = nn.Sequential(*deconvs)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.head(z).view(-1, *self._grid))


class MLPEncoder(nn.Module):
    """Image -> features through dense layers; the small option for tests and tiny images."""

    def __init__(self, image_shape: Sequence[int], out_features: int, hidden: Sequence[int] = (512, 256)):
        super().__init__()
        n_in = int(torch.tensor(tuple(image_shape)).prod())
        self.net = nn.Sequential(nn.Flatten(), mlp((n_in, *hidden, out_features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPDecoder(nn.Module):
    """Code -> image-shaped output through dense layers."""

    def __init__(self, image_shape: Sequence[int], in_features: int, hidden: Sequence[int] = (256, 512)):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        n_out = int(torch.tensor(self.image_shape).prod())
        self.net = mlp((in_features, *hidden, n_out))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.image_shape)


def make_encoder_decoder(
    arch: str, image_shape: Sequence[int], latent_dim: int, hidden: int | Sequence[int] | None = None
) -> tuple[nn.Module, nn.Module]:
    """The encoder (emitting ``2 * latent_dim`` features: location and raw scale) and decoder for ``arch``."""
    if arch == "conv":
        kw = {} if hidden is None else {"hidden": int(hidden)}
        return ConvEncoder(image_shape, 2 * latent_dim, **kw), ConvDecoder(image_shape, latent_dim, **kw)
    if arch == "mlp":
        h = (512, 256) if hidden is None else ((int(hidden),) if isinstance(hidden, int) else tuple(hidden))
        return MLPEncoder(image_shape, 2 * latent_dim, h), MLPDecoder(image_shape, latent_dim, h[::-1])
    raise ValueError(f"unknown arch {arch!r}: expected 'conv' or 'mlp'")
