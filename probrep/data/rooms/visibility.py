"""What one camera can see of another camera's view, and the same views with the objects taken out: the ground
truth behind the GQN's scene-level scores (foreground IoU, uncertainty where the context cannot see).

    seen, sky = visible_from(rooms, factors, query_yaw, query_pitch, context_yaw, context_pitch)
    empty = empty_room(rooms, factors, query_yaw, query_pitch)     # the query views without their objects

A query pixel is *seen* by the context camera when the surface point it shows lies inside the context camera's
field of view and nothing stands between that camera and the point (a ray from the context camera towards the
point first hits something no nearer than the point, up to a small relative tolerance). Sky pixels have no
surface point; they are returned separately and counted as neither seen nor unseen.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from probrep.data.rooms.raycast import SKY, camera_basis, camera_rays, render_rays
from probrep.data.rooms.scene import Rooms, SceneFactors
from probrep.device import resolve_device

#: a point counts as unoccluded when the context ray's first hit is at least (1 - _TOL) of its distance away
_TOL = 1e-3


def _angles(values: Any, n: int, dev: torch.device, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(values, dtype=np.float32), device=dev).reshape(-1)
    if t.numel() != n:
        raise ValueError(f"{name} must hold one angle per scene ({n}), got {t.numel()}")
    return t


def _cast(rooms: Rooms, objects: dict[str, torch.Tensor], origin: torch.Tensor, direction) -> tuple:
    _, ids, depth = render_rays(
        origin, direction, objects, objects["wall"], objects["floor"], rooms.room_half_size, rooms.wall_height,
        rooms.lighting, shadows=False,
    )  # fmt: skip
    return ids, depth


@torch.no_grad()
def visible_from(
    rooms: Rooms,
    factors: SceneFactors,
    query_yaw: Any,
    query_pitch: Any,
    context_yaw: Any,
    context_pitch: Any,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean maps ``[N, H, W]``: query pixels the context camera sees, and query pixels showing the sky.

    One query and one context camera per scene (angles ``[N]``), in ``rooms``' image size and field of view.
    """
    dev = resolve_device(device)
    n, size = len(factors), rooms.image_size
    qy, qp = _angles(query_yaw, n, dev, "query_yaw"), _angles(query_pitch, n, dev, "query_pitch")
    cy, cp = _angles(context_yaw, n, dev, "context_yaw"), _angles(context_pitch, n, dev, "context_pitch")
    objects = rooms._object_tensors(factors, dev)
    q_origin = rooms.camera_position(qy)
    q_dir = camera_rays(qy, qp, size, rooms.fov)
    ids, depth = _cast(rooms, objects, q_origin, q_dir)
    sky = ids == SKY
    depth = torch.where(sky, torch.zeros_like(depth), depth)
    point = [q_origin[:, c, None] + depth * q_dir[c] for c in range(3)]  # [N, P] each
    c_origin = rooms.camera_position(cy)
    towards = [point[c] - c_origin[:, c, None] for c in range(3)]
    distance = torch.sqrt(sum(w * w for w in towards)).clamp_min(1e-9)
    unit = tuple(w / distance for w in towards)
    _, hit = _cast(rooms, objects, c_origin, unit)
    unoccluded = hit >= distance * (1.0 - _TOL)
    forward, right, up = camera_basis(cy, cp)
    ahead = sum(towards[c] * forward[:, c, None] for c in range(3))
    a = math.tan(rooms.fov / 2.0)
    across = sum(towards[c] * right[:, c, None] for c in range(3)).abs()
    above = sum(towards[c] * up[:, c, None] for c in range(3)).abs()
    in_view = (ahead > 0) & (across <= a * ahead) & (above <= a * ahead)
    seen = ~sky & in_view & unoccluded
    return seen.reshape(n, size, size), sky.reshape(n, size, size)


def empty_room(
    rooms: Rooms, factors: SceneFactors, yaw: Any, pitch: Any, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """The scenes' views ``[N, V, 3, H, W]`` from cameras ``yaw``/``pitch`` ``[N, V]`` with every object removed
    (same walls, floor and light)."""
    empty = replace(factors, shape=np.full_like(factors.shape, -1))
    return rooms.render(empty, yaw, pitch, device=device)  # type: ignore[return-value]
