"""benchmarks/gqn_iou_by_surface.py: the foreground IoU split by the true surface, against a hand count."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from probrep.data.rooms.raycast import WALL
from probrep.data.rooms.scene import Rooms
from probrep.data.rooms.visibility import empty_room
from probrep.experiments.gqn import TIERS
from probrep.experiments.gqn_scores import foreground

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def split(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gqn_iou_by_surface

    yield gqn_iou_by_surface.iou_by_surface
    sys.modules.pop("gqn_iou_by_surface", None)


class Oracle:
    """A stand-in GQN that checks its context and returns ``answers`` for the scenes it is asked about: the scenes
    are told apart by their query viewpoints."""

    def __init__(self, test, answers: torch.Tensor, context_views: int):
        self.test, self.answers, self.context_views = test, answers, context_views

    def predict(self, ctx, ctx_v, q_v):
        assert ctx.shape[1] == self.context_views
        rows = [int((self.test.viewpoints[:, -1] == v).all(-1).nonzero()[0]) for v in q_v]
        images = self.test.images[rows, : self.context_views].float()
        images = images / 255.0 if self.test.images.dtype == torch.uint8 else images
        assert torch.equal(ctx, images)  # the first k views of the same scenes
        return self.answers[rows]


def test_wrong_walls_cost_the_iou_exactly_their_share_of_the_union(split):
    rooms = Rooms(**{**TIERS["two_colour_walls"]["rooms"], "image_size": 16}, num_views=4, seed=3)
    test = rooms.generate(6)
    yaw, pitch = test.camera_yaw[:, -1:], test.camera_pitch[:, -1:]
    query = test.images[:, -1].float()
    query = query / 255.0 if test.images.dtype == torch.uint8 else query
    _, ids = rooms.render(test.factors, yaw, pitch, return_ids=True)
    wall = (ids[:, 0] == WALL).unsqueeze(1)
    prediction = torch.where(wall, 1.0 - query, query)  # right off the walls, every wall colour inverted
    empty = empty_room(rooms, test.factors, yaw, pitch)[:, 0]
    truth = foreground(query, empty, 0.1)
    wrong_walls = foreground(prediction, empty, 0.1) & wall[:, 0]
    assert wrong_walls.sum() > 0 and truth.sum() > 0
    union = int((truth | wrong_walls).sum())
    hits = int((truth & foreground(prediction, empty, 0.1)).sum())

    got = split(Oracle(test, prediction, context_views=2), rooms, test, context_views=2, threshold=0.1, batch_size=4)

    assert got["iou_off_walls"] == 1.0
    assert got["iou"] == pytest.approx(hits / union)
    assert got["wall_share_of_union"] == pytest.approx(int(((truth | wrong_walls) & wall[:, 0]).sum()) / union)
