"""Inference: SVI (``svi.fit``), the shared training loop, checkpoints, and the density-ratio trick."""

from probrep.inference import checkpoint, svi

__all__ = ["checkpoint", "svi"]
