"""Where a GQN's foreground IoU is lost: the IoU of a finished run split by the true surface of each query pixel.

The foreground IoU (:mod:`probrep.experiments.gqn_scores`) counts every pixel that differs from the empty room.
In a tier whose walls vary (``two_colour_walls``) a wrongly coloured wall pixel counts as predicted foreground
that the truth does not have. This script recomputes the IoU of a run's held-out scenes (the same scenes, context
views and threshold as its headline) over all pixels, over the pixels that are not wall in the truth, and the share
of the union that is wall, for 1, the headline's and all but one context views; it stops if its IoU is not the
headline's. A diagnostic beside the headline, which it does not replace.

    python benchmarks/gqn_iou_by_surface.py --name gqn_two_colour_walls --checkpoint runs/.../checkpoint-00024000.pt

Writes benchmarks/results/<name>_iou_by_surface.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)

from probrep.data.rooms.raycast import WALL
from probrep.data.rooms.scene import Rooms
from probrep.data.rooms.visibility import empty_room
from probrep.experiments.gqn import TEST_START, build_gqn
from probrep.experiments.gqn_scores import context_and_query, foreground
from probrep.io.json_file import write_json
from probrep.training import checkpoint as ckpt

RESULTS = Path(__file__).parent / "results"


@torch.no_grad()
def iou_by_surface(
    model, rooms: Rooms, test, context_views: int, threshold: float, batch_size: int = 64
) -> dict[str, float]:
    """IoU over all query pixels, over those that are not wall in the truth, and the wall share of the union."""
    inter = {"wall": 0, "other": 0}
    union = {"wall": 0, "other": 0}
    yaw, pitch = test.camera_yaw, test.camera_pitch
    last = test.images.shape[1] - 1
    for lo in range(0, len(test), batch_size):
        rows = slice(lo, min(lo + batch_size, len(test)))
        ctx, ctx_v, q_v, q = context_and_query(test, rows, last)
        empty = empty_room(rooms, test.factors[rows], yaw[rows, -1:], pitch[rows, -1:])[:, 0]
        _, ids = rooms.render(test.factors[rows], yaw[rows, -1:], pitch[rows, -1:], return_ids=True)
        wall = ids[:, 0] == WALL
        truth = foreground(q, empty, threshold)
        predicted = foreground(model.predict(ctx[:, :context_views], ctx_v[:, :context_views], q_v), empty, threshold)
        for mask, name in ((wall, "wall"), (~wall, "other")):
            inter[name] += int((truth & predicted & mask).sum())
            union[name] += int(((truth | predicted) & mask).sum())
    total = union["wall"] + union["other"]
    return {
        "iou": (inter["wall"] + inter["other"]) / max(1, total),
        "iou_off_walls": inter["other"] / max(1, union["other"]),
        "wall_share_of_union": union["wall"] / max(1, total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the run's results/<name>.json")
    parser.add_argument("--checkpoint", required=True, help="the run's checkpoint at its recorded step")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = json.loads((RESULTS / f"{args.name}.json").read_text())
    state = ckpt.load(args.checkpoint)
    if state["step"] != result["steps"]:
        raise SystemExit(f"{args.checkpoint} is at step {state['step']}, the run recorded {result['steps']}")
    model = build_gqn(result["tier"], **result.get("model_options", {}))
    model.load_state_dict(state["module"])
    model.eval()
    rooms = Rooms.from_config(result["rooms"])
    test = rooms.generate(result["test_scenes"], start=TEST_START)
    headline = result["test_scenes_scores"]
    threshold = headline["foreground_threshold"]
    views = sorted({1, headline["iou_context_views"], test.images.shape[1] - 1})
    split = {str(k): iou_by_surface(model, rooms, test, k, threshold) for k in views}
    for k, scores in split.items():  # the same scenes, views and threshold as the headline: the same IoU
        if abs(scores["iou"] - headline["foreground_iou_by_context_views"][k]) > 1e-9:
            raise SystemExit(f"IoU with {k} views {scores['iou']:.6f} differs from the run's headline: not its model?")
    out = {
        "run": args.name,
        "step": result["steps"],
        "scenes": len(test),
        "machine": cpu_name(),
        "foreground_threshold": threshold,
        "by_context_views": split,
    }
    write_json(out, RESULTS / f"{args.name}_iou_by_surface.json")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
