"""The spatial transformer of Attend-Infer-Repeat: write a window onto a canvas, read a window out of an image.

Convention (``align_corners=False``: normalised coordinate -1 is the outer edge of the first pixel, +1 of the
last; y points down). ``z_where = (s, x, y)``: the window is centred at ``(x, y)`` and covers the square of half
side ``1/s``, so on an ``H``-pixel canvas it spans ``H / s`` pixels. Writing samples the window at

    u = s (X - x),   v = s (Y - y)          (canvas point (X, Y) -> window point (u, v))

and reading samples the image at the inverse map ``X = u / s + x``, ``Y = v / s + y``. Both use
``F.affine_grid`` / ``F.grid_sample`` (bilinear, zero padding), so they are differentiable in the window, the
image and ``z_where``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["write_theta", "read_theta", "window_to_image", "image_to_window", "z_where_to_boxes"]


def _check_z_where(z_where: torch.Tensor, n: int) -> None:
    if z_where.dim() != 2 or z_where.shape[1] != 3 or z_where.shape[0] != n:
        raise ValueError(f"z_where must have shape [{n}, 3] (scale, x, y), got {tuple(z_where.shape)}")


def write_theta(z_where: torch.Tensor) -> torch.Tensor:
    """Affine maps ``[n, 2, 3]`` from canvas to window coordinates: ``[[s, 0, -s x], [0, s, -s y]]``."""
    s, x, y = z_where.unbind(-1)
    zero = torch.zeros_like(s)
    return torch.stack([s, zero, -s * x, zero, s, -s * y], dim=-1).view(-1, 2, 3)


def read_theta(z_where: torch.Tensor) -> torch.Tensor:
    """Affine maps ``[n, 2, 3]`` from window to image coordinates: ``[[1/s, 0, x], [0, 1/s, y]]``."""
    s, x, y = z_where.unbind(-1)
    inv = 1.0 / s
    zero = torch.zeros_like(s)
    return torch.stack([inv, zero, x, zero, inv, y], dim=-1).view(-1, 2, 3)


def window_to_image(windows: torch.Tensor, z_where: torch.Tensor, image_size: int) -> torch.Tensor:
    """Place windows ``[n, w, w]`` on zero canvases at ``z_where [n, 3]`` -> ``[n, H, H]``."""
    if windows.dim() != 3 or windows.shape[1] != windows.shape[2]:
        raise ValueError(f"windows must have shape [n, w, w], got {tuple(windows.shape)}")
    n = windows.shape[0]
    _check_z_where(z_where, n)
    grid = F.affine_grid(write_theta(z_where), [n, 1, image_size, image_size], align_corners=False)
    return F.grid_sample(windows.unsqueeze(1), grid, align_corners=False).view(n, image_size, image_size)


def image_to_window(images: torch.Tensor, z_where: torch.Tensor, window_size: int) -> torch.Tensor:
    """Read windows ``[n, w, w]`` out of images ``[n, H, H]`` at ``z_where [n, 3]`` (the inverse transform)."""
    if images.dim() != 3:
        raise ValueError(f"images must have shape [n, H, W], got {tuple(images.shape)}")
    n = images.shape[0]
    _check_z_where(z_where, n)
    grid = F.affine_grid(read_theta(z_where), [n, 1, window_size, window_size], align_corners=False)
    return F.grid_sample(images.unsqueeze(1), grid, align_corners=False).view(n, window_size, window_size)


def z_where_to_boxes(z_where: torch.Tensor, image_size: int) -> torch.Tensor:
    """Pixel boxes ``(x0, y0, x1, y1)`` (pixel edges, 0..H) of windows at ``z_where [..., 3]``.

    ``centre = (c + 1) H / 2`` and ``half side = H / (2 s)``.
    """
    s, x, y = z_where.unbind(-1)
    half = image_size / (2.0 * s)
    cx, cy = (x + 1.0) * image_size / 2.0, (y + 1.0) * image_size / 2.0
    return torch.stack([cx - half, cy - half, cx + half, cy + half], dim=-1)
