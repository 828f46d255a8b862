"""Datasets with known generative factors, regenerated procedurally so they work offline."""

from probrep.data.sprites import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    SHAPE_NAMES,
    DSprites,
    DSpritesTorchDataset,
    render_sprite,
)

__all__ = ["FACTOR_NAMES", "FACTOR_SIZES", "SHAPE_NAMES", "DSprites", "DSpritesTorchDataset", "render_sprite"]
