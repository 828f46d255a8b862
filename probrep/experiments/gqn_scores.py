"""Scene-level scores of a trained GQN on held-out rooms, beyond the ELBO and the pixel MSE:

- **KL per image** (nats): ``sum_l KL(q(z_l | x_q, z_<l) || p(z_l | z_<l))`` at the guide's z, closed form; near 0
  means the latents carry nothing and every sample is the same picture.
- **Foreground IoU**: a pixel is foreground when it differs from the same view of the *empty* room (objects
  removed, walls, floor and light kept) by more than ``threshold`` in some channel. IoU of the foreground of the
  true query view and of the prediction, pooled over scenes: it is high only if the objects (and their shadows)
  are drawn where they are. Reported for ``num_context`` views (the headline) and for 1 and all but one view
  (``foreground_iou_by_context_views``): how much the prediction gains from more of the room.
- **MSE against two references** (``num_context`` views): the prediction's MSE, the context mean's and that of
  the *empty room* (the exact picture of walls, floor and light without the objects). A model below the empty
  room's MSE draws something of the objects; one above it does not even get the room right.
- **Uncertainty ratio**: from a single context view, ``samples`` renderings of the query view; the per-pixel
  variance across them (mean over channels), averaged over the query pixels the context camera cannot see,
  divided by its average over the pixels it sees (:func:`probrep.data.rooms.visibility.visible_from`; sky pixels
  left out). Above 1 means the model is less sure where the context says nothing.

The query is always the scene's last view and the context its first ``k`` views, so the numbers are a pure
function of the model, the scenes and ``seed``.
"""

from __future__ import annotations

from typing import Any

import pyro
import torch
from pyro import poutine

from probrep.data.rooms.scene import Rooms, RoomsBatch
from probrep.data.rooms.visibility import empty_room, visible_from
from probrep.models.gqn.model import GQN
from probrep.training.rng import forked


def context_and_query(batch: RoomsBatch, rows: slice | list[int], k: int) -> tuple[torch.Tensor, ...]:
    """The scenes ``rows`` of ``batch`` as ``(context [B, k, ...], context viewpoints, query viewpoint, query)``:
    the first ``k`` views as context, the last view as the query (float pixels in [0, 1])."""
    images = batch.images[rows]
    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    views = batch.viewpoints[rows]
    return images[:, :k], views[:, :k], views[:, -1], images[:, -1]


def kl_per_image(
    model: GQN, ctx: torch.Tensor, ctx_v: torch.Tensor, q_v: torch.Tensor, q: torch.Tensor
) -> torch.Tensor:
    """``[B]``: the summed closed-form KL of the DRAW steps at one sample of the guide."""
    guide = poutine.trace(model.guide).get_trace(ctx, ctx_v, q_v, q)
    prior = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(ctx, ctx_v, q_v, q)
    kl = torch.zeros(ctx.shape[0], device=ctx.device)
    for name, site in guide.nodes.items():
        if site["type"] == "sample" and name.startswith("z_"):
            kl = kl + torch.distributions.kl_divergence(site["fn"], prior.nodes[name]["fn"])
    return kl


def foreground(image: torch.Tensor, empty: torch.Tensor, threshold: float) -> torch.Tensor:
    """``[B, H, W]``: pixels whose colour differs from the empty room's by more than ``threshold`` in a channel."""
    return (image - empty).abs().amax(dim=-3) > threshold


@torch.no_grad()
def scene_scores(
    model: GQN,
    rooms: Rooms,
    test: RoomsBatch,
    *,
    num_context: int = 3,
    samples: int = 8,
    threshold: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """KL per image, foreground IoU (``num_context`` views) and the uncertainty ratio (1 view) on ``test``.

    ``test`` is a :class:`RoomsBatch` rendered by ``rooms`` (its factors and cameras give the empty rooms and the
    visibility); it needs more than ``num_context`` views per scene.
    """
    views = test.images.shape[1]
    if not 1 <= num_context < views:
        raise ValueError(f"num_context must be in 1..{views - 1} for scenes with {views} views, got {num_context}")
    if int(samples) < 2:
        raise ValueError(f"samples must be >= 2 to measure a variance, got {samples}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    yaw, pitch = test.camera_yaw, test.camera_pitch
    total = {"kl": 0.0, "var_seen": 0.0, "n_seen": 0, "var_unseen": 0.0, "n_unseen": 0}
    squared = {"prediction": 0.0, "context_mean": 0.0, "empty_room": 0.0}  # summed squared errors, num_context
    counts = sorted({1, num_context, views - 1})
    overlap = {k: [0, 0] for k in counts}  # k -> [intersection, union] of the foregrounds
    try:
        with forked(seed, device), pyro.poutine.block():
            for lo in range(0, len(test), batch_size):
                rows = slice(lo, min(lo + batch_size, len(test)))
                ctx, ctx_v, q_v, q = (t.to(device) for t in context_and_query(test, rows, views - 1))
                total["kl"] += float(kl_per_image(model, ctx[:, :num_context], ctx_v[:, :num_context], q_v, q).sum())
                empty = empty_room(rooms, test.factors[rows], yaw[rows, -1:], pitch[rows, -1:], device)[:, 0]
                truth_fg = foreground(q, empty, threshold)
                for k in counts:
                    prediction = model.predict(ctx[:, :k], ctx_v[:, :k], q_v)
                    pred_fg = foreground(prediction, empty, threshold)
                    overlap[k][0] += int((truth_fg & pred_fg).sum())
                    overlap[k][1] += int((truth_fg | pred_fg).sum())
                    if k == num_context:
                        squared["prediction"] += float(((prediction - q) ** 2).sum())
                        squared["context_mean"] += float(((ctx[:, :k].mean(1) - q) ** 2).sum())
                        squared["empty_room"] += float(((empty - q) ** 2).sum())

                draws = model.sample(ctx[:, :1], ctx_v[:, :1], q_v, num_samples=samples)  # [S, B, C, H, W]
                variance = draws.var(dim=0).mean(dim=1)  # [B, H, W]
                seen, sky = visible_from(
                    rooms, test.factors[rows], yaw[rows, -1], pitch[rows, -1], yaw[rows, 0], pitch[rows, 0], device
                )
                unseen = ~seen & ~sky
                total["var_seen"] += float(variance[seen].sum())
                total["n_seen"] += int(seen.sum())
                total["var_unseen"] += float(variance[unseen].sum())
                total["n_unseen"] += int(unseen.sum())
    finally:
        model.train(was_training)
    mse = {name: value / test.images[:, -1].numel() for name, value in squared.items()}
    seen_var = total["var_seen"] / max(1, total["n_seen"])
    unseen_var = total["var_unseen"] / max(1, total["n_unseen"])
    return {
        "kl_per_image": total["kl"] / len(test),
        "foreground_iou": overlap[num_context][0] / max(1, overlap[num_context][1]),
        "foreground_iou_by_context_views": {str(k): inter / max(1, union) for k, (inter, union) in overlap.items()},
        "foreground_threshold": threshold,
        "iou_context_views": num_context,
        "mse": mse,
        "mse_ratio_to_context_mean": {
            name: mse[name] / mse["context_mean"] if mse["context_mean"] > 0 else float("nan")
            for name in ("prediction", "empty_room")
        },
        "sample_variance_seen": seen_var,
        "sample_variance_unseen": unseen_var,
        "uncertainty_ratio": unseen_var / seen_var if seen_var > 0 else float("nan"),
        "unseen_pixel_share": total["n_unseen"] / max(1, total["n_seen"] + total["n_unseen"]),
        "samples": int(samples),
    }
