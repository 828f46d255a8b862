"""Procedural dSprites: the 737,280 binary 64x64 sprite images over six ground-truth factors.

This is a faithful regeneration of the *factor structure* of the dSprites release (Matthey et al., 2017):
the same factor names, grid sizes, factor values, index ordering and the ``latents_values`` /
``latents_classes`` / ``latents_sizes`` arrays. It is not a pixel copy: the original ``.npz`` is not
available offline, so the shapes are drawn here from implicit functions (square, 1:2 ellipse, classic heart
curve), supersampled and thresholded to {0, 1}. Disentanglement metrics only need the factor structure and
a deterministic, exactly controllable generator, which this provides.

Geometry. Every (shape, scale, orientation) sprite is rendered once into a ``PATCH_SIZE`` x ``PATCH_SIZE``
patch centred on its middle pixel (a bank of 3 * 6 * 40 = 720 patches, built lazily in ~0.2 s). An image is
the patch pasted into a zero 64x64 canvas with its top-left corner at ``(MARGIN + posY, MARGIN + posX)``
(row, column), so one position class step is exactly one pixel, the sprite centre runs over pixels 16..47 on
both axes (a 16 px margin on each side) and rows / columns 0 and 63 are always empty. At scale 1 the square
is 17 px wide, the ellipse 19 x 9 px and the heart 17 x 17 px, similar to the original sprites.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from probrep import _checks

IMAGE_SIZE = 64
PATCH_SIZE = 25
# Symmetric margins: MARGIN + 31 position steps + PATCH_SIZE + MARGIN == 64.
MARGIN = (IMAGE_SIZE - PATCH_SIZE - 31) // 2
SUPERSAMPLE = 4

FACTOR_NAMES: tuple[str, ...] = ("color", "shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES: tuple[int, ...] = (1, 3, 6, 40, 32, 32)
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")

# Shape sizes in pixels at scale 1. Square half side 8.2: the only range, [8.125, 8.25), for which the
# axis-aligned square is 7, 9, 11, 13, 15, 17 px wide over the six scales (one distinct width per scale), and
# no sample point comes within 0.005 px of its edge at any scale, so float noise cannot flip a pixel.
# Ellipse semi-axes 10 x 5 (the original's elongated 1:2 ellipse). The heart curve spans x in
# [-1.139, 1.139], y in [-1, 1.2367]; 8 px per unit makes it 17 px wide. All shapes lie within 11.6 px of
# the centre (the square's corner), so pixels of the patch's outer ring (>= 11.5 px away) are never more than
# half covered: no sprite is clipped by its 25 px patch (checked in the tests).
_SQUARE_HALF = 8.2
_ELLIPSE_AXES = (10.0, 5.0)
_HEART_UNIT = 8.0
# Midpoint of the heart's vertical extent (-1 and the numerically maximised top 1.2366592), used to move the
# bounding box centre to the origin so the heart rotates about its middle like the other shapes.
_HEART_Y_CENTRE = (1.2366591700122413 - 1.0) / 2.0

_TWO_PI = 2.0 * np.pi


def _factor_values() -> list[np.ndarray]:
    return [
        np.array([1.0]),
        np.array([1.0, 2.0, 3.0]),
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, _TWO_PI, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    ]


def _strides(sizes: Sequence[int]) -> np.ndarray:
    # Row-major: the last factor (posY) varies fastest.
    return np.array([int(np.prod(sizes[i + 1 :])) for i in range(len(sizes))], dtype=np.int64)


def _cos_sin(angle: float) -> tuple[float, float]:
    """Cosine and sine of ``angle`` reduced mod 2*pi, exact at multiples of pi/2.

    Exactness matters: a quarter turn must map the symmetric sample grid exactly onto itself, and float
    noise like cos(pi/2) = 6e-17 could flip a sample lying on a shape edge.
    """
    a = float(np.mod(angle, _TWO_PI))
    quarter = a / (np.pi / 2.0)
    k = round(quarter)
    if abs(quarter - k) < 1e-9:
        return ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[k % 4]
    return float(np.cos(a)), float(np.sin(a))


def _sample_offsets(size: int, supersample: int) -> np.ndarray:
    """Sub-pixel sample coordinates along one axis, relative to the patch centre, shape [size, supersample].

    The points are symmetric about the centre, so x -> -x and x <-> y map the 2-D grid onto itself.
    """
    centre = (size - 1) / 2.0
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    return (np.arange(size)[:, None] - centre) + sub[None, :]


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of body-frame points (pixels at scale 1, y pointing up) in the given shape class."""
    if shape == 0:
        return (np.abs(u) <= _SQUARE_HALF) & (np.abs(v) <= _SQUARE_HALF)
    if shape == 1:
        a, b = _ELLIPSE_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if shape == 2:
        x = u / _HEART_UNIT
        y = v / _HEART_UNIT + _HEART_Y_CENTRE
        r2 = x * x + y * y - 1.0
        return r2 * r2 * r2 - x * x * y * y * y <= 0.0
    raise ValueError(f"shape class must be 0 (square), 1 (ellipse) or 2 (heart), got {shape!r}")


def _render_patches(
    shape: int, scale: float, angles: Sequence[float], size: int = PATCH_SIZE, supersample: int = SUPERSAMPLE
) -> np.ndarray:
    """Render one shape at one scale for several angles at once -> uint8 [len(angles), size, size]."""
    _checks.real(scale, "scale", positive=True)
    off = _sample_offsets(size, supersample)
    # Image coordinates of every sample: x to the right (columns), y up (minus rows), so positive angles
    # rotate counter-clockwise on screen and the heart stands upright at angle 0.
    x = np.broadcast_to(off[None, None, :, :], (size, supersample, size, supersample))
    y = np.broadcast_to(-off[:, :, None, None], (size, supersample, size, supersample))
    cs = np.array([_cos_sin(a) for a in angles], dtype=np.float64).reshape(-1, 2)
    c = cs[:, 0, None, None, None, None]
    s = cs[:, 1, None, None, None, None]
    # Inverse-rotate and unscale the samples into the shape's body frame.
    u = (c * x + s * y) / scale
    v = (c * y - s * x) / scale
    hits = _inside(shape, u, v)
    coverage = hits.sum(axis=(2, 4), dtype=np.int32)
    # Coverage threshold 0.5, strict: a tie (exactly half the samples inside) counts as outside. With >= the
    # axis-aligned square would light its half-covered edge pixels but not the quarter-covered corners.
    return (2 * coverage > supersample * supersample).astype(np.uint8)


def render_sprite(
    shape: int, scale: float, angle: float, size: int = PATCH_SIZE, supersample: int = SUPERSAMPLE
) -> np.ndarray:
    """Render one sprite centred in a ``size`` x ``size`` patch -> uint8 array in {0, 1}.

    ``shape`` is the shape class (0 square, 1 ellipse, 2 heart), ``scale`` the dSprites scale value (1.0 is
    full size) and ``angle`` any rotation in radians (counter-clockwise). Used to build the patch bank and to
    render orientations off the dSprites grid.
    """
    if int(shape) not in (0, 1, 2):
        raise ValueError(f"shape class must be 0 (square), 1 (ellipse) or 2 (heart), got {shape!r}")
    return _render_patches(int(shape), float(scale), [float(angle)], size, supersample)[0]


class DSprites:
    """The dSprites dataset regenerated procedurally; images are rendered on demand, never stored.

    Indexing follows the original release: ``index = classes @ strides`` with posY varying fastest.
    """

    factor_names: tuple[str, ...] = FACTOR_NAMES
    factor_sizes: tuple[int, ...] = FACTOR_SIZES
    image_shape: tuple[int, int, int] = (1, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(self) -> None:
        self.factor_values: list[np.ndarray] = _factor_values()
        self.latents_sizes: np.ndarray = np.array(FACTOR_SIZES, dtype=np.int64)
        self.strides: np.ndarray = _strides(FACTOR_SIZES)
        self._num = int(np.prod(FACTOR_SIZES))
        self._bank: np.ndarray | None = None
        self._latents_classes: np.ndarray | None = None
        self._latents_values: np.ndarray | None = None

    def __len__(self) -> int:
        return self._num

    def __repr__(self) -> str:
        return f"DSprites(n={self._num}, factor_sizes={self.factor_sizes})"

    def __getstate__(self) -> dict[str, Any]:
        # Drop the ~70 MB latents caches when pickled to DataLoader workers; they are cheap to rebuild.
        state = self.__dict__.copy()
        state["_latents_classes"] = None
        state["_latents_values"] = None
        return state

    # ------------------------------------------------------------------ factor bookkeeping

    @property
    def latents_classes(self) -> np.ndarray:
        """int64 [737280, 6] factor classes of every image, in index order (computed on first access)."""
        if self._latents_classes is None:
            self._latents_classes = self.index_to_classes(np.arange(self._num, dtype=np.int64))
        return self._latents_classes

    @property
    def latents_values(self) -> np.ndarray:
        """float64 [737280, 6] factor values of every image, as in the original release."""
        if self._latents_values is None:
            cls = self.latents_classes
            self._latents_values = np.stack([vals[cls[:, f]] for f, vals in enumerate(self.factor_values)], axis=1)
        return self._latents_values

    def index_to_classes(self, idx: int | np.ndarray | Sequence[int]) -> np.ndarray:
        """Image index (int or int array) -> factor classes, int64 [6] or [N, 6]."""
        arr = self._check_indices(idx)
        out = (arr[..., None] // self.strides) % self.latents_sizes
        return out.astype(np.int64)

    def classes_to_index(self, classes: np.ndarray | Sequence[int] | Sequence[Sequence[int]]) -> int | np.ndarray:
        """Factor classes [6] or [N, 6] -> image index (int) or int64 [N]."""
        cls = self._check_classes(classes)
        index = cls @ self.strides
        return int(index) if cls.ndim == 1 else index

    def sample_factors(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw ``n`` factor-class vectors uniformly over the grid -> int64 [n, 6].

        ``rng`` is a numpy Generator or an int seed (same seed -> same result).
        """
        n = _checks.integer(n, "n", 0)
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        # Independent uniform classes per factor are uniform over the product grid.
        cols = [gen.integers(0, size, size=int(n), dtype=np.int64) for size in self.factor_sizes]
        return np.stack(cols, axis=1)

    def scm(self, confounding: float = 0.0):
        """The factors as a structural causal model (see :mod:`probrep.data.sprites_scm`)."""
        from probrep.data.sprites_scm import dsprites_scm

        return dsprites_scm(self.factor_sizes, confounding)

    def sample_scm(self, scm, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` factor vectors from ``scm`` (e.g. ``self.scm().do(...)``) and render them.

        Returns ``(classes int64 [n, 6], images float32 [n, 1, 64, 64])``.
        """
        from probrep.data.sprites_scm import classes_from_samples

        classes = classes_from_samples(scm.sample(n, seed=seed, backend="numpy"), self.factor_sizes)
        return classes, self.render(classes)

    def _check_indices(self, idx: Any) -> np.ndarray:
        arr = np.asarray(idx)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"indices must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        bad = (arr < 0) | (arr >= self._num)
        if bad.any():
            raise IndexError(f"index {int(arr[bad].flat[0])} out of range [0, {self._num})")
        return arr

    def _check_classes(self, classes: Any) -> np.ndarray:
        cls = np.asarray(classes)
        if cls.ndim not in (1, 2) or cls.shape[-1] != len(self.factor_sizes):
            raise ValueError(f"classes must have shape [6] or [N, 6], got {cls.shape}")
        if cls.dtype == np.bool_ or not np.issubdtype(cls.dtype, np.integer):
            raise ValueError(f"classes must be integers, got dtype {cls.dtype}")
        cls = cls.astype(np.int64, copy=False)
        for f, (name, size) in enumerate(zip(self.factor_names, self.factor_sizes)):
            col = cls[..., f]
            bad = (col < 0) | (col >= size)
            if bad.any():
                raise ValueError(f"factor {name!r} has class {int(col[bad].flat[0])} outside [0, {size})")
        return cls

    # ------------------------------------------------------------------ rendering

    @property
    def patch_bank(self) -> np.ndarray:
        """uint8 [3, 6, 40, PATCH_SIZE, PATCH_SIZE]: every (shape, scale, orientation) sprite, built once."""
        if self._bank is None:
            scales = self.factor_values[2]
            angles = self.factor_values[3]
            bank = np.empty((3, len(scales), len(angles), PATCH_SIZE, PATCH_SIZE), dtype=np.uint8)
            for shape in range(3):
                for k, scale in enumerate(scales):
                    bank[shape, k] = _render_patches(shape, float(scale), angles)
            self._bank = bank
        return self._bank

    def _render_into(self, cls: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
        """Paste the bank patches of validated classes [N, 6] into a new zero array [N, 64, 64]."""
        n = cls.shape[0]
        out = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=dtype)
        if n == 0:
            return out
        bank = self.patch_bank
        # A writeable window view of shape [N, 40, 40, P, P]: element [i, r, c] is the P x P block of image i
        # whose top-left corner is (r, c), so one fancy-indexed assignment copies all N patches at once.
        windows = np.lib.stride_tricks.sliding_window_view(out, (PATCH_SIZE, PATCH_SIZE), axis=(1, 2), writeable=True)
        rows = MARGIN + cls[:, 5]
        cols = MARGIN + cls[:, 4]
        windows[np.arange(n), rows, cols] = bank[cls[:, 1], cls[:, 2], cls[:, 3]]
        return out

    def render(self, classes: np.ndarray | Sequence[int] | Sequence[Sequence[int]]) -> np.ndarray:
        """Factor classes [N, 6] -> float32 images [N, 1, 64, 64] in {0, 1}; classes [6] -> one [1, 64, 64].

        Raises ValueError naming the factor and the offending class when a class is out of range.
        """
        cls = self._check_classes(classes)
        imgs = self._render_into(cls.reshape(-1, len(self.factor_sizes)), np.float32)[:, None]
        return imgs[0] if cls.ndim == 1 else imgs

    def __getitem__(self, idx: int | np.ndarray | Sequence[int] | slice) -> np.ndarray:
        """Image(s) by index: int -> float32 [1, 64, 64]; int array [N] -> [N, 1, 64, 64].

        Negative indices are rejected (IndexError) rather than wrapped, to catch off-by-one bugs early.
        """
        if isinstance(idx, slice):
            idx = np.arange(self._num, dtype=np.int64)[idx]
        return self.render(self.index_to_classes(idx))

    def images(self, indices: np.ndarray | Sequence[int] | None = None, dtype: Any = np.uint8) -> np.ndarray:
        """Materialise images [N, 1, 64, 64] as uint8 (default) or float32.

        All 737,280 images take 3.0 GB as uint8 (12 GB as float32); prefer ``render`` on batches or
        ``torch_dataset`` unless the whole array is really needed.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.uint8), np.dtype(np.float32)):
            raise ValueError(f"dtype must be uint8 or float32, got {dtype}")
        idx = np.arange(self._num, dtype=np.int64) if indices is None else np.asarray(indices)
        cls = self.index_to_classes(idx).reshape(-1, len(self.factor_sizes))
        out = np.empty((cls.shape[0], 1, IMAGE_SIZE, IMAGE_SIZE), dtype=dtype)
        # Chunked so no temporary copy of the full result is ever alive.
        chunk = 65536
        for start in range(0, cls.shape[0], chunk):
            out[start : start + chunk, 0] = self._render_into(cls[start : start + chunk], dtype)
        return out

    def torch_dataset(
        self, indices: np.ndarray | Sequence[int] | None = None, return_factors: bool = True
    ) -> DSpritesTorchDataset:
        """A torch Dataset over ``indices`` (default: all images) rendering each item when accessed.

        Items are ``(image float32 [1, 64, 64], classes int64 [6])``, or just the image when
        ``return_factors`` is False.
        """
        return DSpritesTorchDataset(self, indices, return_factors)


class DSpritesTorchDataset(Dataset):
    """torch view of a :class:`DSprites` subset; renders on access so memory stays constant."""

    def __init__(
        self,
        sprites: DSprites,
        indices: np.ndarray | Sequence[int] | None = None,
        return_factors: bool = True,
    ) -> None:
        self.sprites = sprites
        if indices is None:
            self.indices = np.arange(len(sprites), dtype=np.int64)
        else:
            self.indices = sprites._check_indices(np.asarray(indices).reshape(-1))
        self.return_factors = return_factors

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not -len(self.indices) <= i < len(self.indices):
            raise IndexError(f"item {i} out of range for dataset of length {len(self.indices)}")
        cls = self.sprites.index_to_classes(self.indices[i])
        img = torch.from_numpy(self.sprites.render(cls))
        if self.return_factors:
            return img, torch.from_numpy(cls)
        return img

    def __getitems__(self, items: list[int]) -> list[Any]:
        # DataLoader's batched fetch: render the whole batch in one vectorised call.
        cls = self.sprites.index_to_classes(self.indices[np.asarray(items, dtype=np.int64)])
        imgs = torch.from_numpy(self.sprites.render(cls))
        if self.return_factors:
            cls_t = torch.from_numpy(cls)
            return [(imgs[k], cls_t[k]) for k in range(len(items))]
        return [imgs[k] for k in range(len(items))]
