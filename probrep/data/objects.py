"""Procedural multi-object canvases for Attend-Infer-Repeat: counted, located glyphs on a black canvas.

Each scene holds ``min_objects..max_objects`` objects (uniform count). An object is one 28x28 binary *glyph
window* from :func:`glyph_bank` (the three dSprites shapes at two sizes and six angles, and stroke glyphs: bars,
crosses, L, T, V and Z strokes, arcs, hooks and a ring, each at six angles), shrunk by a factor ``k`` drawn
around ``scale`` (default 1.3, so a window covers about 28 / 1.3 = 21.5 px) and pasted with bilinear
interpolation, fully inside the canvas; positions are redrawn until no two objects' ink boxes overlap by more
than ``max_overlap`` of the smaller box. Overlapping pixels take the maximum.

Labels come in the model's own convention (:mod:`probrep.models.air.spatial`): ``z_where = (s, x, y)`` with
``s = k * image_size / 28`` and ``(x, y)`` the window centre in normalised coordinates (-1 the left / top edge
of the canvas, +1 the right / bottom edge). The window of an object then covers the normalised square
``[x - 1/s, x + 1/s] x [y - 1/s, y + 1/s]``. Canvas pixel centre ``j + 0.5`` sits at ``X = 2 (j + 0.5) / H - 1``
and reads glyph pixel coordinate ``((s (X - x) + 1) * 28 - 1) / 2``: exactly ``grid_sample`` with
``align_corners=False`` and zero padding, done here in numpy (separably, as two interpolation matrices) so that
the data and the model's transformer are independent implementations of one convention.

    scenes = MultiObjects().sample(1000, seed=0)          # 50x50, 0 to 2 objects
    scenes.images        # float32 [1000, 1, 50, 50] in [0, 1]
    scenes.counts        # int64 [1000]
    scenes.z_where       # float32 [1000, 2, 3] (zeros where absent; scenes.present says which)
    MultiObjects.tier("small").sample(64, seed=0)          # 24x24 canvases for tests
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from probrep import _checks
from probrep.data.sprites import SHAPE_NAMES, _cos_sin, render_sprite

GLYPH_SIZE = 28
_SUPERSAMPLE = 4
_STROKE_HALF_WIDTH = 1.75  # px in the 28x28 window: strokes 3.5 px wide (4 px when axis-aligned)
_MAX_RADIUS = 10.5  # px: stroke vertices stay within this distance of the window centre
_ANGLES = tuple(2.0 * math.pi * i / 6 for i in range(6))
_SPRITE_SCALES = (0.95, 1.1)  # dSprites scale values; 1.1 keeps a rotated square off the window's border ring

# Stroke glyphs as polylines in body coordinates (pixels, y up, window centre at the origin).
_POLYLINES: dict[str, list[list[tuple[float, float]]]] = {
    "bar": [[(-10.0, 0.0), (10.0, 0.0)]],
    "cross": [[(-9.0, 0.0), (9.0, 0.0)], [(0.0, -9.0), (0.0, 9.0)]],
    "ell": [[(-7.0, 10.0), (-7.0, -9.0), (8.0, -9.0)]],
    "tee": [[(-9.0, 9.0), (9.0, 9.0)], [(0.0, 9.0), (0.0, -10.0)]],
    "vee": [[(-8.0, 9.0), (0.0, -9.0), (8.0, 9.0)]],
    "zed": [[(-8.0, 9.0), (8.0, 9.0), (-8.0, -9.0), (8.0, -9.0)]],
}
# Arcs: (radius, start angle, sweep) in radians.
_ARCS: dict[str, tuple[float, float, float]] = {
    "arc": (8.5, 0.0, math.pi),
    "hook": (8.5, 0.25 * math.pi, 1.5 * math.pi),
    "ring": (8.5, 0.0, 2.0 * math.pi),
}

TIERS: dict[str, dict[str, Any]] = {
    # 50x50, windows of about 21.5 px: the AIR benchmark's canvases
    "standard": {"image_size": 50, "scale": 1.3, "scale_spread": 0.05},
    # 24x24 with the same window-to-canvas ratio (model scale s ~ 2.3): fast enough for unit tests
    "small": {"image_size": 24, "scale": 2.7, "scale_spread": 0.1},
}


# ------------------------------------------------------------------------------------------------ glyphs
def _body_samples(size: int = GLYPH_SIZE, supersample: int = _SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample points (x right, y up) relative to the window centre, shape [size, ss, size, ss]."""
    sub = (np.arange(supersample) + 0.5) / supersample
    coords = (np.arange(size)[:, None] + sub[None, :]) - size / 2.0
    x = np.broadcast_to(coords[None, None, :, :], (size, supersample, size, supersample))
    y = np.broadcast_to(-coords[:, :, None, None], (size, supersample, size, supersample))
    return x, y


def _segment_distance(px: np.ndarray, py: np.ndarray, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    """Euclidean distance from points to the segment ab."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(px - ax - t * dx, py - ay - t * dy)


def _stroke_inside(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of body-frame points in stroke glyph ``name`` (distance to the stroke <= half width)."""
    if name in _POLYLINES:
        # shrink the glyph so that every vertex lies within _MAX_RADIUS: no rotation pushes ink off the window
        radius = max(math.hypot(px, py) for line in _POLYLINES[name] for px, py in line)
        f = min(1.0, _MAX_RADIUS / radius)
        dist = np.full(u.shape, np.inf)
        for line in _POLYLINES[name]:
            line = [(f * px, f * py) for px, py in line]
            for a, b in zip(line[:-1], line[1:]):
                dist = np.minimum(dist, _segment_distance(u, v, a, b))
        return dist <= _STROKE_HALF_WIDTH
    radius, start, sweep = _ARCS[name]
    r = np.hypot(u, v)
    phi = np.mod(np.arctan2(v, u) - start, 2.0 * math.pi)
    on_ring = np.abs(r - radius) <= _STROKE_HALF_WIDTH
    if sweep >= 2.0 * math.pi:
        return on_ring
    # round caps at both ends of the arc
    ends = [(radius * math.cos(start + a), radius * math.sin(start + a)) for a in (0.0, sweep)]
    caps = np.zeros(u.shape, dtype=bool)
    for ex, ey in ends:
        caps |= np.hypot(u - ex, v - ey) <= _STROKE_HALF_WIDTH
    return (on_ring & (phi <= sweep)) | caps


def render_stroke(name: str, angle: float, size: int = GLYPH_SIZE, supersample: int = _SUPERSAMPLE) -> np.ndarray:
    """Render stroke glyph ``name`` rotated by ``angle`` (radians, counter-clockwise) -> uint8 [size, size].

    A pixel is on when more than half of its ``supersample**2`` sample points lie within
    ``_STROKE_HALF_WIDTH`` of the stroke.
    """
    if name not in _POLYLINES and name not in _ARCS:
        raise ValueError(f"unknown stroke glyph {name!r}: expected one of {sorted(STROKE_NAMES)}")
    x, y = _body_samples(size, supersample)
    c, s = _cos_sin(angle)  # exact at quarter turns, so a 90-degree turn maps the sample grid onto itself
    u, v = c * x + s * y, c * y - s * x  # inverse rotation into the body frame
    coverage = _stroke_inside(name, u, v).sum(axis=(1, 3))
    return (2 * coverage > supersample * supersample).astype(np.uint8)


STROKE_NAMES: tuple[str, ...] = tuple(_POLYLINES) + tuple(_ARCS)


@lru_cache(maxsize=1)
def _bank() -> tuple[np.ndarray, tuple[str, ...]]:
    glyphs: list[np.ndarray] = []
    names: list[str] = []
    for shape, shape_name in enumerate(SHAPE_NAMES):
        for scale in _SPRITE_SCALES:
            for i, angle in enumerate(_ANGLES):
                glyphs.append(render_sprite(shape, scale, angle, size=GLYPH_SIZE))
                names.append(f"{shape_name}/scale{scale:g}/angle{i}")
    for name in STROKE_NAMES:
        angles = _ANGLES[:1] if name == "ring" else _ANGLES
        for i, angle in enumerate(angles):
            glyphs.append(render_stroke(name, angle))
            names.append(f"{name}/angle{i}")
    bank = np.stack(glyphs)
    bank.setflags(write=False)
    return bank, tuple(names)


def glyph_bank() -> np.ndarray:
    """All glyph windows, uint8 [G, 28, 28] in {0, 1} (read-only, built once): 36 dSprites, 49 strokes."""
    return _bank()[0]


def glyph_names() -> tuple[str, ...]:
    """A name for each glyph of :func:`glyph_bank`, e.g. ``"heart/scale1.15/angle3"`` or ``"vee/angle2"``."""
    return _bank()[1]


@lru_cache(maxsize=1)
def _glyph_extents() -> np.ndarray:
    """Tight ink box of each glyph in glyph pixel edges: float [G, 4] = (col0, row0, col1, row1)."""
    bank = glyph_bank()
    rows, cols = bank.any(axis=2), bank.any(axis=1)
    out = np.empty((len(bank), 4))
    for g in range(len(bank)):
        r, c = np.flatnonzero(rows[g]), np.flatnonzero(cols[g])
        out[g] = (c[0], r[0], c[-1] + 1, r[-1] + 1)
    return out


# ------------------------------------------------------------------------------------------------ render
def _interpolation_matrix(z_scale: np.ndarray, z_centre: np.ndarray, out_size: int, in_size: int) -> np.ndarray:
    """Bilinear weights [M, out_size, in_size] of window pixels for each canvas pixel along one axis.

    Canvas pixel j reads window coordinate ``p = ((s (X_j - c) + 1) * in_size - 1) / 2``; its weights are
    ``1 - frac(p)`` at ``floor(p)`` and ``frac(p)`` at ``floor(p) + 1``, dropped outside the window (zero
    padding), exactly as ``grid_sample(align_corners=False, padding_mode="zeros")``.
    """
    X = 2.0 * (np.arange(out_size) + 0.5) / out_size - 1.0
    p = ((z_scale[:, None] * (X[None, :] - z_centre[:, None]) + 1.0) * in_size - 1.0) / 2.0
    lo = np.floor(p)
    frac = p - lo
    lo = lo.astype(np.int64)
    weights = np.zeros((len(z_scale), out_size, in_size))
    m, j = np.meshgrid(np.arange(len(z_scale)), np.arange(out_size), indexing="ij")
    for index, w in ((lo, 1.0 - frac), (lo + 1, frac)):
        ok = (index >= 0) & (index < in_size)
        weights[m[ok], j[ok], index[ok]] += w[ok]
    return weights


def paste_windows(windows: np.ndarray, z_where: np.ndarray, image_size: int) -> np.ndarray:
    """Write windows ``[M, w, w]`` onto zero canvases at ``z_where [M, 3]`` -> float64 ``[M, H, H]``.

    The separable form of bilinear sampling: ``canvas = R @ window @ C^T`` with R, C the row and column
    interpolation matrices of :func:`_interpolation_matrix`.
    """
    windows = np.asarray(windows, dtype=np.float64)
    z_where = np.asarray(z_where, dtype=np.float64).reshape(-1, 3)
    if windows.ndim != 3 or windows.shape[1] != windows.shape[2] or len(windows) != len(z_where):
        raise ValueError(f"windows must be [M, w, w] matching z_where [M, 3], got {windows.shape} and {z_where.shape}")
    w = windows.shape[1]
    rows = _interpolation_matrix(z_where[:, 0], z_where[:, 2], image_size, w)
    cols = _interpolation_matrix(z_where[:, 0], z_where[:, 1], image_size, w)
    return np.einsum("mhi,mij,mwj->mhw", rows, windows, cols, optimize=True)


def window_boxes(z_where: np.ndarray, image_size: int) -> np.ndarray:
    """Pixel boxes ``(x0, y0, x1, y1)`` (pixel edges, 0..H) of the windows at ``z_where [..., 3]``."""
    z = np.asarray(z_where, dtype=np.float64)
    s, x, y = z[..., 0], z[..., 1], z[..., 2]
    half = image_size / (2.0 * np.where(s > 0, s, 1.0))
    cx, cy = (x + 1.0) * image_size / 2.0, (y + 1.0) * image_size / 2.0
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=-1) * (s > 0)[..., None]


# ------------------------------------------------------------------------------------------------ scenes
@dataclass
class Scenes:
    """A batch of multi-object scenes and their ground truth (K = ``max_objects`` slots per scene)."""

    images: np.ndarray  # float32 [n, 1, H, H] in [0, 1]
    counts: np.ndarray  # int64 [n]
    present: np.ndarray  # bool [n, K]: slot k holds an object (the first counts[i] slots)
    z_where: np.ndarray  # float32 [n, K, 3]: (s, x, y) in the model's convention, zeros where absent
    windows: np.ndarray  # float32 [n, K, 4]: (x0, y0, x1, y1) pixel box of each object's 28x28 window
    boxes: np.ndarray  # float32 [n, K, 4]: tight pixel box of each object's ink (zeros where absent)
    glyphs: np.ndarray  # int64 [n, K]: glyph index into glyph_bank(), -1 where absent

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, index: Any) -> Scenes:
        """A subset of the scenes (numpy indexing), e.g. ``scenes[:64]``."""
        return Scenes(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(images float32 [n, 1, H, H], counts int64 [n])`` as torch tensors."""
        return torch.from_numpy(self.images).to(device), torch.from_numpy(self.counts).to(device)


class MultiObjects:
    """Generator of procedural multi-object scenes (see the module docstring).

    Args:
        image_size: side of the square canvas in pixels.
        min_objects / max_objects: the count is uniform over ``min_objects..max_objects``.
        scale: mean shrink factor ``k`` of a 28x28 glyph window (it covers ``28 / k`` pixels).
        scale_spread: standard deviation of ``k`` (draws are clipped to +-2 spreads).
        max_overlap: largest allowed intersection of two objects' ink boxes, as a fraction of the smaller box.
        glyphs: indices into :func:`glyph_bank` to draw from (default: all).
    """

    def __init__(
        self,
        image_size: int = 50,
        *,
        min_objects: int = 0,
        max_objects: int = 2,
        scale: float = 1.3,
        scale_spread: float = 0.05,
        max_overlap: float = 0.1,
        glyphs: np.ndarray | list[int] | None = None,
    ):
        image_size = _checks.integer(image_size, "image_size", 8)
        min_objects = _checks.integer(min_objects, "min_objects", 0)
        max_objects = _checks.integer(max_objects, "max_objects", 0)
        if min_objects > max_objects:
            raise ValueError(f"min_objects ({min_objects}) must not exceed max_objects ({max_objects})")
        if max_objects > 4:
            raise ValueError(f"max_objects must be at most 4 (the canvas holds few objects), got {max_objects}")
        scale = _checks.real(scale, "scale")
        scale_spread = _checks.real(scale_spread, "scale_spread", nonnegative=True)
        if scale - 2 * scale_spread < 1.0 * GLYPH_SIZE / image_size or scale - 2 * scale_spread <= 0:
            raise ValueError(
                f"scale {scale} (spread {scale_spread}) makes a {GLYPH_SIZE}px window larger than the "
                f"{image_size}px canvas: need scale - 2 * scale_spread >= {GLYPH_SIZE / image_size:.3f}"
            )
        max_overlap = _checks.probability(max_overlap, "max_overlap", open_interval=False)
        n_glyphs = len(glyph_bank())
        chosen = np.arange(n_glyphs) if glyphs is None else np.asarray(glyphs, dtype=np.int64).reshape(-1)
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= n_glyphs:
            raise ValueError(f"glyphs must be a non-empty list of indices in [0, {n_glyphs})")
        self.image_size = int(image_size)
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        self.scale, self.scale_spread = float(scale), float(scale_spread)
        self.max_overlap = float(max_overlap)
        self.glyph_choices = chosen

    @classmethod
    def tier(cls, name: str, **overrides: Any) -> MultiObjects:
        """A preset: ``"standard"`` (50x50, windows of ~21.5 px) or ``"small"`` (24x24, for tests)."""
        if name not in TIERS:
            raise ValueError(f"unknown tier {name!r}: expected one of {sorted(TIERS)}")
        return cls(**{**TIERS[name], **overrides})

    def __repr__(self) -> str:
        return (
            f"MultiObjects(image_size={self.image_size}, objects={self.min_objects}..{self.max_objects}, "
            f"scale={self.scale}+-{self.scale_spread}, max_overlap={self.max_overlap})"
        )

    @property
    def model_scale(self) -> float:
        """The mean ``s`` of ``z_where`` these scenes have: ``scale * image_size / 28``."""
        return self.scale * self.image_size / GLYPH_SIZE

    def _ink_boxes(self, glyph: np.ndarray, z_where: np.ndarray) -> np.ndarray:
        """Pixel boxes [..., 4] of the glyphs' ink when drawn at ``z_where``."""
        ext = _glyph_extents()[glyph]  # glyph pixel edges
        s, x, y = z_where[..., 0], z_where[..., 1], z_where[..., 2]
        size = self.image_size
        # window pixel edge e -> normalised window coordinate 2e/28 - 1 -> canvas X = u/s + centre -> pixels
        to_px = lambda e, c: ((2.0 * e / GLYPH_SIZE - 1.0) / s + c + 1.0) * size / 2.0  # noqa: E731
        return np.stack(
            [to_px(ext[..., 0], x), to_px(ext[..., 1], y), to_px(ext[..., 2], x), to_px(ext[..., 3], y)], -1
        )

    def _overlaps(self, boxes: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Per scene: does any pair of present objects overlap by more than ``max_overlap``?"""
        k = boxes.shape[1]
        bad = np.zeros(len(boxes), dtype=bool)
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        for a in range(k):
            for b in range(a + 1, k):
                iw = np.minimum(boxes[:, a, 2], boxes[:, b, 2]) - np.maximum(boxes[:, a, 0], boxes[:, b, 0])
                ih = np.minimum(boxes[:, a, 3], boxes[:, b, 3]) - np.maximum(boxes[:, a, 1], boxes[:, b, 1])
                inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
                smaller = np.minimum(area[:, a], area[:, b])
                bad |= present[:, a] & present[:, b] & (inter > self.max_overlap * smaller)
        return bad

    def sample(self, n: int, seed: int | np.random.Generator = 0, max_tries: int = 1000) -> Scenes:
        """Draw ``n`` scenes; the same seed gives the same scenes."""
        n = _checks.integer(n, "n", 0)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        k_max, size = self.max_objects, self.image_size
        counts = rng.integers(self.min_objects, self.max_objects + 1, size=n)
        present = np.arange(k_max)[None, :] < counts[:, None]
        glyph = self.glyph_choices[rng.integers(0, len(self.glyph_choices), size=(n, k_max))]
        lo, hi = self.scale - 2 * self.scale_spread, self.scale + 2 * self.scale_spread
        shrink = np.clip(self.scale + self.scale_spread * rng.standard_normal((n, k_max)), lo, hi)
        s = shrink * size / GLYPH_SIZE
        z_where = np.zeros((n, k_max, 3))
        z_where[..., 0] = s
        # Whole window inside the canvas: |centre| <= 1 - 1/s; redraw positions of scenes that overlap.
        todo = np.arange(n)
        for _ in range(max_tries):
            if todo.size == 0:
                break
            limit = 1.0 - 1.0 / s[todo]
            z_where[todo, :, 1:] = limit[..., None] * rng.uniform(-1.0, 1.0, size=(todo.size, k_max, 2))
            boxes = self._ink_boxes(glyph[todo], z_where[todo])
            todo = todo[self._overlaps(boxes, present[todo])]
        if todo.size:
            raise RuntimeError(
                f"could not place {todo.size} scene(s) with max_overlap={self.max_overlap} in {max_tries} tries: "
                "allow more overlap, fewer objects or smaller objects"
            )
        images = np.zeros((n, size, size), dtype=np.float32)
        bank = glyph_bank()
        chunk = 2048
        for slot in range(k_max):  # one object per scene and slot: plain fancy indexing, no repeats
            scenes_here = np.flatnonzero(present[:, slot])
            for start in range(0, scenes_here.size, chunk):
                idx = scenes_here[start : start + chunk]
                drawn = paste_windows(bank[glyph[idx, slot]], z_where[idx, slot], size)
                images[idx] = np.maximum(images[idx], drawn)
        np.clip(images, 0.0, 1.0, out=images)
        ink = self._ink_boxes(glyph, z_where) * present[..., None]
        z_where *= present[..., None]
        return Scenes(
            images=images[:, None],
            counts=counts.astype(np.int64),
            present=present,
            z_where=z_where.astype(np.float32),
            windows=window_boxes(z_where, size).astype(np.float32),
            boxes=ink.astype(np.float32),
            glyphs=np.where(present, glyph, -1).astype(np.int64),
        )
