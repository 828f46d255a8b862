"""Procedural 3-D rooms for the Generative Query Network, ray cast in torch on the CPU or a GPU.

A square room (floor, four walls, sky above them) holds 1 to 3 objects (sphere, box, cylinder, optionally cone)
of random size, position, yaw and colour (7 colours); the walls take one of 5 colours (with ``distinct_walls``, each
wall its own) and the floor one of 3.
Cameras sit on a ring (fixed radius and height) at a uniform yaw, looking at the centre of the room with a small
random pitch. A viewpoint is the 7-vector ``[x, y, z, sin(yaw), cos(yaw), sin(pitch), cos(pitch)]``.

    rooms = Rooms(image_size=32, num_views=10, seed=0)   # 64x64 by default; 32x32 is the small tier
    batch = rooms.generate(16)        # images [16, 10, 3, 32, 32] in [0, 1], viewpoints [16, 10, 7], factors
    rooms.render(SceneFactors.make(["sphere"], ["red"], [0.5], [(0, 0)]), yaw, pitch)   # scenes of your own

Scene ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` (its factors, then its cameras), so any scene
can be rendered again on its own, in any batch and on any device, and gives the same pixels. The geometry and
shading are in :mod:`probrep.data.rooms.raycast`; the cache file and the GQN training examples (``GQNDataset``) in
:mod:`probrep.data.rooms.dataset`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from probrep import _checks
from probrep.data.rooms.raycast import SHAPES, WALL_ORDER, Lighting, camera_rays, render_rays
from probrep.device import resolve_device

logger = logging.getLogger(__name__)

OBJECT_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.10),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "magenta": (0.85, 0.20, 0.80),
    "cyan": (0.10, 0.85, 0.85),
    "white": (0.95, 0.95, 0.95),
}
WALL_COLOURS: dict[str, tuple[float, float, float]] = {
    "terracotta": (0.78, 0.52, 0.42),
    "sage": (0.56, 0.70, 0.54),
    "steel": (0.50, 0.58, 0.78),
    "sand": (0.82, 0.76, 0.56),
    "lilac": (0.66, 0.55, 0.76),
}
FLOOR_COLOURS: dict[str, tuple[float, float, float]] = {
    "grey": (0.45, 0.45, 0.45),
    "wood": (0.55, 0.40, 0.26),
    "moss": (0.30, 0.44, 0.34),
}
VIEWPOINT_DIM = 7


@dataclass
class SceneFactors:
    """The ground truth of ``N`` scenes with up to ``M`` objects; empty object slots hold -1 (or 0 for floats).

    ``shape`` / ``colour`` index :data:`~probrep.data.rooms.raycast.SHAPES` / :data:`OBJECT_COLOURS`; ``position`` is
    the (x, z) of the object's base on the floor, ``yaw`` its turn about the vertical axis.
    """

    shape: np.ndarray  # int64 [N, M]
    colour: np.ndarray  # int64 [N, M]
    size: np.ndarray  # float32 [N, M]
    position: np.ndarray  # float32 [N, M, 2]
    yaw: np.ndarray  # float32 [N, M]
    wall_colour: np.ndarray  # int64 [N], or [N, 4] with one colour per wall (WALL_ORDER) in distinct_walls rooms
    floor_colour: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return int(self.shape.shape[0])

    @property
    def num_objects(self) -> np.ndarray:
        """int64 [N]: objects in each scene."""
        return (self.shape >= 0).sum(1)

    def __getitem__(self, index: Any) -> SceneFactors:
        return SceneFactors(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def concatenate(cls, parts: Sequence[SceneFactors]) -> SceneFactors:
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    @classmethod
    def make(
        cls,
        shapes: Sequence[str],
        colours: Sequence[str],
        sizes: Sequence[float],
        positions: Sequence[Sequence[float]],
        yaws: Sequence[float] | None = None,
        wall: str | Sequence[str] = "sand",
        floor: str = "grey",
        max_objects: int = 3,
    ) -> SceneFactors:
        """One scene from names, e.g. ``SceneFactors.make(["sphere"], ["red"], [0.5], [(0, 0)])``; ``wall`` is one
        name for the room, or four, one per wall in :data:`~probrep.data.rooms.raycast.WALL_ORDER`."""
        n = len(shapes)
        if not (len(colours) == len(sizes) == len(positions) == n) or (yaws is not None and len(yaws) != n):
            raise ValueError("shapes, colours, sizes, positions (and yaws) must have one entry per object")
        if n > max_objects:
            raise ValueError(f"{n} objects given but max_objects is {max_objects}")
        walls = [wall] if isinstance(wall, str) else list(wall)
        if len(walls) not in (1, len(WALL_ORDER)):
            raise ValueError(f"wall must be one colour name or {len(WALL_ORDER)} (one per wall), got {wall!r}")
        out = _empty_factors(1, max_objects, len(walls) > 1)
        for k in range(n):
            out.shape[0, k] = _lookup(list(SHAPES), shapes[k], "shape")
            out.colour[0, k] = _lookup(list(OBJECT_COLOURS), colours[k], "colour")
            out.size[0, k] = float(sizes[k])
            out.position[0, k] = [float(v) for v in positions[k]]
            out.yaw[0, k] = 0.0 if yaws is None else float(yaws[k])
        wall_ids = [_lookup(list(WALL_COLOURS), name, "wall") for name in walls]
        out.wall_colour[0] = wall_ids if len(wall_ids) > 1 else wall_ids[0]
        out.floor_colour[0] = _lookup(list(FLOOR_COLOURS), floor, "floor")
        return out


def _lookup(names: list[str], name: str, what: str) -> int:
    if name not in names:
        raise ValueError(f"unknown {what} {name!r}: expected one of {names}")
    return names.index(name)


def _empty_factors(n: int, m: int, distinct_walls: bool = False) -> SceneFactors:
    return SceneFactors(
        shape=np.full((n, m), -1, np.int64),
        colour=np.full((n, m), -1, np.int64),
        size=np.zeros((n, m), np.float32),
        position=np.zeros((n, m, 2), np.float32),
        yaw=np.zeros((n, m), np.float32),
        wall_colour=np.zeros((n, len(WALL_ORDER)) if distinct_walls else n, np.int64),
        floor_colour=np.zeros(n, np.int64),
    )


@dataclass
class RoomsBatch:
    """Rendered scenes: ``images [N, K, 3, H, W]`` (float in [0, 1], or uint8), ``viewpoints [N, K, 7]``,
    their factors and cameras."""

    images: torch.Tensor
    viewpoints: torch.Tensor
    factors: SceneFactors
    camera_yaw: np.ndarray  # [N, K]
    camera_pitch: np.ndarray  # [N, K]

    def __len__(self) -> int:
        return int(self.images.shape[0])


class Rooms:
    """The room generator and renderer.

    Args:
        image_size: side of the square images (64 by default; 32 is the small tier).
        num_views: views K rendered per scene.
        min_objects / max_objects: the number of objects is uniform on this range (1..3).
        shapes: the shapes objects are drawn from (subset of ``SHAPES``; ``"cone"`` is optional).
        colours: the object colours drawn from (names of :data:`OBJECT_COLOURS`; default all 7).
        wall_colours / floor_colours: the room colours drawn from (names of :data:`WALL_COLOURS` /
            :data:`FLOOR_COLOURS`; default all; one name fixes the room's look).
        distinct_walls: each of the four walls draws its own colour (``wall_colour`` is then ``[N, 4]``), so one
            view cannot tell the colours of the walls it does not see.
        shadows: cast shadow rays towards the light.
        supersample: render ``supersample^2`` rays per pixel and average them (anti-aliasing).
        seed: scene ``i`` comes from ``default_rng([seed, i])``.
        size_range: object size s (sphere radius, box half side, ...).
        fov: field of view of the cameras (radians).
        camera_radius / camera_height: the ring the cameras sit on.
        look_height: the cameras look at the point (0, look_height, 0), with pitch jitter ``pitch_jitter``.
        room_half_size / wall_height / spread: the room is |x|, |z| <= room_half_size; objects stand within
            ``spread`` of the centre, apart from each other.
    """

    def __init__(
        self,
        image_size: int = 64,
        num_views: int = 10,
        *,
        min_objects: int = 1,
        max_objects: int = 3,
        shapes: Sequence[str] = ("sphere", "box", "cylinder"),
        colours: Sequence[str] | None = None,
        wall_colours: Sequence[str] | None = None,
        floor_colours: Sequence[str] | None = None,
        distinct_walls: bool = False,
        shadows: bool = True,
        supersample: int = 1,
        seed: int = 0,
        size_range: tuple[float, float] = (0.3, 0.6),
        fov: float = math.radians(60.0),
        camera_radius: float = 3.4,
        camera_height: float = 1.6,
        look_height: float = 0.4,
        pitch_jitter: float = 0.1,
        room_half_size: float = 4.0,
        wall_height: float = 2.0,
        spread: float = 1.6,
        lighting: Lighting | None = None,
    ):
        image_size, num_views = _checks.integer(image_size, "image_size", 4), _checks.integer(num_views, "num_views")
        min_objects = _checks.integer(min_objects, "min_objects", 0)
        max_objects = _checks.integer(max_objects, "max_objects")
        if min_objects > max_objects:
            raise ValueError(f"min_objects ({min_objects}) must not exceed max_objects ({max_objects})")
        unknown = [s for s in shapes if s not in SHAPES]
        if unknown or not shapes:
            raise ValueError(f"shapes must be a non-empty subset of {SHAPES}, got {list(shapes)}")
        colours = _palette(colours, OBJECT_COLOURS, "colours")
        wall_colours = _palette(wall_colours, WALL_COLOURS, "wall_colours")
        floor_colours = _palette(floor_colours, FLOOR_COLOURS, "floor_colours")
        supersample, seed = _checks.integer(supersample, "supersample"), _checks.seed(seed)
        lo, hi = size_range
        if not 0 < lo <= hi:
            raise ValueError(f"size_range must satisfy 0 < low <= high, got {size_range}")
        if not 0 < camera_radius < room_half_size:
            raise ValueError(f"camera_radius must be in (0, room_half_size={room_half_size}), got {camera_radius}")
        if spread + math.sqrt(2) * hi >= camera_radius:
            raise ValueError(f"spread {spread} plus object reach {math.sqrt(2) * hi:.2f} would touch the camera ring")
        if not 0 < fov < math.pi:
            raise ValueError(f"fov must be in (0, pi) radians, got {fov}")
        self.image_size, self.num_views = image_size, num_views
        self.min_objects, self.max_objects = min_objects, max_objects
        self.shapes = tuple(shapes)
        self.colours = tuple(colours)
        self.wall_colours, self.floor_colours = tuple(wall_colours), tuple(floor_colours)
        self.distinct_walls = bool(distinct_walls)
        self.shadows, self.supersample, self.seed = bool(shadows), supersample, seed
        self.size_range = (float(lo), float(hi))
        self.fov, self.camera_radius, self.camera_height = float(fov), float(camera_radius), float(camera_height)
        self.look_height, self.pitch_jitter = float(look_height), float(pitch_jitter)
        self.room_half_size, self.wall_height, self.spread = float(room_half_size), float(wall_height), float(spread)
        self.lighting = lighting or Lighting()

    def __repr__(self) -> str:
        return (
            f"Rooms(image_size={self.image_size}, num_views={self.num_views}, objects={self.min_objects}.."
            f"{self.max_objects}, shapes={self.shapes}, colours={self.colours}, shadows={self.shadows}, "
            f"seed={self.seed})"
        )

    @property
    def base_pitch(self) -> float:
        """The pitch that looks from the ring at (0, look_height, 0): -atan((height - look) / radius)."""
        return -math.atan2(self.camera_height - self.look_height, self.camera_radius)

    # ------------------------------------------------------------------------------------------- sampling
    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index)])

    def _draw_scene(self, rng: np.random.Generator, out: SceneFactors, row: int) -> None:
        n = int(rng.integers(self.min_objects, self.max_objects + 1))
        lo, hi = self.size_range
        placed: list[tuple[float, float, float]] = []
        for k in range(n):
            shape = SHAPES.index(self.shapes[int(rng.integers(len(self.shapes)))])
            size = float(rng.uniform(lo, hi))
            reach = size * (math.sqrt(2) if SHAPES[shape] == "box" else 1.0)
            for _ in range(200):  # uniform in the disk of radius `spread`, apart from the objects placed so far
                radius, angle = self.spread * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
                x, z = radius * math.cos(angle), radius * math.sin(angle)
                if all((x - px) ** 2 + (z - pz) ** 2 >= (reach + pr + 0.05) ** 2 for px, pz, pr in placed):
                    break
            else:
                continue  # no room left: the scene keeps fewer objects
            placed.append((x, z, reach))
            out.shape[row, k] = shape
            out.size[row, k] = size
            out.position[row, k] = (x, z)
            out.yaw[row, k] = rng.uniform(0, 2 * math.pi)
            out.colour[row, k] = _pick(rng, self.colours, OBJECT_COLOURS)
        if self.distinct_walls:
            out.wall_colour[row] = [_pick(rng, self.wall_colours, WALL_COLOURS) for _ in WALL_ORDER]
        else:
            out.wall_colour[row] = _pick(rng, self.wall_colours, WALL_COLOURS)
        out.floor_colour[row] = _pick(rng, self.floor_colours, FLOOR_COLOURS)

    def _draw_cameras(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        yaw = rng.uniform(0, 2 * math.pi, self.num_views)
        pitch = self.base_pitch + rng.uniform(-self.pitch_jitter, self.pitch_jitter, self.num_views)
        return yaw.astype(np.float32), pitch.astype(np.float32)

    def scenes(self, indices: Sequence[int] | np.ndarray) -> tuple[SceneFactors, np.ndarray, np.ndarray]:
        """Factors of scenes ``indices`` and their K cameras: ``(factors, yaw [N, K], pitch [N, K])``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if (idx < 0).any():
            raise ValueError(f"scene indices must be >= 0, got {int(idx.min())}")
        out = _empty_factors(len(idx), self.max_objects, self.distinct_walls)
        yaws = np.empty((len(idx), self.num_views), np.float32)
        pitches = np.empty_like(yaws)
        for row, i in enumerate(idx):
            rng = self._rng(int(i))
            self._draw_scene(rng, out, row)
            yaws[row], pitches[row] = self._draw_cameras(rng)
        return out, yaws, pitches

    # ------------------------------------------------------------------------------------------ rendering
    def camera_position(self, yaw: torch.Tensor) -> torch.Tensor:
        """Ring position ``[..., 3]`` of a camera heading ``yaw`` at the centre: (-R cos yaw, h, -R sin yaw)."""
        r = self.camera_radius
        return torch.stack([-r * torch.cos(yaw), torch.full_like(yaw, self.camera_height), -r * torch.sin(yaw)], -1)

    def viewpoints(self, yaw: Any, pitch: Any, device: str | torch.device = "cpu") -> torch.Tensor:
        """``[..., 7]`` viewpoint vectors [x, y, z, sin(yaw), cos(yaw), sin(pitch), cos(pitch)]."""
        dev = resolve_device(device)
        yaw = torch.as_tensor(yaw, dtype=torch.float32, device=dev)
        pitch = torch.as_tensor(pitch, dtype=torch.float32, device=dev)
        angles = [torch.sin(yaw), torch.cos(yaw), torch.sin(pitch), torch.cos(pitch)]
        return torch.cat([self.camera_position(yaw), torch.stack(angles, -1)], -1)

    def render(
        self,
        factors: SceneFactors,
        yaw: Any,
        pitch: Any,
        device: str | torch.device = "cpu",
        return_ids: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Render each scene from its cameras ``yaw``/``pitch`` ``[N, V]`` -> float32 ``[N, V, 3, H, W]`` in [0, 1].

        With ``return_ids`` also the surface id of each pixel ``[N, V, H, W]`` (object slot, or
        SKY / FLOOR / WALL of :mod:`probrep.data.rooms.raycast`; the centre ray's id when supersampling).
        """
        dev = resolve_device(device)
        yaw = torch.as_tensor(np.asarray(yaw, dtype=np.float32), device=dev)
        pitch = torch.as_tensor(np.asarray(pitch, dtype=np.float32), device=dev)
        n = len(factors)
        if yaw.dim() != 2 or yaw.shape[0] != n or pitch.shape != yaw.shape:
            raise ValueError(
                f"yaw and pitch must be [N, V] with N = {n} scenes, got {tuple(yaw.shape)} and {tuple(pitch.shape)}"
            )
        if factors.shape.shape[1] < 1:
            raise ValueError("factors must have at least one object slot")
        views = yaw.shape[1]
        size, ss = self.image_size, self.supersample
        f = self._object_tensors(factors, dev)
        flat = {k: v.repeat_interleave(views, dim=0) for k, v in f.items()}  # one row per image
        yaw_f, pitch_f = yaw.reshape(-1), pitch.reshape(-1)
        total = n * views
        images = torch.empty(total, 3, size, size, device=dev)
        ids = torch.empty(total, size, size, dtype=torch.long, device=dev) if return_ids else None
        chunk = max(1, 2**17 // (size * ss) ** 2)
        for start in range(0, total, chunk):
            sl = slice(start, min(start + chunk, total))
            direction = camera_rays(yaw_f[sl], pitch_f[sl], size * ss, self.fov)
            objects = {k: flat[k][sl] for k in ("shape", "size", "position", "yaw", "albedo")}
            colour, surface, _ = render_rays(
                self.camera_position(yaw_f[sl]),
                direction,
                objects,
                flat["wall"][sl],
                flat["floor"][sl],
                self.room_half_size,
                self.wall_height,
                self.lighting,
                self.shadows,
            )
            m = colour.shape[0]
            img = colour.reshape(m, 3, size * ss, size * ss)
            if ss > 1:
                img = torch.nn.functional.avg_pool2d(img, ss)
            images[sl] = img
            if ids is not None:
                ids[sl] = surface.reshape(m, size * ss, size * ss)[:, ss // 2 :: ss, ss // 2 :: ss]
        images = images.clamp_(0.0, 1.0).reshape(n, views, 3, size, size)
        if ids is not None:
            return images, ids.reshape(n, views, size, size)
        return images

    def _object_tensors(self, factors: SceneFactors, dev: torch.device) -> dict[str, torch.Tensor]:
        palette = torch.tensor(list(OBJECT_COLOURS.values()), dtype=torch.float32, device=dev)
        colour = torch.as_tensor(factors.colour, device=dev)
        walls = torch.tensor(list(WALL_COLOURS.values()), device=dev)
        floors = torch.tensor(list(FLOOR_COLOURS.values()), device=dev)
        return {
            "shape": torch.as_tensor(factors.shape, device=dev),
            "size": torch.as_tensor(factors.size, dtype=torch.float32, device=dev),
            "position": torch.as_tensor(factors.position, dtype=torch.float32, device=dev),
            "yaw": torch.as_tensor(factors.yaw, dtype=torch.float32, device=dev),
            "albedo": palette[colour.clamp_min(0)],
            "wall": walls[torch.as_tensor(factors.wall_colour, device=dev)],
            "floor": floors[torch.as_tensor(factors.floor_colour, device=dev)],
        }

    def generate(
        self,
        num_scenes: int,
        start: int = 0,
        device: str | torch.device = "cpu",
        progress: bool = False,
        chunk: int = 64,
        as_uint8: bool = False,
    ) -> RoomsBatch:
        """Render scenes ``start .. start + num_scenes - 1`` with all their K views (float32 in [0, 1], or
        uint8 with ``as_uint8``: a quarter of the memory; :class:`GQNDataset` converts batches back)."""
        num_scenes, start = _checks.integer(num_scenes, "num_scenes", 0), _checks.integer(start, "start", 0)
        dev = resolve_device(device)
        factors, yaw, pitch = self.scenes(np.arange(start, start + num_scenes))
        parts = []
        for lo in tqdm(range(0, num_scenes, chunk), desc="rendering rooms", disable=not progress):
            hi = min(lo + chunk, num_scenes)
            block = self.render(factors[lo:hi], yaw[lo:hi], pitch[lo:hi], device=dev)
            parts.append(_to_uint8(block) if as_uint8 else block)
        size, dtype = self.image_size, torch.uint8 if as_uint8 else torch.float32
        images = torch.cat(parts) if parts else torch.empty(0, self.num_views, 3, size, size, dtype=dtype, device=dev)
        return RoomsBatch(images, self.viewpoints(yaw, pitch, dev), factors, yaw, pitch)

    # ---------------------------------------------------------------------------------------------- cache
    def config(self) -> dict[str, Any]:
        """Every setting that determines the pixels (stored in cache files)."""
        return {
            "image_size": self.image_size,
            "num_views": self.num_views,
            "min_objects": self.min_objects,
            "max_objects": self.max_objects,
            "shapes": list(self.shapes),
            "colours": list(self.colours),
            "wall_colours": list(self.wall_colours),
            "floor_colours": list(self.floor_colours),
            "distinct_walls": self.distinct_walls,
            "shadows": self.shadows,
            "supersample": self.supersample,
            "seed": self.seed,
            "size_range": list(self.size_range),
            "fov": self.fov,
            "camera_radius": self.camera_radius,
            "camera_height": self.camera_height,
            "look_height": self.look_height,
            "pitch_jitter": self.pitch_jitter,
            "room_half_size": self.room_half_size,
            "wall_height": self.wall_height,
            "spread": self.spread,
            "lighting": {
                "direction": list(self.lighting.direction),
                "ambient": self.lighting.ambient,
                "sky": list(self.lighting.sky),
            },
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Rooms:
        """The generator that :meth:`config` describes (a cache's settings, or a GQN run summary's ``rooms``)."""
        settings = dict(config)
        light = settings.pop("lighting", None)
        if light is not None:
            settings["lighting"] = Lighting(**{k: tuple(v) if isinstance(v, list) else v for k, v in light.items()})
        return cls(**settings)


def _palette(names: Sequence[str] | None, table: dict[str, Any], arg: str) -> list[str]:
    """The colour names ``names`` (all of ``table`` when None), checked: distinct, known, at least one."""
    names = list(table) if names is None else list(names)
    if not names or [c for c in names if c not in table] or len(set(names)) < len(names):
        raise ValueError(f"{arg} must be distinct names from {list(table)}, got {names}")
    return names


def _pick(rng: np.random.Generator, names: Sequence[str], table: dict[str, Any]) -> int:
    """The index in ``table`` of a name drawn uniformly from ``names``."""
    return list(table).index(names[int(rng.integers(len(names)))])


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 by rounding: round(255 x)."""
    return (images * 255.0 + 0.5).to(torch.uint8)
