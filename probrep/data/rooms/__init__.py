"""Procedural 3-D rooms for the Generative Query Network: scenes (``scene``), the ray caster that renders
them (``raycast``), and the context/query datasets built from them (``dataset``)."""

from probrep.data.rooms.dataset import GQNDataset, RoomsCache, load_rooms, save_rooms
from probrep.data.rooms.scene import Rooms, RoomsBatch, SceneFactors

__all__ = ["Rooms", "RoomsBatch", "SceneFactors", "GQNDataset", "RoomsCache", "load_rooms", "save_rooms"]
