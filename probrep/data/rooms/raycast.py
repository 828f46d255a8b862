"""A batched ray caster in torch for the GQN rooms: analytic ray/primitive intersections, Lambert shading.

World frame: y points up, the floor is the plane y = 0, the room is the square |x| <= L, |z| <= L with walls of
height ``wall_height`` and sky above them. Every object rests on the floor; its *size* s sets all its
dimensions:

    sphere    centre (0, s, 0), radius s
    box       |x| <= s, 0 <= y <= 2s, |z| <= s in its own frame (turned by its yaw about the y axis)
    cylinder  radius s, 0 <= y <= 2s, closed by a top cap
    cone      base radius s on the floor, apex at y = 2s:  x^2 + z^2 = (1/2)^2 (2s - y)^2

A pixel's colour is ``albedo * (ambient + (1 - ambient) * max(0, n . l) * lit)`` for a directional light l,
where ``lit`` is 0 when a shadow ray towards the light hits an object (with ``shadows=True``) and 1 otherwise;
the sky is unshaded. Vectors are kept as (x, y, z) tuples of contiguous tensors (structure of arrays: strided
xyz triples are several times slower on the CPU), and each shape's intersection runs only on the
(image, object) pairs that hold that shape. Everything runs on the device of the tensors it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SHAPES: tuple[str, ...] = ("sphere", "box", "cylinder", "cone")
#: surface ids of the background in the id map; objects are 0 .. max_objects - 1
SKY, FLOOR, WALL = -1, -2, -3
#: the walls, in the order of per-wall colours: the planes x = +L, x = -L, z = +L, z = -L
WALL_ORDER = ("+x", "-x", "+z", "-z")
_EPS = 1e-4
_INF = float("inf")

Vec = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Lighting:
    """A directional light (towards the light, normalised on use), the ambient share and the sky colour."""

    direction: tuple[float, float, float] = (-0.45, 1.0, 0.3)
    ambient: float = 0.45
    sky: tuple[float, float, float] = (0.62, 0.78, 0.95)


def camera_basis(yaw: torch.Tensor, pitch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward, right and up unit vectors ``[..., 3]`` of a camera with heading ``yaw`` and elevation ``pitch``.

    forward = (cos p cos y, sin p, cos p sin y); right = (-sin y, 0, cos y) = forward x (0, 1, 0) / cos p;
    up = right x forward.
    """
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    forward = torch.stack([cp * cy, sp, cp * sy], dim=-1)
    right = torch.stack([-sy, torch.zeros_like(sy), cy], dim=-1)
    up = torch.linalg.cross(right, forward, dim=-1)
    return forward, right, up


def camera_rays(yaw: torch.Tensor, pitch: torch.Tensor, size: int, fov: float) -> Vec:
    """Unit directions ``([I, size * size],) * 3`` of pinhole rays through pixel centres, row 0 at the top.

    Pixel (i, j) looks along ``f + a (2 (j + 0.5) / size - 1) r + a (1 - 2 (i + 0.5) / size) u``, a = tan(fov / 2).
    """
    forward, right, up = camera_basis(yaw, pitch)
    a = math.tan(fov / 2.0)
    steps = (torch.arange(size, device=yaw.device, dtype=yaw.dtype) + 0.5) * (2.0 / size) - 1.0
    ys, xs = torch.meshgrid(-steps * a, steps * a, indexing="ij")
    xs, ys = xs.reshape(1, -1), ys.reshape(1, -1)
    d = [forward[:, c, None] + xs * right[:, c, None] + ys * up[:, c, None] for c in range(3)]
    norm = torch.rsqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    return d[0] * norm, d[1] * norm, d[2] * norm


def _safe(d: torch.Tensor) -> torch.Tensor:
    """Direction components bounded away from zero, so 1/d stays finite and keeps its sign."""
    return torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)


def _roots(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Roots of a t^2 + 2 b t + c = 0 (nan where there are none or a ~ 0)."""
    disc = b * b - a * c
    bad = (disc < 0) | (a.abs() < 1e-12)
    root = torch.sqrt(disc.clamp_min(0.0))
    inv = 1.0 / torch.where(bad, torch.ones_like(a), a)
    nan = torch.full_like(a, float("nan"))
    return torch.where(bad, nan, (-b - root) * inv), torch.where(bad, nan, (-b + root) * inv)


def _keep(t: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid & (t > _EPS), t, torch.full_like(t, _INF))


def _finite(t: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(t), t, torch.zeros_like(t))


def intersect_sphere(p: Vec, d: Vec, s: torch.Tensor) -> tuple[torch.Tensor, Vec]:
    """Distance ``t`` (inf on a miss) and outward normal of rays ``p + t d`` (object frame, |d| = 1)."""
    qx, qy, qz = p[0], p[1] - s, p[2]
    b = qx * d[0] + qy * d[1] + qz * d[2]
    c = qx * qx + qy * qy + qz * qz - s * s
    disc = b * b - c
    t = _keep(-b - torch.sqrt(disc.clamp_min(0.0)), disc > 0)
    tf, inv = _finite(t), 1.0 / s
    return t, ((qx + tf * d[0]) * inv, (qy + tf * d[1]) * inv, (qz + tf * d[2]) * inv)


def intersect_box(p: Vec, d: Vec, s: torch.Tensor) -> tuple[torch.Tensor, Vec]:
    """Slab test against [-s, s] x [0, 2s] x [-s, s]; the normal is that of the entry face."""
    lo, hi = (-s, torch.zeros_like(s), -s), (s, 2 * s, s)
    near, far, signs = [], [], []
    for c in range(3):
        dc = _safe(d[c])
        t1, t2 = (lo[c] - p[c]) / dc, (hi[c] - p[c]) / dc
        near.append(torch.minimum(t1, t2))
        far.append(torch.maximum(t1, t2))
        signs.append(-torch.sign(dc))
    t_near = torch.maximum(torch.maximum(near[0], near[1]), near[2])
    t_far = torch.minimum(torch.minimum(far[0], far[1]), far[2])
    t = _keep(t_near, t_near < t_far)
    is_x = near[0] >= torch.maximum(near[1], near[2])
    is_y = ~is_x & (near[1] >= near[2])
    is_z = ~is_x & ~is_y
    zero = torch.zeros_like(t)
    return t, (torch.where(is_x, signs[0], zero), torch.where(is_y, signs[1], zero), torch.where(is_z, signs[2], zero))


def intersect_cylinder(p: Vec, d: Vec, s: torch.Tensor) -> tuple[torch.Tensor, Vec]:
    """The side x^2 + z^2 = s^2 for 0 <= y <= 2s, and the top cap y = 2s."""
    (px, py, pz), (dx, dy, dz) = p, d
    t_side, _ = _roots(dx * dx + dz * dz, px * dx + pz * dz, px * px + pz * pz - s * s)
    y = py + t_side * dy
    t_side = _keep(t_side, (y >= 0) & (y <= 2 * s))
    dy_safe = _safe(dy)
    t_cap = (2 * s - py) / dy_safe
    cx, cz = px + t_cap * dx, pz + t_cap * dz
    t_cap = _keep(t_cap, cx * cx + cz * cz <= s * s)
    side = t_side <= t_cap
    t = torch.minimum(t_side, t_cap)
    tf, inv, zero = _finite(t), 1.0 / s, torch.zeros_like(t)
    nx = torch.where(side, (px + tf * dx) * inv, zero)
    nz = torch.where(side, (pz + tf * dz) * inv, zero)
    return t, (nx, torch.where(side, zero, -torch.sign(dy_safe)), nz)


def intersect_cone(p: Vec, d: Vec, s: torch.Tensor) -> tuple[torch.Tensor, Vec]:
    """The side x^2 + z^2 = k^2 (h - y)^2 for 0 <= y <= h, h = 2s, k = 1/2; the base lies on the floor."""
    k2 = 0.25
    (px, py, pz), (dx, dy, dz) = p, d
    h = 2 * s
    w = h - py
    r1, r2 = _roots(dx * dx + dz * dz - k2 * dy * dy, px * dx + pz * dz + k2 * w * dy, px * px + pz * pz - k2 * w * w)
    hits = []
    for r in (r1, r2):
        y = py + r * dy
        hits.append(_keep(r, (y >= 0) & (y <= h)))
    t = torch.minimum(*hits)
    tf = _finite(t)
    x, y, z = px + tf * dx, py + tf * dy, pz + tf * dz
    ny = k2 * (h - y)
    inv = torch.rsqrt((x * x + ny * ny + z * z).clamp_min(1e-12))
    return t, (x * inv, ny * inv, z * inv)


_INTERSECT = (intersect_sphere, intersect_box, intersect_cylinder, intersect_cone)


def intersect_objects(
    origin: Vec, direction: Vec, objects: dict[str, torch.Tensor], with_normals: bool = True
) -> tuple[torch.Tensor, Vec | None]:
    """Hits of rays (components ``[I, P]``, origins may be ``[I, 1]``) with the objects ``[I, M]`` of their image.

    Returns ``t [I, M, P]`` (inf where a slot is empty or missed) and world normals ``([I, M, P],) * 3``.
    ``objects`` holds ``shape`` (index into :data:`SHAPES`, -1 for an empty slot), ``size``, ``yaw`` ``[I, M]``
    and ``position`` ``[I, M, 2]`` (x, z of the base).
    """
    shape = objects["shape"]
    images, slots = shape.shape
    ref = torch.broadcast_tensors(origin[0], direction[0])[0]
    pixels = ref.shape[1]
    t = torch.full((images * slots, pixels), _INF, dtype=ref.dtype, device=ref.device)
    normal = tuple(torch.zeros_like(t) for _ in range(3)) if with_normals else None
    flat_shape = shape.reshape(-1)
    for index, fn in enumerate(_INTERSECT):
        rows = torch.nonzero(flat_shape == index).squeeze(1)  # (image, slot) pairs holding this shape
        if rows.numel() == 0:
            continue
        img, slot = rows // slots, rows % slots
        cos = torch.cos(objects["yaw"][img, slot])[:, None]
        sin = torch.sin(objects["yaw"][img, slot])[:, None]
        rx = origin[0][img] - objects["position"][img, slot, 0, None]
        ry = origin[1][img]
        rz = origin[2][img] - objects["position"][img, slot, 1, None]
        dx, dy, dz = direction[0][img], direction[1][img], direction[2][img]
        # into the object's frame: rotate by -yaw about y
        p = (cos * rx - sin * rz, ry, sin * rx + cos * rz)
        d = (cos * dx - sin * dz, dy, sin * dx + cos * dz)
        t_s, (nx, ny, nz) = fn(p, d, objects["size"][img, slot, None].clamp_min(1e-6))
        t[rows] = t_s.expand(-1, pixels)
        if normal is not None:  # back to the world frame: rotate by +yaw
            normal[0][rows] = (cos * nx + sin * nz).expand(-1, pixels)
            normal[1][rows] = ny.expand(-1, pixels)
            normal[2][rows] = (-sin * nx + cos * nz).expand(-1, pixels)
    t = t.view(images, slots, pixels)
    if normal is None:
        return t, None
    return t, tuple(n.view(images, slots, pixels) for n in normal)  # type: ignore[return-value]


def render_rays(
    origin: torch.Tensor,
    direction: Vec,
    objects: dict[str, torch.Tensor],
    wall_albedo: torch.Tensor,
    floor_albedo: torch.Tensor,
    room_half_size: float,
    wall_height: float,
    lighting: Lighting,
    shadows: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Colours ``[I, 3, P]``, surface ids ``[I, P]`` (object slot, or SKY / FLOOR / WALL) and the distance to the
    surface hit ``[I, P]`` (inf for the sky) of rays from ``origin`` along unit ``direction``.

    ``origin [I, 3]`` is each image's camera position; ``objects`` as for :func:`intersect_objects` plus
    ``albedo [I, M, 3]``; ``floor_albedo`` is ``[I, 3]``, ``wall_albedo`` ``[I, 3]`` (one colour for the room) or
    ``[I, 4, 3]`` (one per wall, in :data:`WALL_ORDER`).
    """
    dx, dy, dz = direction
    ox, oy, oz = (origin[:, c, None] for c in range(3))
    # the room: the camera is inside, so the walls are hit where the ray leaves the square
    sdx, sdy, sdz = _safe(dx), _safe(dy), _safe(dz)
    tx = (torch.sign(sdx) * room_half_size - ox) / sdx
    tz = (torch.sign(sdz) * room_half_size - oz) / sdz
    t_wall = torch.minimum(tx, tz)
    t_floor = torch.where(dy < 0, -oy / sdy, torch.full_like(dy, _INF))
    floor = t_floor < t_wall
    wall = ~floor & (oy + t_wall * dy <= wall_height)
    ids = torch.where(floor, FLOOR, torch.where(wall, WALL, SKY)).to(torch.long)
    t = torch.where(floor, t_floor, torch.where(wall, t_wall, torch.full_like(t_wall, _INF)))
    on_x = tx <= tz
    zero, one = torch.zeros_like(dx), torch.ones_like(dx)
    nx = torch.where(floor, zero, torch.where(on_x, -torch.sign(sdx), zero))
    ny = torch.where(floor, one, zero)
    nz = torch.where(floor, zero, torch.where(on_x, zero, -torch.sign(sdz)))
    if wall_albedo.dim() == 3:  # one colour per wall, in WALL_ORDER: the wall this ray leaves the square through
        which = torch.where(on_x, (sdx < 0).long(), 2 + (sdz < 0).long())  # [I, P]
        walls = [wall_albedo[:, :, c].gather(1, which) for c in range(3)]
    else:
        walls = [wall_albedo[:, c, None] for c in range(3)]
    albedo = [torch.where(floor, floor_albedo[:, c, None], walls[c]) for c in range(3)]

    t_obj, n_obj = intersect_objects((ox, oy, oz), direction, objects)
    assert n_obj is not None
    t_near, slot = t_obj.min(dim=1)  # [I, P]
    hit = t_near < t
    ids = torch.where(hit, slot, ids)
    t = torch.where(hit, t_near, t)
    pick = slot[:, None]
    nx = torch.where(hit, n_obj[0].gather(1, pick).squeeze(1), nx)
    ny = torch.where(hit, n_obj[1].gather(1, pick).squeeze(1), ny)
    nz = torch.where(hit, n_obj[2].gather(1, pick).squeeze(1), nz)
    obj_albedo = objects["albedo"].gather(1, slot[..., None].expand(-1, -1, 3))  # [I, P, 3]
    albedo = [torch.where(hit, obj_albedo[..., c], albedo[c]) for c in range(3)]

    lx, ly, lz = lighting.direction
    norm = math.sqrt(lx * lx + ly * ly + lz * lz)
    lx, ly, lz = lx / norm, ly / norm, lz / norm
    lambert = (nx * lx + ny * ly + nz * lz).clamp_min(0.0)
    sky = ids == SKY
    if shadows:
        tf = _finite(t)
        point = (ox + tf * dx + 1e-3 * nx, oy + tf * dy + 1e-3 * ny, oz + tf * dz + 1e-3 * nz)
        column = torch.ones_like(ox)  # [I, 1]: one direction for every ray of an image
        light = (column * lx, column * ly, column * lz)
        t_shadow, _ = intersect_objects(point, light, objects, with_normals=False)
        blocked = ~sky & torch.isfinite(t_shadow.min(dim=1).values)
        lambert = torch.where(blocked, torch.zeros_like(lambert), lambert)
    shade = lighting.ambient + (1.0 - lighting.ambient) * lambert
    colour = torch.stack(
        [torch.where(sky, torch.full_like(shade, lighting.sky[c]), albedo[c] * shade) for c in range(3)], dim=1
    )
    return colour, ids, t
