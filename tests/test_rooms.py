"""The procedural rooms: ray/shape intersections against closed forms, shading against hand computations,
camera facts, determinism, the cache file and the GQN example batches."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest
import torch

from probrep.data.rooms.dataset import GQNDataset, load_rooms, save_rooms
from probrep.data.rooms.raycast import FLOOR, SHAPES, SKY, WALL, Lighting, intersect_objects
from probrep.data.rooms.scene import FLOOR_COLOURS, OBJECT_COLOURS, WALL_COLOURS, Rooms, SceneFactors
from probrep.data.rooms.visibility import empty_room

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _one_object(shape: str, size: float, yaw: float = 0.0) -> dict[str, torch.Tensor]:
    return {
        "shape": torch.tensor([[SHAPES.index(shape)]]),
        "size": torch.tensor([[size]], dtype=torch.float64),
        "position": torch.zeros(1, 1, 2, dtype=torch.float64),
        "yaw": torch.tensor([[yaw]], dtype=torch.float64),
    }


def _cast(objects, origins, directions):
    """Rays [P, 3] (one image) -> t [P] and normals [P, 3]."""
    o = tuple(torch.tensor(origins, dtype=torch.float64).T[c][None] for c in range(3))
    d = torch.nn.functional.normalize(torch.tensor(directions, dtype=torch.float64), dim=-1)
    t, n = intersect_objects(o, tuple(d.T[c][None] for c in range(3)), objects)
    return t[0, 0], torch.stack([n[c][0, 0] for c in range(3)], dim=-1)


# ----------------------------------------------------------------------------------- intersections, closed form
def test_sphere_hits_at_the_closed_form_distance():
    # centre (0, 0.5, 0), radius 0.5; a ray at height 0.5 + 0.3 along -z from z = 5 meets z = sqrt(0.25 - 0.09)
    t, n = _cast(_one_object("sphere", 0.5), [(0, 0.8, 5), (0, 0.5, 5), (2, 0.5, 5)], [(0, 0, -1)] * 3)
    assert t[0].item() == pytest.approx(5 - math.sqrt(0.25 - 0.09), abs=1e-9)
    assert t[1].item() == pytest.approx(4.5, abs=1e-9)
    assert math.isinf(t[2].item())  # passes beside it
    np.testing.assert_allclose(n[0].numpy(), [0, 0.3 / 0.5, math.sqrt(0.16) / 0.5], atol=1e-9)


def test_box_faces_and_turned_box_corner():
    box = _one_object("box", 0.5)
    t, n = _cast(box, [(0, 0.2, 5), (0, 3, 0.1), (3, 0.9, 0.3)], [(0, 0, -1), (0, -1, 0), (-1, 0, 0)])
    np.testing.assert_allclose(t.numpy(), [4.5, 2.0, 2.5], atol=1e-9)  # front face z = 0.5, top y = 1, side x = 0.5
    np.testing.assert_allclose(n.numpy(), [[0, 0, 1], [0, 1, 0], [1, 0, 0]], atol=1e-9)
    # turned by 45 degrees its corner points at the ray: hit at z = 0.5 * sqrt(2)
    t, n = _cast(_one_object("box", 0.5, yaw=math.pi / 4), [(0, 0.2, 5), (0.1, 0.2, 5)], [(0, 0, -1)] * 2)
    assert t[0].item() == pytest.approx(5 - 0.5 * math.sqrt(2), abs=1e-9)
    # 0.1 to the side it meets the face z' = 0.5 of the box frame, whose world normal is (1, 0, 1) / sqrt(2)
    np.testing.assert_allclose(n[1].numpy(), [1 / math.sqrt(2), 0, 1 / math.sqrt(2)], atol=1e-9)
    assert t[1].item() == pytest.approx(5 - (0.5 * math.sqrt(2) - 0.1), abs=1e-9)


def test_cylinder_side_and_cap():
    cyl = _one_object("cylinder", 0.5)  # radius 0.5, height 1
    t, n = _cast(cyl, [(0.3, 0.5, 5), (0.2, 3, 0.1), (0, 1.2, 5)], [(0, 0, -1), (0, -1, 0), (0, 0, -1)])
    assert t[0].item() == pytest.approx(5 - math.sqrt(0.25 - 0.09), abs=1e-9)
    np.testing.assert_allclose(n[0].numpy(), [0.6, 0, 0.8], atol=1e-9)
    assert t[1].item() == pytest.approx(2.0, abs=1e-9) and n[1, 1].item() == pytest.approx(1.0)
    assert math.isinf(t[2].item())  # above the top


def test_cone_side_closed_form():
    cone = _one_object("cone", 0.5)  # base radius 0.5, apex at y = 1: radius (1 - y) / 2 at height y
    t, n = _cast(cone, [(0, 0.5, 5), (0, 0.2, 5), (0.3, 0.9, 5)], [(0, 0, -1)] * 3)
    np.testing.assert_allclose(t[:2].numpy(), [5 - 0.25, 5 - 0.4], atol=1e-9)
    assert math.isinf(t[2].item())  # at height 0.9 the cone is only 0.05 wide
    # the normal of x^2 + z^2 = (1 - y)^2 / 4 is the gradient (x, (1 - y) / 4, z), normalised
    np.testing.assert_allclose(n[0].numpy(), np.array([0, 0.125, 0.25]) / math.hypot(0.125, 0.25), atol=1e-9)


# ---------------------------------------------------------------------------------------------- rendering
@pytest.fixture(scope="module")
def rooms() -> Rooms:
    return Rooms(image_size=32, num_views=4, seed=3)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_camera_looking_at_the_centre_sees_the_central_object(shape):
    rooms = Rooms(image_size=16, shapes=SHAPES, pitch_jitter=0.1)
    scene = SceneFactors.make([shape], ["red"], [0.45], [(0.0, 0.0)])
    yaw = np.linspace(0, 2 * np.pi, 12, endpoint=False)[None].astype(np.float32)
    pitch = np.full_like(yaw, rooms.base_pitch)
    _, ids = rooms.render(scene, yaw, pitch, return_ids=True)
    centre = ids[0, :, 7:9, 7:9]
    assert (centre == 0).all(), f"{shape}: the centre pixels show surfaces {centre.unique().tolist()}"
    # with the pitch jitter the object moves up or down, but stays in the middle columns
    _, ids = rooms.render(scene, yaw, pitch + np.linspace(-0.1, 0.1, 12, dtype=np.float32), return_ids=True)
    assert (ids[0, :, :, 7:9] == 0).flatten(1).any(1).all()


def test_background_colours_are_the_lambert_closed_form():
    rooms = Rooms(image_size=32, shadows=True)
    scene = SceneFactors.make([], [], [], [], wall="steel", floor="wood")
    img, ids = rooms.render(scene, np.zeros((1, 1)), np.full((1, 1), rooms.base_pitch), return_ids=True)
    img, ids = img[0, 0], ids[0, 0]
    light = np.array(Lighting().direction) / np.linalg.norm(Lighting().direction)
    ambient = Lighting().ambient
    # camera at (-R, h, 0) heading +x: the floor faces up, the wall ahead (x = +L) faces -x
    floor = np.array(FLOOR_COLOURS["wood"]) * (ambient + (1 - ambient) * light[1])
    wall = np.array(WALL_COLOURS["steel"]) * (ambient + (1 - ambient) * max(0.0, -light[0]))
    assert ids[31, 16] == FLOOR and ids[0, 16] == SKY and ids[8, 16] == WALL
    np.testing.assert_allclose(img[:, 31, 16].numpy(), floor, atol=1e-6)
    np.testing.assert_allclose(img[:, 8, 16].numpy(), wall, atol=1e-6)
    np.testing.assert_allclose(img[:, 0, 16].numpy(), Lighting().sky, atol=1e-6)


@pytest.mark.parametrize("colour", list(OBJECT_COLOURS))
def test_objects_take_the_requested_colour(colour):
    rooms = Rooms(image_size=16)
    scene = SceneFactors.make(["sphere"], [colour], [0.5], [(0.0, 0.0)])
    img = rooms.render(scene, np.zeros((1, 1)), np.full((1, 1), rooms.base_pitch))[0, 0, :, 8, 8]
    albedo = torch.tensor(OBJECT_COLOURS[colour])
    shade = img / albedo  # Lambert scales every channel alike
    assert torch.allclose(shade, shade[0].expand(3), atol=1e-5)
    assert Lighting().ambient - 1e-6 <= shade[0].item() <= 1.0 + 1e-6


def _silhouette_widths(shape: str) -> np.ndarray:
    """Object pixels per row, top to bottom, seen level (pitch 0) from the camera height of the object middle."""
    rooms = Rooms(image_size=64, camera_height=0.5, look_height=0.5, pitch_jitter=0.0, shapes=SHAPES)
    scene = SceneFactors.make([shape], ["white"], [0.5], [(0.0, 0.0)])
    _, ids = rooms.render(scene, np.zeros((1, 1)), np.zeros((1, 1)), return_ids=True)
    widths = (ids[0, 0] == 0).sum(1).numpy()
    return widths[widths > 0]


def test_shapes_have_their_silhouettes():
    box, cylinder = _silhouette_widths("box"), _silhouette_widths("cylinder")
    assert len(set(box.tolist())) == 1  # a face-on box is a rectangle
    # a vertical cylinder seen level: straight sides; only its rims (circles seen edge-on from inside their
    # height) curve in the first and last rows
    inner = cylinder[len(cylinder) // 10 : -(len(cylinder) // 10)]
    assert len(set(inner.tolist())) == 1 and cylinder[0] < inner[0] and cylinder[-1] < inner[0]
    cone = _silhouette_widths("cone")
    body = cone[:-1]  # the last row holds the base's rim, which curves towards the camera
    assert (np.diff(body) >= 0).all() and body[0] < body[-1] / 4  # widens steadily from the apex down
    sphere = _silhouette_widths("sphere")
    # seen level from the height of its centre: a disk, symmetric top to bottom, widest in the middle rows
    assert np.array_equal(sphere, sphere[::-1]) and sphere[len(sphere) // 2] == sphere.max()
    assert sphere[0] < sphere.max() / 2
    # pinhole sizes: focal length 32 / tan(30 deg) px; the box's 1 x 1 front face is 3.4 - 0.5 away, the
    # sphere (radius 0.5, 3.4 away) subtends 2 * atan(tan(asin(0.5 / 3.4))) seen from the camera
    focal = 32 / math.tan(math.radians(30))
    assert abs(len(box) - focal / 2.9) <= 1 and abs(box[0] - focal / 2.9) <= 1
    assert abs(len(sphere) - 2 * focal * math.tan(math.asin(0.5 / 3.4))) <= 1


def test_scenes_are_seeded_and_independent_of_the_batch(rooms):
    a = rooms.generate(3)
    b = rooms.generate(3)
    assert torch.equal(a.images, b.images) and torch.equal(a.viewpoints, b.viewpoints)
    alone = rooms.generate(1, start=2)
    assert torch.equal(alone.images[0], a.images[2])
    other = Rooms(image_size=32, num_views=4, seed=4).generate(3)
    assert not torch.equal(other.images, a.images)
    # two views of one scene differ
    diff = (a.images[:, 0] - a.images[:, 1]).abs().mean(dim=(1, 2, 3))
    assert (diff > 0.01).all()


def test_factors_follow_the_requested_ranges():
    rooms = Rooms(image_size=8, min_objects=1, max_objects=3, shapes=("sphere", "cone"), size_range=(0.3, 0.5))
    f, yaw, pitch = rooms.scenes(range(200))
    counts = f.num_objects
    assert counts.min() >= 1 and counts.max() == 3
    used = f.shape[f.shape >= 0]
    assert set(used.tolist()) == {SHAPES.index("sphere"), SHAPES.index("cone")}
    sizes = f.size[f.shape >= 0]
    assert sizes.min() >= 0.3 and sizes.max() <= 0.5
    assert np.linalg.norm(f.position[f.shape >= 0], axis=-1).max() <= rooms.spread + 1e-6
    assert set(f.colour[f.shape >= 0].tolist()) == set(range(len(OBJECT_COLOURS)))
    assert f.wall_colour.max() < len(WALL_COLOURS) and f.floor_colour.max() < len(FLOOR_COLOURS)
    assert np.abs(pitch - rooms.base_pitch).max() <= rooms.pitch_jitter + 1e-6
    # objects do not overlap: base circles (boxes: their circumscribed circle) keep apart
    for row in range(len(f)):
        k = np.nonzero(f.shape[row] >= 0)[0]
        for i in k:
            for j in k[k > i]:
                gap = np.linalg.norm(f.position[row, i] - f.position[row, j]) - f.size[row, i] - f.size[row, j]
                assert gap > 0


def test_viewpoint_vector_by_hand():
    rooms = Rooms(camera_radius=3.0, camera_height=1.5, room_half_size=4.0, spread=1.0)
    v = rooms.viewpoints([math.pi / 2], [-0.2])[0]
    expected = [0.0, 1.5, -3.0, 1.0, 0.0, math.sin(-0.2), math.cos(-0.2)]
    np.testing.assert_allclose(v.numpy(), expected, atol=1e-6)


def test_cache_round_trip_without_pickle(rooms, tmp_path):
    path = save_rooms(rooms, tmp_path / "rooms.npz", 3, start=5, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["rooms.npz"]  # no temporary file left behind
    with zipfile.ZipFile(path) as z:
        assert all(name.endswith(".npy") for name in z.namelist())
    cached = load_rooms(path)
    fresh = rooms.generate(3, start=5)
    assert cached.images.dtype == torch.uint8
    assert torch.equal(cached.images, (fresh.images * 255 + 0.5).to(torch.uint8))
    assert torch.allclose(cached.viewpoints, fresh.viewpoints)
    np.testing.assert_array_equal(cached.factors.shape, fresh.factors.shape)
    np.testing.assert_array_equal(cached.factors.position, fresh.factors.position)
    assert cached.start == 5 and cached.config == rooms.config()
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_rooms(tmp_path / "missing.npz")


def test_gqn_batches_split_scenes_into_context_and_query(rooms):
    batch = rooms.generate(6)
    data = GQNDataset(batch, seed=1)
    ctx, ctx_v, q_v, q = data.batch([0, 2, 5])
    k = ctx.shape[1]
    assert 1 <= k <= 3 and ctx.shape == (3, k, 3, 32, 32) and ctx_v.shape == (3, k, 7)
    assert q_v.shape == (3, 7) and q.shape == (3, 3, 32, 32)
    for b, scene in enumerate([0, 2, 5]):
        views = [int(torch.nonzero((batch.viewpoints[scene] == v).all(1))[0]) for v in [*ctx_v[b], q_v[b]]]
        assert len(set(views)) == k + 1  # distinct views of that scene
        for img, view in zip([*ctx[b], q[b]], views):
            assert torch.equal(img, batch.images[scene, view])
    again = data.batch([0, 2, 5])
    assert all(torch.equal(x, y) for x, y in zip(again, (ctx, ctx_v, q_v, q)))
    items = data.__getitems__([1, 3])
    assert len(items) == 2 and items[0][0].shape[0] == items[1][0].shape[0]  # one k per batch
    on_the_fly = GQNDataset(rooms, num_scenes=6, seed=1).batch([0, 2, 5])
    assert all(torch.allclose(x, y) for x, y in zip(on_the_fly, (ctx, ctx_v, q_v, q)))


def test_room_palettes_fix_the_walls_and_floor():
    rooms = Rooms(image_size=8, num_views=2, wall_colours=("steel",), floor_colours=("wood", "moss"), seed=5)
    f, _, _ = rooms.scenes(range(60))
    assert set(f.wall_colour.tolist()) == {list(WALL_COLOURS).index("steel")}
    assert set(f.floor_colour.tolist()) == {list(FLOOR_COLOURS).index("wood"), list(FLOOR_COLOURS).index("moss")}
    # empty rooms with the same wall and floor seen from the same camera are the same picture
    same = np.nonzero(f.floor_colour == f.floor_colour[0])[0][:2]
    yaw, pitch = np.full((2, 1), 0.7, np.float32), np.full((2, 1), rooms.base_pitch, np.float32)
    pictures = empty_room(rooms, f[same], yaw, pitch)
    torch.testing.assert_close(pictures[0], pictures[1], rtol=0, atol=0)
    # the default draws every colour, as before the palettes existed
    g, _, _ = Rooms(image_size=8).scenes(range(200))
    assert set(g.wall_colour.tolist()) == set(range(len(WALL_COLOURS)))
    assert set(g.floor_colour.tolist()) == set(range(len(FLOOR_COLOURS)))
    for arg in ("wall_colours", "floor_colours"):
        with pytest.raises(ValueError, match=arg):
            Rooms(**{arg: ("chartreuse",)})
        with pytest.raises(ValueError, match=arg):
            Rooms(**{arg: ()})


@pytest.mark.parametrize("yaw, wall", [(0.0, 0), (math.pi / 2, 2), (math.pi, 1), (3 * math.pi / 2, 3)])
def test_distinct_walls_show_each_wall_in_its_own_colour(yaw, wall):
    """A camera on the ring at ``yaw`` faces the wall across the room (WALL_ORDER: +x, -x, +z, -z); in a room
    whose four walls differ, that wall looks exactly as in a room painted all in its colour."""
    rooms = Rooms(image_size=16, num_views=1)
    names = ["terracotta", "sage", "steel", "lilac"]
    four = SceneFactors.make([], [], [], [], wall=names)
    one = SceneFactors.make([], [], [], [], wall=names[wall])
    view = np.array([[yaw]], np.float32), np.array([[0.0]], np.float32)
    image, ids = rooms.render(four, *view, return_ids=True)
    expected = rooms.render(one, *view)
    centre = (slice(None), slice(7, 11), slice(6, 10))
    assert (ids[0, 0][centre[1:]] == WALL).all()
    torch.testing.assert_close(image[0, 0][centre], expected[0, 0][centre], rtol=0, atol=0)
    others = [SceneFactors.make([], [], [], [], wall=n) for i, n in enumerate(names) if i != wall]
    assert all(not torch.equal(rooms.render(f, *view)[0, 0][centre], image[0, 0][centre]) for f in others)


def test_distinct_walls_draw_four_colours_and_survive_the_cache(tmp_path):
    rooms = Rooms(image_size=8, num_views=2, distinct_walls=True, wall_colours=("sage", "steel"), seed=2)
    f, _, _ = rooms.scenes(range(40))
    assert f.wall_colour.shape == (40, 4)
    assert set(f.wall_colour.ravel().tolist()) == {list(WALL_COLOURS).index("sage"), list(WALL_COLOURS).index("steel")}
    assert (f.wall_colour != f.wall_colour[:, :1]).any()  # the walls of a room do differ
    cached = load_rooms(save_rooms(rooms, tmp_path / "walls.npz", 3, progress=False))
    np.testing.assert_array_equal(cached.factors.wall_colour, rooms.scenes(range(3))[0].wall_colour)
    assert Rooms.from_config(json.loads(json.dumps(rooms.config()))).distinct_walls
    with pytest.raises(ValueError, match="one per wall"):
        SceneFactors.make([], [], [], [], wall=["sage", "steel"])


def test_max_context_caps_the_context_views_drawn_per_batch(rooms):
    data = GQNDataset(rooms.generate(6), max_context=2)
    drawn = {data.batch([i, j])[0].shape[1] for i in range(6) for j in range(6) if i != j}
    # 30 row pairs, each its own draw: uncapped (1..3) they would all miss 3 with chance (2/3)^30 < 1e-5
    assert drawn == {1, 2}
    assert data.batch([0], num_context=3)[0].shape[1] == 3  # an explicit k still takes any view count


def test_bad_arguments_are_named(rooms):
    with pytest.raises(ValueError, match="shapes"):
        Rooms(shapes=("torus",))
    with pytest.raises(ValueError, match="image_size"):
        Rooms(image_size=2)
    with pytest.raises(ValueError, match="yaw and pitch"):
        rooms.render(rooms.scenes([0])[0], np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="max_context"):
        GQNDataset(rooms, num_scenes=2, max_context=4)
    with pytest.raises(ValueError, match="num_scenes"):
        GQNDataset(rooms)
    with pytest.raises(TypeError, match="source"):
        GQNDataset(np.zeros(3))
    with pytest.raises(ValueError, match="colour"):
        SceneFactors.make(["sphere"], ["mauve"], [0.5], [(0, 0)])
    with pytest.raises(IndexError, match="scene 9"):
        GQNDataset(rooms, num_scenes=2).batch([9])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_renders_the_same_pixels_on_cuda(rooms):
    f, yaw, pitch = rooms.scenes(range(2))
    cpu = rooms.render(f, yaw, pitch)
    gpu = rooms.render(f, yaw, pitch, device="cuda")
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().gt(1e-3).float().mean() < 1e-3  # edge pixels may flip with float rounding


def test_from_config_rebuilds_a_generator_that_renders_the_same_pixels():
    rooms = Rooms(
        image_size=8, num_views=2, max_objects=2, colours=("red", "blue"), seed=3, size_range=(0.35, 0.5),
        wall_colours=("lilac",), floor_colours=("moss", "grey"),
        lighting=Lighting(direction=(0.2, 1.0, -0.4), ambient=0.3, sky=(0.1, 0.2, 0.3)),
    )  # fmt: skip
    config = json.loads(json.dumps(rooms.config()))  # as a cache or a run summary holds it
    again = Rooms.from_config(config)
    assert again.config() == rooms.config() and again.lighting == rooms.lighting
    torch.testing.assert_close(again.generate(3).images, rooms.generate(3).images, rtol=0, atol=0)
