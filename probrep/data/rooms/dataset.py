"""The rooms as data: an ``.npz`` cache file and the GQN training examples (context views and a query).

save_rooms(rooms, "rooms32.npz", 5000)     # uint8 images, written atomically
cached = load_rooms("rooms32.npz")         # read with allow_pickle=False: data only, never code
data = GQNDataset(cached)                   # or GQNDataset(rooms, num_scenes=...) to render on demand
context_images, context_viewpoints, query_viewpoint, query_image = data.batch(range(32))
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from probrep import _checks
from probrep.data.rooms.scene import Rooms, RoomsBatch, SceneFactors, _to_uint8
from probrep.device import resolve_device
from probrep.io.files import atomic_open

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


def save_rooms(
    rooms: Rooms,
    path: str | os.PathLike,
    num_scenes: int,
    start: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    chunk: int = 256,
) -> Path:
    """Render scenes ``start .. start + num_scenes - 1`` of ``rooms`` and write them to an ``.npz``: uint8
    images ``round(255 x)``, viewpoints, cameras, factors and the generator's settings (as JSON text).

    Written to a temporary file in the same folder, flushed and renamed: a crash never leaves a partial cache.
    """
    num_scenes, start = _checks.integer(num_scenes, "num_scenes"), _checks.integer(start, "start", 0)
    path = Path(path)
    factors, yaw, pitch = rooms.scenes(np.arange(start, start + num_scenes))
    size = rooms.image_size
    images = np.empty((num_scenes, rooms.num_views, 3, size, size), np.uint8)
    for lo in tqdm(range(0, num_scenes, chunk), desc="rendering rooms", disable=not progress):
        hi = min(lo + chunk, num_scenes)
        images[lo:hi] = _to_uint8(rooms.render(factors[lo:hi], yaw[lo:hi], pitch[lo:hi], device=device)).cpu()
    arrays = {f"factor_{k}": v for k, v in factors.as_dict().items()}
    arrays["viewpoints"] = rooms.viewpoints(yaw, pitch).numpy()
    arrays["meta"] = np.array([CACHE_FORMAT, start], np.int64)
    arrays["config"] = np.array(json.dumps(rooms.config()))
    with atomic_open(path) as handle:
        np.savez(handle, images=images, camera_yaw=yaw, camera_pitch=pitch, allow_pickle=False, **arrays)
    logger.info("wrote %d rooms (%d views each) to %s", num_scenes, rooms.num_views, path)
    return path


@dataclass
class RoomsCache:
    """Scenes read from a cache: uint8 ``images [N, K, 3, H, W]``, ``viewpoints [N, K, 7]``, the factors,
    the cameras, the index of the first scene and the settings of the generator that rendered them."""

    images: torch.Tensor
    viewpoints: torch.Tensor
    factors: SceneFactors
    camera_yaw: np.ndarray
    camera_pitch: np.ndarray
    start: int
    config: dict[str, Any]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def load_rooms(path: str | os.PathLike) -> RoomsCache:
    """Read a cache written by :func:`save_rooms` with ``allow_pickle=False``: data only, never code.

    Every array is checked before use (type, shape against the others, finite values), so a damaged or foreign
    file gives a ``ValueError`` naming the file and the field instead of a bare error here or NaN in training.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rooms cache {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ValueError(f"cannot read rooms cache {path}: {exc}") from exc
    return _checked_cache(arrays, path)


def _checked_cache(arrays: dict[str, np.ndarray], path: Path) -> RoomsCache:
    def bad(field: str, problem: str) -> ValueError:
        return ValueError(f"rooms cache {path}: field {field!r} {problem}")

    meta = arrays.get("meta")
    if meta is None or meta.dtype.kind not in "iu" or meta.shape != (2,):
        raise ValueError(f"{path} is not a rooms cache of format {CACHE_FORMAT} (field 'meta' is missing or malformed)")
    if int(meta[0]) != CACHE_FORMAT:
        raise ValueError(f"{path} is not a rooms cache of format {CACHE_FORMAT} (it has format {int(meta[0])})")
    if int(meta[1]) < 0:
        raise bad("meta", f"holds a negative first scene {int(meta[1])}")
    names = ["images", "viewpoints", "camera_yaw", "camera_pitch", "config"]
    names += [f"factor_{f.name}" for f in fields(SceneFactors)]
    missing = [k for k in names if k not in arrays]
    if missing:
        raise ValueError(f"rooms cache {path} lacks {missing}")
    images = arrays["images"]
    if images.dtype != np.uint8 and images.dtype.name not in _FLOATS:
        raise bad("images", f"must be uint8 (or float16/32/64) pixels, got dtype {images.dtype}")
    if images.ndim != 5 or images.shape[2] != 3 or images.shape[1] < 1:
        raise bad("images", f"must have shape [N, K, 3, H, W], got {images.shape}")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise bad("images", "holds NaN or infinite pixels")
    n, k = images.shape[:2]
    _check_real(arrays["viewpoints"], (n, k, 7), "viewpoints", bad)
    _check_real(arrays["camera_yaw"], (n, k), "camera_yaw", bad)
    _check_real(arrays["camera_pitch"], (n, k), "camera_pitch", bad)
    factors = {}
    for f in fields(SceneFactors):
        name, value = f"factor_{f.name}", arrays[f"factor_{f.name}"]
        if value.dtype.kind not in "iuf" or value.ndim < 1 or value.shape[0] != n:
            raise bad(name, f"must be a numeric array with one row per scene ({n}), got {value.dtype} {value.shape}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise bad(name, "holds NaN or infinite values")
        factors[f.name] = value
    config = arrays["config"]
    if config.dtype.kind != "U" or config.shape != ():
        raise bad("config", f"must be JSON text, got {config.dtype} {config.shape}")
    try:
        settings = json.loads(str(config))
    except (json.JSONDecodeError, RecursionError) as exc:  # json recurses once per bracket
        raise bad("config", f"is not valid JSON: {exc}") from exc
    if not isinstance(settings, dict):
        raise bad("config", f"must be a JSON object, got {type(settings).__name__}")
    return RoomsCache(
        images=torch.from_numpy(_native(images)),
        viewpoints=torch.from_numpy(_native(arrays["viewpoints"])),
        factors=SceneFactors(**factors),
        camera_yaw=arrays["camera_yaw"],
        camera_pitch=arrays["camera_pitch"],
        start=int(meta[1]),
        config=settings,
    )


#: the float dtypes torch takes (not numpy's longdouble); either byte order, made native before torch sees it
_FLOATS = ("float16", "float32", "float64")


def _native(value: np.ndarray) -> np.ndarray:
    return value.astype(value.dtype.newbyteorder("="), copy=False)


def _check_real(value: np.ndarray, shape: tuple[int, ...], name: str, bad: Any) -> None:
    if value.dtype.name not in _FLOATS:
        raise bad(name, f"must be float16/32/64, got dtype {value.dtype}")
    if value.shape != shape:
        raise bad(name, f"must have shape {list(shape)} (N, K from 'images'), got {list(value.shape)}")
    if not np.isfinite(value).all():
        raise bad(name, "holds NaN or infinite values")


GQNBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def checked_max_context(max_context: int | None, views: int) -> int:
    """The largest number of context views for scenes of ``views`` views: ``max_context`` checked to lie in
    ``1..views - 1`` (one view is always left for the query), or ``views - 1`` when None."""
    if max_context is None:
        return views - 1
    if not 1 <= _checks.integer(max_context, "max_context") <= views - 1:
        raise ValueError(f"max_context must be in 1..{views - 1}, got {max_context}")
    return int(max_context)


class GQNDataset(Dataset):
    """Scenes as GQN training examples ``(context_images [k, 3, H, W], context_viewpoints [k, 7],
    query_viewpoint [7], query_image [3, H, W])``.

    A batch fetched through ``__getitems__`` (what :func:`probrep.inference.svi.fit` uses) shares one number of
    context views k, uniform on ``1..max_context``; each scene's context and query views are distinct views
    drawn at random. Both are a pure function of ``(seed, the batch's scene indices)``, so resumed training
    sees the same batches.

    Args:
        source: a :class:`Rooms` (scenes rendered on demand, only the views a batch needs), a
            :class:`RoomsBatch` or a :class:`RoomsCache` (uint8, converted per batch).
        num_scenes: with a ``Rooms`` source, how many scenes (from ``start``) the dataset holds.
        max_context: the largest k (default K - 1: one view is always left for the query).
        device: where on-demand rendering and the uint8 conversion happen.
    """

    def __init__(
        self,
        source: Rooms | RoomsBatch | RoomsCache,
        num_scenes: int | None = None,
        *,
        start: int = 0,
        max_context: int | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        self.device = resolve_device(device)
        self.source = source
        if isinstance(source, Rooms):
            if num_scenes is None:
                raise ValueError("with a Rooms source give num_scenes >= 1 (how many scenes to render)")
            self.size, self.views = _checks.integer(num_scenes, "num_scenes"), source.num_views
            self.start = _checks.integer(start, "start", 0)
        elif isinstance(source, (RoomsBatch, RoomsCache)):
            self.size, self.views, self.start = len(source), int(source.images.shape[1]), 0
            if num_scenes is not None:
                raise ValueError("num_scenes is only for a Rooms source")
        else:
            raise TypeError(f"source must be Rooms, RoomsBatch or RoomsCache, got {type(source).__name__}")
        if self.views < 2:
            raise ValueError(f"GQN examples need at least 2 views per scene, the source has {self.views}")
        self.max_context = checked_max_context(max_context, self.views)
        self.seed = _checks.seed(seed)

    def __len__(self) -> int:
        return self.size

    def _check(self, rows: Sequence[int]) -> np.ndarray:
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size and ((idx < 0) | (idx >= self.size)).any():
            raise IndexError(f"scene {int(idx[(idx < 0) | (idx >= self.size)][0])} out of range [0, {self.size})")
        return idx

    def batch(self, rows: Sequence[int], num_context: int | None = None) -> GQNBatch:
        """Stacked tensors for scenes ``rows``: ``[B, k, 3, H, W], [B, k, 7], [B, 7], [B, 3, H, W]``."""
        idx = self._check(rows)
        rng = np.random.default_rng([self.seed, len(idx), *idx.tolist()])
        k = (
            int(rng.integers(1, self.max_context + 1))
            if num_context is None
            else _checks.integer(num_context, "num_context")
        )
        if not 1 <= k <= self.views - 1:
            raise ValueError(f"num_context must be in 1..{self.views - 1}, got {num_context}")
        chosen = np.stack([rng.permutation(self.views)[: k + 1] for _ in idx]) if len(idx) else np.zeros((0, k + 1))
        chosen = chosen.astype(np.int64)
        images, viewpoints = self._views(idx, chosen)
        return images[:, :k], viewpoints[:, :k], viewpoints[:, k], images[:, k]

    def _views(self, idx: np.ndarray, chosen: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        src = self.source
        if isinstance(src, Rooms):
            factors, yaw, pitch = src.scenes(idx + self.start)
            yaw, pitch = np.take_along_axis(yaw, chosen, 1), np.take_along_axis(pitch, chosen, 1)
            return src.render(factors, yaw, pitch, device=self.device), src.viewpoints(yaw, pitch, self.device)
        rows = torch.as_tensor(idx, device=src.images.device)[:, None]
        cols = torch.as_tensor(chosen, device=src.images.device)
        images = src.images[rows, cols].to(self.device)
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        return images, src.viewpoints[rows.to(src.viewpoints.device), cols.to(src.viewpoints.device)].to(self.device)

    def __getitem__(self, i: int) -> GQNBatch:
        return tuple(t[0] for t in self.batch([int(i)]))  # type: ignore[return-value]

    def __getitems__(self, rows: list[int]) -> list[GQNBatch]:
        parts = self.batch(rows)
        return [tuple(t[j] for t in parts) for j in range(len(rows))]  # type: ignore[misc]
