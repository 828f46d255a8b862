"""Scene-level scores of a trained GQN on held-out rooms, beyond the ELBO and the pixel MSE:

- **KL per image** (nats): ``sum_l KL(q(z_l | x_q, z_<l) || p(z_l | z_<l))`` at the guide's z, closed form; near 0
  means the latents carry nothing and every sample is the same picture. With a 95% bootstrap interval over the
  scenes.
- **Foreground IoU**: a pixel is foreground when it differs from the same view of the *empty* room (objects
  removed, walls, floor and light kept) by more than ``threshold`` in some channel. IoU of the foreground of the
  true query view and of the prediction, pooled over scenes: it is high only if the objects (and their shadows)
  are drawn where they are. Reported for ``num_context`` views (the headline, with a 95% bootstrap interval over
  the scenes) and for 1 and all but one view (``foreground_iou_by_context_views``): how much the prediction gains
  from more of the room.
- **MSE against two references** (``num_context`` views): the prediction's MSE, the context mean's and that of
  the *empty room* (the exact picture of walls, floor and light without the objects). A model below the empty
  room's MSE draws something of the objects; one above it does not even get the room right.
- **Uncertainty ratio**: from a single context view, ``samples`` renderings of the query view; the per-pixel
  variance across them (mean over channels), averaged over the query pixels the context camera cannot see,
  divided by its average over the pixels it sees (:func:`probrep.data.rooms.visibility.visible_from`; sky pixels
  left out). Above 1 means the model is less sure where the context says nothing. It comes with a bootstrap
  interval over the scenes and split by whether the query shows an object the context view misses.

The query is always the scene's last view and the context its first ``k`` views, so the numbers are a pure
function of the model, the scenes and ``seed``.
"""

from __future__ import annotations

from collections.abc import Callable
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


def hidden_object_scenes(rooms: Rooms, test_rooms: RoomsBatch, limit: int = 64) -> torch.Tensor:
    """``[min(limit, N)]`` bool: the scenes among the first ``limit`` whose query view (the last) shows an object
    that their first view shows in no pixel, i.e. one the single context view of the samples cannot know."""
    n = min(limit, len(test_rooms))
    yaw, pitch = test_rooms.camera_yaw[:n][:, [0, -1]], test_rooms.camera_pitch[:n][:, [0, -1]]
    _, ids = rooms.render(test_rooms.factors[:n], yaw, pitch, return_ids=True)
    slots = torch.arange(test_rooms.factors.shape.shape[1])[:, None, None]  # object slot ids
    in_view = (ids[:, :, None] == slots).flatten(-2).any(-1)  # [n, 2 views, slots]
    return (in_view[:, 1] & ~in_view[:, 0]).any(-1)


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
    per_scene: dict[str, list[torch.Tensor]] = {"seen": [], "n_seen": [], "unseen": [], "n_unseen": []}
    squared = {"prediction": 0.0, "context_mean": 0.0, "empty_room": 0.0}  # summed squared errors, num_context
    counts = sorted({1, num_context, views - 1})
    overlap = {k: [0, 0] for k in counts}  # k -> [intersection, union] of the foregrounds
    headline: dict[str, list[torch.Tensor]] = {"kl": [], "intersection": [], "union": []}  # per scene
    try:
        with forked(seed, device), pyro.poutine.block():
            for lo in range(0, len(test), batch_size):
                rows = slice(lo, min(lo + batch_size, len(test)))
                ctx, ctx_v, q_v, q = (t.to(device) for t in context_and_query(test, rows, views - 1))
                kl = kl_per_image(model, ctx[:, :num_context], ctx_v[:, :num_context], q_v, q)
                total["kl"] += float(kl.sum())
                headline["kl"].append(kl.double().cpu())
                empty = empty_room(rooms, test.factors[rows], yaw[rows, -1:], pitch[rows, -1:], device)[:, 0]
                truth_fg = foreground(q, empty, threshold)
                for k in counts:
                    prediction = model.predict(ctx[:, :k], ctx_v[:, :k], q_v)
                    pred_fg = foreground(prediction, empty, threshold)
                    overlap[k][0] += int((truth_fg & pred_fg).sum())
                    overlap[k][1] += int((truth_fg | pred_fg).sum())
                    if k == num_context:
                        headline["intersection"].append((truth_fg & pred_fg).sum((1, 2)).double().cpu())
                        headline["union"].append((truth_fg | pred_fg).sum((1, 2)).double().cpu())
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
                for mask, name in ((seen, "seen"), (unseen, "unseen")):
                    per_scene[name].append((variance * mask).double().sum((1, 2)).cpu())
                    per_scene["n_" + name].append(mask.sum((1, 2)).double().cpu())
    finally:
        model.train(was_training)
    mse = {name: value / test.images[:, -1].numel() for name, value in squared.items()}
    seen_var = total["var_seen"] / max(1, total["n_seen"])
    per_scene_headline = {name: torch.cat(values) for name, values in headline.items()}
    unseen_var = total["var_unseen"] / max(1, total["n_unseen"])
    return {
        "kl_per_image": total["kl"] / len(test),
        "foreground_iou": overlap[num_context][0] / max(1, overlap[num_context][1]),
        **_headline_intervals(per_scene_headline, seed),
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
        **_uncertainty_ratio_spread({k: torch.cat(v) for k, v in per_scene.items()}, rooms, test, seed),
    }


def with_interval(scores: dict[str, Any], name: str, digits: int) -> str:
    """``scores[name]`` as text with its recorded 95% interval: ``"0.508 (95% 0.490-0.527)"``."""
    lo, hi = scores[name + "_95_interval"]
    return f"{scores[name]:.{digits}f} (95% {lo:.{digits}f}-{hi:.{digits}f})"


def bootstrap_interval(
    statistic: Callable[[torch.Tensor], torch.Tensor], n: int, generator: torch.Generator, resamples: int = 2000
) -> list[float] | None:
    """The 2.5% and 97.5% quantiles of ``statistic`` over ``resamples`` bootstrap resamples of ``n`` scenes
    (``statistic`` takes ``[resamples, n]`` scene indices and returns one value per resample); ``None`` for none."""
    if n == 0:
        return None
    draws = torch.randint(0, n, (resamples, n), generator=generator)
    bounds = torch.quantile(statistic(draws).double(), torch.tensor([0.025, 0.975], dtype=torch.float64))
    return [float(b) for b in bounds]


def _headline_intervals(per_scene: dict[str, torch.Tensor], seed: int) -> dict[str, Any]:
    """95% bootstrap intervals over the scenes for the KL per image and the pooled foreground IoU, so that a score
    near its target can be told from the scatter of a finite set of scenes (a generator of its own, seeded by
    ``seed``; the pooled IoU of a resample is its summed intersections over its summed unions)."""
    generator = torch.Generator().manual_seed(seed)
    kl, inter, union = per_scene["kl"], per_scene["intersection"], per_scene["union"]
    return {
        "foreground_iou_95_interval": bootstrap_interval(
            lambda rows: inter[rows].sum(-1) / union[rows].sum(-1).clamp(min=1), len(inter), generator
        ),
        "kl_per_image_95_interval": bootstrap_interval(lambda rows: kl[rows].mean(-1), len(kl), generator),
    }


def _pooled_ratio(sums: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """The uncertainty ratio pooled over the scenes ``rows`` (``[..., n]`` indices; one ratio per leading index)."""
    unseen = sums["unseen"][rows].sum(-1) / sums["n_unseen"][rows].sum(-1)
    return unseen / (sums["seen"][rows].sum(-1) / sums["n_seen"][rows].sum(-1))


def _uncertainty_ratio_spread(
    sums: dict[str, torch.Tensor], rooms: Rooms, test: RoomsBatch, seed: int, resamples: int = 2000
) -> dict[str, Any]:
    """How far the uncertainty ratio is from 1 beyond chance, and where it comes from.

    - ``uncertainty_ratio_95_interval``: the 2.5% and 97.5% quantiles of the pooled ratio over ``resamples``
      bootstrap resamples of the scenes (a generator of its own, seeded by ``seed``), so that "above 1" can be
      told from the scatter of a finite set of scenes and samples.
    - ``uncertainty_ratio_by_scene``: the same pooled ratio and interval over the scenes whose query shows an
      object the context view misses (:func:`hidden_object_scenes`; there the unseen pixels hide something to
      guess) and over the others (there the unseen pixels are walls and floor, which no sample should disagree
      about); ``None`` for an empty group. The headline ``uncertainty_ratio`` pools both, as defined above.
    """
    generator = torch.Generator().manual_seed(seed)

    def interval(rows: torch.Tensor) -> list[float] | None:
        return bootstrap_interval(lambda draws: _pooled_ratio(sums, rows[draws]), len(rows), generator, resamples)

    n = len(sums["seen"])
    hidden = hidden_object_scenes(rooms, test, limit=n)
    everything = interval(torch.arange(n))
    groups = {"object_hidden_from_context": hidden.nonzero()[:, 0], "other": (~hidden).nonzero()[:, 0]}
    return {
        "uncertainty_ratio_95_interval": everything,
        "uncertainty_ratio_bootstrap_resamples": resamples,
        "uncertainty_ratio_by_scene": {
            name: {
                "scenes": len(rows),
                "uncertainty_ratio": float(_pooled_ratio(sums, rows)) if len(rows) else None,
                "uncertainty_ratio_95_interval": interval(rows),
            }
            for name, rows in groups.items()
        },
    }
