"""Datasets with known generative factors, regenerated procedurally so they work offline."""

from probrep.data.objects import MultiObjects, Scenes, glyph_bank, glyph_names
from probrep.data.rooms.dataset import GQNDataset, RoomsCache, load_rooms, save_rooms
from probrep.data.rooms.scene import Rooms, RoomsBatch, SceneFactors
from probrep.data.sprites import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    SHAPE_NAMES,
    DSprites,
    DSpritesTorchDataset,
    render_sprite,
)

__all__ = [
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "SHAPE_NAMES",
    "DSprites",
    "DSpritesTorchDataset",
    "render_sprite",
    "MultiObjects",
    "Scenes",
    "glyph_bank",
    "glyph_names",
    "Rooms",
    "RoomsBatch",
    "SceneFactors",
    "GQNDataset",
    "RoomsCache",
    "load_rooms",
    "save_rooms",
]
