"""What a context camera sees of a query view, the empty room, and the GQN's scene-level scores, against
constructed scenes whose answer is known by geometry."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from probrep.data.rooms.scene import OBJECT_COLOURS, Rooms, SceneFactors
from probrep.data.rooms.visibility import empty_room, visible_from
from probrep.experiments.gqn_scores import foreground, scene_scores
from probrep.models.gqn.model import GQN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rooms():
    return Rooms(image_size=32, num_views=4, seed=0)


def test_a_camera_sees_all_of_its_own_view_and_nothing_of_the_sky(rooms):
    f, yaw, pitch = rooms.scenes(range(20))
    seen, sky = visible_from(rooms, f, yaw[:, 0], pitch[:, 0], yaw[:, 0], pitch[:, 0])
    assert seen.shape == (20, 32, 32)
    assert sky.any() and not (seen & sky).any()
    assert torch.equal(seen, ~sky)


def test_the_far_side_of_a_sphere_is_unseen_and_the_near_side_seen():
    rooms = Rooms(image_size=32, num_views=1, seed=0)
    ball = SceneFactors.make(["sphere"], ["red"], [0.6], [(0.0, 0.0)])
    pitch = rooms.base_pitch
    _, ids = rooms.render(ball, [[0.0]], [[pitch]], return_ids=True)
    on_ball = ids[0, 0] == 0
    assert on_ball.sum() > 30
    # cameras on opposite sides of the ring see opposite hemispheres (each sees less than half of the sphere)
    seen, _ = visible_from(rooms, ball, [0.0], [pitch], [math.pi], [pitch])
    assert not (seen[0] & on_ball).any()
    # a camera a few degrees round sees almost all of the same hemisphere
    seen, _ = visible_from(rooms, ball, [0.0], [pitch], [0.1], [pitch])
    assert (seen[0] & on_ball).sum() >= 0.9 * on_ball.sum()
    # the floor just behind the ball, seen by the camera at pi, is hidden from the camera at 0 by the ball
    seen_far, sky = visible_from(rooms, ball, [math.pi], [pitch], [0.0], [pitch])
    _, ids_far = rooms.render(ball, [[math.pi]], [[pitch]], return_ids=True)
    floor_far = (ids_far[0, 0] == -2) & ~sky[0]
    # from camera 0, part of the floor the opposite camera sees lies in the ball's shadow of sight
    assert (floor_far & ~seen_far[0]).any() and (floor_far & seen_far[0]).any()


def test_points_behind_the_context_camera_are_unseen():
    rooms = Rooms(image_size=16, num_views=1, seed=0)
    f = SceneFactors.make([], [], [], [])
    pitch = rooms.base_pitch
    # the query camera at yaw 0 looks at the wall x = +L; the camera at yaw pi stands in front of that wall with its
    # back to it. In an empty (convex) room nothing occludes, so what is seen is exactly what lies in view.
    _, ids = rooms.render(f, [[0.0]], [[pitch]], return_ids=True)
    seen, sky = visible_from(rooms, f, [0.0], [pitch], [math.pi], [pitch])
    wall = ids[0, 0] == -3
    assert wall.any() and not (seen[0] & wall).any()
    floor = ids[0, 0] == -2
    assert seen[0][floor].float().mean() > 0.3  # the floor round the centre is in both views
    assert not sky[0][floor | wall].any()


def test_empty_room_keeps_walls_and_floor_and_removes_objects():
    rooms = Rooms(image_size=32, num_views=1, seed=0)
    ball = SceneFactors.make(["sphere"], ["red"], [0.6], [(0.0, 0.0)], wall="sage", floor="wood")
    yaw, pitch = [[0.3]], [[rooms.base_pitch]]
    full, ids = rooms.render(ball, yaw, pitch, return_ids=True)
    empty = empty_room(rooms, ball, yaw, pitch)
    bare = rooms.render(SceneFactors.make([], [], [], [], wall="sage", floor="wood"), yaw, pitch)
    torch.testing.assert_close(empty, bare)
    fg = foreground(full[:, 0], empty[:, 0], 0.1)[0]
    on_ball = ids[0, 0] == 0
    assert fg[on_ball].all()  # every ball pixel differs from the empty room; the shadow adds a few more
    assert fg.sum() >= on_ball.sum()


def test_rooms_draw_only_the_requested_colours():
    rooms = Rooms(image_size=8, max_objects=2, colours=("red", "blue"))
    f, _, _ = rooms.scenes(range(100))
    used = set(f.colour[f.shape >= 0].tolist())
    assert used == {list(OBJECT_COLOURS).index("red"), list(OBJECT_COLOURS).index("blue")}
    assert f.num_objects.max() == 2
    assert rooms.config()["colours"] == ["red", "blue"]
    # the default keeps scene i's draw: the same factors as before the option existed
    all7, _, _ = Rooms(image_size=8).scenes(range(5))
    again, _, _ = Rooms(image_size=8, colours=tuple(OBJECT_COLOURS)).scenes(range(5))
    np.testing.assert_array_equal(all7.colour, again.colour)
    with pytest.raises(ValueError, match="colours"):
        Rooms(colours=("red", "mauve"))
    with pytest.raises(ValueError, match="colours"):
        Rooms(colours=())


def test_scene_scores_of_an_untrained_model_are_well_formed(rooms):
    torch.manual_seed(0)
    model = GQN.small(sigma=0.1)
    test = rooms.generate(6)
    scores = scene_scores(model, rooms, test, num_context=2, samples=3, batch_size=4)
    assert scores["kl_per_image"] > 0
    assert 0.0 <= scores["foreground_iou"] <= 1.0
    for name in ("kl_per_image", "foreground_iou"):
        lo, hi = scores[name + "_95_interval"]
        assert lo <= scores[name] <= hi, name
    assert scores["sample_variance_seen"] > 0 and scores["sample_variance_unseen"] > 0
    assert 0.0 < scores["unseen_pixel_share"] < 1.0
    with pytest.raises(ValueError, match="num_context"):
        scene_scores(model, rooms, test, num_context=4)
    with pytest.raises(ValueError, match="samples"):
        scene_scores(model, rooms, test, samples=1)


def test_foreground_iou_is_one_for_the_truth_and_zero_for_the_empty_room_at_every_context_count(rooms):
    torch.manual_seed(0)
    model = GQN.small(sigma=0.1)
    test = rooms.generate(6)
    truth = test.images[:, -1].float() / (255.0 if test.images.dtype == torch.uint8 else 1.0)
    model.predict = lambda ctx, ctx_v, q_v: truth  # an oracle, whatever the context
    scores = scene_scores(model, rooms, test, num_context=2, samples=2, batch_size=6)
    assert scores["foreground_iou"] == 1.0 and scores["foreground_iou_95_interval"] == [1.0, 1.0]
    assert scores["mse"]["prediction"] == 0.0 and scores["mse_ratio_to_context_mean"]["prediction"] == 0.0
    assert scores["foreground_iou_by_context_views"] == {"1": 1.0, "2": 1.0, str(test.images.shape[1] - 1): 1.0}
    empty = empty_room(rooms, test.factors, test.camera_yaw[:, -1:], test.camera_pitch[:, -1:], "cpu")[:, 0]
    model.predict = lambda ctx, ctx_v, q_v: empty
    scores = scene_scores(model, rooms, test, num_context=2, samples=2, batch_size=6)
    assert set(scores["foreground_iou_by_context_views"].values()) == {0.0}
    assert scores["foreground_iou_95_interval"] == [0.0, 0.0]
    # the empty room as the prediction scores exactly the empty-room reference; both by hand
    by_hand = float(((empty - truth) ** 2).mean())
    context_mean = float(((test.images[:, :2].float().mean(1) - truth) ** 2).mean())
    assert scores["mse"]["prediction"] == pytest.approx(by_hand, rel=1e-5)
    assert scores["mse"]["empty_room"] == pytest.approx(by_hand, rel=1e-5)
    assert scores["mse"]["context_mean"] == pytest.approx(context_mean, rel=1e-5)
    assert scores["mse_ratio_to_context_mean"]["empty_room"] == pytest.approx(by_hand / context_mean, rel=1e-5)
    # the truth for scenes 0-2, the empty room for 3-5: the pooled IoU is the first half's foreground over all of it
    half = torch.cat([truth[:3], empty[3:]])
    model.predict = lambda ctx, ctx_v, q_v: half
    scores = scene_scores(model, rooms, test, num_context=2, samples=2, batch_size=6)
    truth_fg = foreground(truth, empty, 0.1).sum((1, 2)).double()
    assert scores["foreground_iou"] == pytest.approx(float(truth_fg[:3].sum() / truth_fg.sum()))
    lo, hi = scores["foreground_iou_95_interval"]
    assert 0.0 <= lo < scores["foreground_iou"] < hi <= 1.0


def test_uncertainty_ratio_its_interval_and_its_split_by_scene_kind_match_a_sampler_of_known_variance():
    from probrep.experiments.gqn import TIERS
    from probrep.experiments.gqn_scores import hidden_object_scenes

    rooms = Rooms(**TIERS["hidden_object"]["rooms"], num_views=4, seed=0)
    test = rooms.generate(24)
    hidden = hidden_object_scenes(rooms, test, limit=len(test))
    assert 0 < int(hidden.sum()) < len(test)  # both kinds of scene are present
    yaw, pitch = test.camera_yaw, test.camera_pitch
    seen, _ = visible_from(rooms, test.factors, yaw[:, -1], pitch[:, -1], yaw[:, 0], pitch[:, 0])
    # samples +-std alternate, so the variance across them is std^2 * S / (S - 1) exactly: std 1 on seen pixels,
    # 3 on unseen ones of the hidden-object scenes and 2 on those of the others -> ratios 9 and 4 by hand
    unseen_std = torch.where(hidden, 3.0, 2.0)[:, None, None]
    std = torch.where(seen, torch.tensor(1.0), unseen_std)

    def sample(ctx, ctx_v, q_v, num_samples=1):
        signs = torch.tensor([1.0, -1.0]).repeat(num_samples // 2)
        return signs[:, None, None, None, None] * std[None, :, None].expand(num_samples, -1, 3, -1, -1)

    model = GQN.small(sigma=0.1)
    model.sample = sample
    approx = functools.partial(pytest.approx, rel=1e-6)  # the variances are float32
    scores = scene_scores(model, rooms, test, num_context=2, samples=4, batch_size=len(test))
    by_scene = scores["uncertainty_ratio_by_scene"]
    # within a group every scene has the same ratio, so every resample does: intervals of no width
    assert by_scene["object_hidden_from_context"] == {
        "scenes": int(hidden.sum()),
        "uncertainty_ratio": approx(9.0),
        "uncertainty_ratio_95_interval": approx([9, 9]),
    }
    assert by_scene["other"] == {
        "scenes": len(test) - int(hidden.sum()),
        "uncertainty_ratio": approx(4.0),
        "uncertainty_ratio_95_interval": approx([4, 4]),
    }
    lo, hi = scores["uncertainty_ratio_95_interval"]
    assert 4.0 <= lo <= scores["uncertainty_ratio"] <= hi <= 9.0 and lo < hi
    # every scene alike (``sample`` reads the new ``std``): each resample gives the same ratio, a zero-width interval
    std = torch.where(seen, torch.tensor(1.0), torch.tensor(2.0))
    scores = scene_scores(model, rooms, test, num_context=2, samples=4, batch_size=len(test))
    assert scores["uncertainty_ratio"] == pytest.approx(4.0)
    assert scores["uncertainty_ratio_95_interval"] == pytest.approx([4.0, 4.0])


def test_bootstrap_interval_matches_the_normal_interval_of_a_mean():
    from probrep.experiments.gqn_scores import bootstrap_interval

    values = torch.tensor([0.0, 1.0]).repeat(200)  # mean 0.5, standard error 0.5 / sqrt(400) = 0.025
    lo, hi = bootstrap_interval(lambda rows: values[rows].mean(-1), 400, torch.Generator().manual_seed(0))
    # the 2.5% quantile of 2,000 resample means scatters by about 0.0015, and the means step by 1/400
    assert lo == pytest.approx(0.5 - 1.96 * 0.025, abs=0.007) and hi == pytest.approx(0.5 + 1.96 * 0.025, abs=0.007)
    assert bootstrap_interval(lambda rows: values[rows].mean(-1), 0, torch.Generator()) is None
