"""Figures that runs leave behind (loss curves, image grids), with one matplotlib setup (the Agg backend unless
the caller chose another), written atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probrep.io.files import atomic_open


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_open(path) as handle:
            fig.savefig(handle, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def loss_curve(
    losses: Sequence[float], path: str | os.PathLike, ylabel: str = "negative ELBO per image (nats)"
) -> Path:
    """Per-step losses and their running mean over ~2% of the run."""
    plt = pyplot()
    losses = np.asarray(losses, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.5, alpha=0.4, label="per step")
    window = max(1, len(losses) // 50)
    if len(losses) >= window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(losses) + 1), smooth, lw=1.5, label=f"running mean ({window} steps)")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if len(losses) and losses.min() > 0 and losses.max() / losses.min() > 20:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def image_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Save ``images [rows, cols, C, H, W]`` (values in [0, 1]) as one grid PNG; an all-NaN image is left out."""
    plt = pyplot()
    images = np.asarray(images)
    if images.ndim != 5:
        raise ValueError(f"image_grid expects [rows, cols, C, H, W], got shape {images.shape}")
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9 + 1.2, rows * 0.9 + 0.4), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            if np.isnan(images[r, c]).all():  # an empty panel (a row shorter than the others)
                ax.axis("off")
                continue
            img = np.clip(images[r, c], 0, 1)
            img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            axes[r][0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
