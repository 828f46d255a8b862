"""The run behind ``probrep train gqn``: train a Generative Query Network on procedural rooms and leave a
checkpoint, a loss curve, predicted-versus-true query views, samples from a single context view and a JSON
summary (held-out ELBO and bits per dimension before and after training, novel-view MSE against the baseline
that predicts the mean of the context images) in one folder.

Tiers: ``"small"`` (32x32 rooms with 1-2 objects, :meth:`GQN.small`: narrow networks, 4 DRAW steps; trains on a
laptop CPU), ``"one_object"`` (the small tier's model and recipe on 32x32 rooms with exactly one object and fixed
sand walls and grey floor: the object is all there is to learn), ``"four_walls"`` (the same with each wall in its
own colour: one view cannot tell the walls it does not see, so the samples have something to disagree about),
``"two_colour_walls"`` (the same with each wall sand or steel, a coin flip per wall: 16 rooms instead of 625, so
that less of the model goes to the walls and more to the object),
``"hidden_object"`` (one object in fixed walls, seen through a 30 degree field of view from cameras that often
miss it: about 4 views in 10 do not see the object, so one view often leaves its place unknown) and
``"paper"`` (64x64 rooms, the paper's widths and 12 DRAW steps; for GPUs).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from probrep._checks import integer, one_of
from probrep.data.rooms.dataset import GQNDataset, checked_max_context
from probrep.data.rooms.scene import Rooms, RoomsBatch
from probrep.data.rooms.visibility import visible_from
from probrep.device import resolve_device
from probrep.experiments.gqn_scores import context_and_query, hidden_object_scenes, scene_scores
from probrep.experiments.run_folder import RunFolder, RunOutputs
from probrep.inference import svi
from probrep.io.figures import image_grid, pyplot, save_figure
from probrep.io.json_file import write_json
from probrep.models.gqn.model import GQN
from probrep.training.loop import StepInfo
from probrep.training.rng import forked
from probrep.training.schedules import AnnealAttribute, exponential_anneal, linear_anneal, relative_to

logger = logging.getLogger(__name__)

#: the recipe the 32x32 CPU tiers share: GQN.small, Adam 1e-3 -> 1e-4, batch 16, sigma 2.0 -> 0.25 geometrically
_CPU_RECIPE = {
    "model": "small",
    "lr": 1e-3,
    "lr_end": 1e-4,
    "batch_size": 16,
    "sigma": (2.0, 0.25),
    "sigma_schedule": "exponential",
}
_CPU_ROOMS = {"image_size": 32, "colours": ("red", "green", "blue", "yellow")}
_ONE_OBJECT_ROOMS = {**_CPU_ROOMS, "min_objects": 1, "max_objects": 1, "floor_colours": ("grey",)}
TIERS: dict[str, dict[str, Any]] = {
    "small": {**_CPU_RECIPE, "rooms": {**_CPU_ROOMS, "max_objects": 2}},
    "one_object": {**_CPU_RECIPE, "rooms": {**_ONE_OBJECT_ROOMS, "wall_colours": ("sand",)}},
    "four_walls": {**_CPU_RECIPE, "rooms": {**_ONE_OBJECT_ROOMS, "distinct_walls": True}},
    "two_colour_walls": {**_CPU_RECIPE, "rooms": {
        **_ONE_OBJECT_ROOMS, "distinct_walls": True, "wall_colours": ("sand", "steel"),
    }},
    "hidden_object": {**_CPU_RECIPE, "rooms": {
        **_ONE_OBJECT_ROOMS, "wall_colours": ("sand",), "fov": math.radians(30.0), "spread": 2.6,
        "size_range": (0.3, 0.5),
    }},
    "paper": {
        "model": "paper", "rooms": {"image_size": 64}, "lr": 5e-4, "lr_end": 5e-5, "batch_size": 36,
        "sigma": (2.0, 0.7), "sigma_schedule": "linear",
    },
}  # fmt: skip
#: a tier's "model" -> the constructor of its GQN
_MODELS: dict[str, Callable[..., GQN]] = {"small": GQN.small, "paper": GQN}
SIGMA_SCHEDULES = ("linear", "exponential")
#: held-out scenes are drawn from indices far above any training set
TEST_START = 10_000_000


def build_gqn(tier: str, **overrides: Any) -> GQN:
    """The GQN of a tier (``overrides`` replace its settings)."""
    return _MODELS[TIERS[one_of(tier, "tier", TIERS)]["model"]](**overrides)


@torch.no_grad()
def evaluate_gqn(
    model: GQN,
    data: GQNDataset,
    num_context: int | None = None,
    batch_size: int = 64,
    sigma: float | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out scores over all scenes of ``data``, in batches (each with its own k unless ``num_context``).

    Returns the negative ELBO per image (nats, one z sample, analytic KL, at pixel sigma ``sigma``), bits per
    dimension ``nelbo / (C H W ln 2)``, the MSE of :meth:`GQN.predict` and of the context-mean baseline.
    """
    was_training, old_sigma = model.training, model.sigma
    model.eval()
    if sigma is not None:
        model.sigma = float(sigma)
    elbo = svi.make_elbo(None, model)
    totals = {"nelbo": 0.0, "mse": 0.0, "baseline": 0.0}
    count = 0
    try:
        with forked(seed, next(model.parameters()).device):
            for lo in range(0, len(data), batch_size):
                rows = list(range(lo, min(lo + batch_size, len(data))))
                ctx, ctx_v, q_v, q = data.batch(rows, num_context)
                totals["nelbo"] += float(elbo.loss(model.model, model.guide, ctx, ctx_v, q_v, q))
                totals["mse"] += float(((model.predict(ctx, ctx_v, q_v) - q) ** 2).mean((1, 2, 3)).sum())
                totals["baseline"] += float(((ctx.mean(1) - q) ** 2).mean((1, 2, 3)).sum())
                count += len(rows)
    finally:
        model.sigma = old_sigma
        model.train(was_training)
    dims = math.prod(model.image_shape)
    nelbo = totals["nelbo"] / count
    mse, baseline = totals["mse"] / count, totals["baseline"] / count
    return {
        "negative_elbo_per_image": nelbo,
        "bits_per_dim": nelbo / (dims * math.log(2.0)),
        "mse": mse,
        "baseline_mse": baseline,
        "mse_ratio": mse / baseline,
    }


def train_gqn(
    out: str | os.PathLike,
    *,
    tier: str = "small",
    steps: int = 3000,
    batch_size: int | None = None,
    lr: float | None = None,
    lr_end: float | None = None,
    sigma_start: float | None = None,
    sigma_end: float | None = None,
    sigma_schedule: str | None = None,
    anneal_steps: int | None = None,
    train_scenes: int = 4000,
    test_scenes: int = 256,
    num_views: int = 10,
    max_context: int | None = None,
    representation: str | None = None,
    draw_steps: int | None = None,
    model_options: dict[str, Any] | None = None,
    checkpoint_steps: bool = False,
    render_on_the_fly: bool = False,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int = 250,
    eval_every: int | None = None,
    callbacks: Sequence[Callable[[StepInfo], Any]] = (),
    progress: bool = True,
) -> RunOutputs:
    """Train a GQN on procedural rooms and write its results into ``out``.

    The training scenes (indices ``0 .. train_scenes - 1`` of ``Rooms(seed=seed)``) are rendered once on the
    device (or per batch with ``render_on_the_fly``); the test scenes come from indices >= 10,000,000. The
    pixel sigma anneals ``sigma_start -> sigma_end`` (``sigma_schedule``: linearly, or geometrically so that the
    run spends its first half above sqrt(start * end), learning the deterministic rendering, and its second half
    at the sharp likelihood that makes the latents worth their KL) and the learning rate ``lr -> lr_end`` over
    ``anneal_steps`` (default: the whole run). With ``eval_every`` the novel-view MSE of the first 64 test
    scenes is recorded every so many steps (``summary["test_mse_curve"]``). Files in ``out``:
    ``checkpoints/``, ``loss.png``, ``predictions.png``, ``samples.png``, ``summary.json``, and with ``eval_every``
    ``probe_mse.json`` and ``probe_mse.png`` (:func:`probe_curve_figure`: while sigma anneals, the loss curve shows
    little else). ``model_options`` replace the tier's :class:`GQN` settings (e.g. ``{"coordinates": True}``).
    ``max_context`` caps the context views of a training batch (uniform on ``1..max_context``; default
    ``num_views - 1``); the held-out scores always use ``1..num_views - 1``.
    """
    one_of(tier, "tier", TIERS)
    for arg, value in {"steps": steps, "train_scenes": train_scenes, "test_scenes": test_scenes}.items():
        integer(value, arg)
    checked_max_context(max_context, num_views)  # before any rendering
    settings = TIERS[tier]
    batch_size = int(batch_size or settings["batch_size"])
    lr = float(lr or settings["lr"])
    lr_end = float(lr_end or settings["lr_end"])
    sigma_start = float(sigma_start or settings["sigma"][0])
    sigma_end = float(sigma_end or settings["sigma"][1])
    sigma_schedule = one_of(sigma_schedule or settings["sigma_schedule"], "sigma_schedule", SIGMA_SCHEDULES)
    anneal = int(anneal_steps or steps)
    run = RunFolder(out, resume, overwrite)
    dev = resolve_device(device)

    rooms = Rooms(**settings["rooms"], num_views=num_views, seed=seed)
    overrides: dict[str, Any] = {**(model_options or {}), "checkpoint_steps": checkpoint_steps, "sigma": sigma_start}
    if representation is not None:
        overrides["representation"] = representation
    if draw_steps is not None:
        overrides["steps"] = draw_steps
    with forked(seed):  # the networks' initialisation
        model = build_gqn(tier, **overrides).to(dev)

    t0 = time.perf_counter()
    if render_on_the_fly:
        train = GQNDataset(rooms, num_scenes=train_scenes, seed=seed, device=dev, max_context=max_context)
    else:
        rendered = rooms.generate(train_scenes, device=dev, as_uint8=True, progress=progress)
        train = GQNDataset(rendered, seed=seed, device=dev, max_context=max_context)
    test_rooms = rooms.generate(test_scenes, start=TEST_START, device=dev)
    test = GQNDataset(test_rooms, seed=seed + 1, device=dev)
    render_seconds = time.perf_counter() - t0
    before = evaluate_gqn(model, test, sigma=sigma_end, seed=seed)
    logger.info("before training: %s", before)

    cpu_started = time.process_time()
    if sigma_schedule == "linear":
        sigma_values = linear_anneal(sigma_start, sigma_end, anneal)
    else:
        sigma_values = exponential_anneal(sigma_start, sigma_end, 0, anneal)
    sigma_anneal = AnnealAttribute(model, "sigma", sigma_values)
    first = run.resumed_step()
    # the probe curve lives in the folder as it grows, so that a resumed run keeps the points before its checkpoint
    # (those after it are recomputed by the resumed steps)
    curve_file = run.out / "probe_mse.json"
    curve = run.resumed_history(curve_file)
    probe = test.batch(list(range(min(64, len(test))))) if eval_every else ()
    record = ProbeCurve(model, probe, eval_every, curve, curve_file)

    fit = svi.fit(
        model,
        train,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=relative_to(linear_anneal(lr, lr_end, anneal), lr),
        callbacks=[sigma_anneal, record, *callbacks],
        device=dev,
        seed=seed,
        **run.checkpointing(checkpoint_every),
        progress=progress,
    )
    train_cpu_seconds = time.process_time() - cpu_started
    model.eval()
    after = evaluate_gqn(model, test, sigma=sigma_end, seed=seed)
    by_context = {
        str(k): evaluate_gqn(model, test, num_context=k, sigma=sigma_end, seed=seed)
        for k in sorted({1, test.max_context // 2 + 1, test.max_context})
    }
    scenes, figures = score_and_draw(model, rooms, test_rooms, run.out, seed)
    run.files.update(figures)
    logger.info("after training: %s; %s", after, scenes)

    trained = run.training_summary(fit, min(batch_size, len(train)))
    if curve:
        run.files["probe_curve"] = probe_curve_figure(curve, run.out / "probe_mse.png")

    summary = {
        "tier": tier,
        "image_size": rooms.image_size,
        "num_views": num_views,
        "max_context": train.max_context,
        "representation": model.representation_kind,
        "draw_steps": model.steps,
        "model_options": dict(model_options or {}),
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": batch_size,
        "lr": [lr, lr_end],
        "sigma": [sigma_start, sigma_end],
        "sigma_schedule": sigma_schedule,
        "anneal_steps": anneal,
        "train_scenes": train_scenes,
        "test_scenes": test_scenes,
        "seed": seed,
        **trained,
        "torch_threads": torch.get_num_threads(),
        "test_before_training": before,
        "test": after,
        "test_by_context_views": by_context,
        "test_scenes_scores": scenes,
        "rooms": rooms.config(),
        "test_mse_curve": curve,
        "evaluated_at_sigma": sigma_end,
        "render_seconds": round(render_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "seconds_per_step": round(fit.seconds / max(1, fit.steps - first), 4),
        "data": "procedural rooms (probrep.data.rooms.scene), ray cast; test scenes disjoint from training scenes",
    }
    return run.finish(summary, model)


def held_out_scene_scores(model: GQN, rooms: Rooms, test_rooms: RoomsBatch, seed: int) -> dict[str, Any]:
    """The held-out scene scores of a run's protocol: :func:`~probrep.experiments.gqn_scores.scene_scores` with 3
    context views (fewer where the scenes have fewer views) and the run's seed."""
    return scene_scores(model, rooms, test_rooms, num_context=min(3, rooms.num_views - 1), seed=seed)


def score_and_draw(
    model: GQN, rooms: Rooms, test_rooms: RoomsBatch, out: Path, seed: int
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The held-out scene scores (:func:`held_out_scene_scores`) and the figures in ``out`` of a trained model:
    what a training run reports, and what a re-score of its checkpoint recomputes, with the same random draws."""
    scenes = held_out_scene_scores(model, rooms, test_rooms, seed)
    device = next(model.parameters()).device
    with forked(seed, device):  # the samples drawn for the figures
        test = GQNDataset(test_rooms, seed=seed + 1, device=device)
        return scenes, _figures(model, test, rooms, test_rooms, out)


@torch.no_grad()
def _figures(model: GQN, test: GQNDataset, rooms: Rooms, test_rooms: RoomsBatch, out: Path) -> dict[str, Path]:
    """predictions.png (3 context views, truth, prediction, a sample for 8 scenes) and samples.png (see
    :func:`_samples_figure`) in ``out``."""
    files = {}
    cols = min(8, len(test))
    k = min(3, test.max_context)
    ctx, ctx_v, q_v, q = test.batch(list(range(cols)), num_context=k)
    pred = model.predict(ctx, ctx_v, q_v)
    sample = model.sample(ctx, ctx_v, q_v)[0]
    rows = [ctx[:, i] for i in range(k)] + [q, pred, sample]
    labels = [f"context {i + 1}" for i in range(k)] + ["true query", "prediction", "a sample"]
    files["predictions"] = image_grid(
        torch.stack(rows).cpu().numpy(),
        out / "predictions.png",
        row_labels=labels,
        title=f"held-out rooms: query views predicted from {k} context views",
    )
    files["samples"] = _samples_figure(model, rooms, test_rooms, out / "samples.png")
    return files


def _samples_figure(model: GQN, rooms: Rooms, test_rooms: RoomsBatch, path: Path, scenes: int = 4) -> Path:
    """One row per held-out scene: its first view as the only context, the true last view, the prediction, five
    samples, the per-pixel standard deviation across 16 samples (white = 0.25 or more) and the pixels the context
    camera cannot see (white). The scenes are chosen by a rule fixed before any model is seen: the first
    ``scenes // 2`` in which the query shows an object the context view misses (:func:`hidden_object_scenes`),
    then the first others, so that the figure shows samples where the context leaves something to guess."""
    hidden = hidden_object_scenes(rooms, test_rooms)
    order = [i for i in range(len(hidden)) if hidden[i]][: scenes // 2]
    order += [i for i in range(len(hidden)) if i not in order][: scenes - len(order)]
    dev = next(model.parameters()).device
    ctx, ctx_v, q_v, q = (t.to(dev) for t in context_and_query(test_rooms, order, 1))
    draws = model.sample(ctx, ctx_v, q_v, num_samples=16)
    spread = (draws.std(dim=0).mean(dim=1, keepdim=True) / 0.25).clamp(0, 1).expand(-1, 3, -1, -1)
    yaw, pitch = test_rooms.camera_yaw[order], test_rooms.camera_pitch[order]
    factors = test_rooms.factors[order]
    seen, sky = visible_from(rooms, factors, yaw[:, -1], pitch[:, -1], yaw[:, 0], pitch[:, 0], dev)
    unseen = (~seen & ~sky).float()[:, None].expand(-1, 3, -1, -1)
    columns = [ctx[:, 0], q, model.predict(ctx, ctx_v, q_v), *draws[:5], spread, unseen]
    grid = torch.stack(columns, dim=1)
    labels = [f"scene {i + 1}" + (" (object unseen)" if hidden[i] else "") for i in order]
    return image_grid(
        grid.cpu().numpy(),
        path,
        row_labels=labels,
        title="1 context view | true query | prediction | 5 samples | sample std | unseen by the context",
    )


class ProbeCurve:
    """A training callback that probes the novel-view MSE of fixed held-out scenes every ``every`` steps, beside the
    context-mean baseline, the pixel sigma and the share of live representation units, and rewrites ``path``
    (``{"history": [...]}``) with each point, so that a resumed run keeps its curve."""

    def __init__(self, model: GQN, batch: tuple[torch.Tensor, ...], every: int, curve: list, path: Path):
        self.model, self.batch, self.every, self.curve, self.path = model, batch, int(every or 0), curve, path

    def on_start(self, step: int) -> None:
        # the loop checkpoints before the callbacks run, so a run killed while probing at a checkpoint step resumes
        # after that step without its point: take it now, from the parameters the checkpoint holds
        if step and self.every and step % self.every == 0 and (not self.curve or self.curve[-1]["step"] < step):
            self.take(step)

    def __call__(self, info: StepInfo) -> None:
        if self.every and info.step % self.every == 0:
            self.take(info.step)

    def take(self, step: int) -> None:
        model = self.model
        ctx, ctx_v, q_v, q = self.batch
        with torch.no_grad():
            was = model.training
            model.eval()
            mse = float(((model.predict(ctx, ctx_v, q_v) - q) ** 2).mean())
            live = live_representation(model, ctx, ctx_v) if len(ctx) > 1 else None
            model.train(was)
            base = float(((ctx.mean(1) - q) ** 2).mean())
        self.curve.append({"step": step, "mse": mse, "baseline_mse": base, "sigma": model.sigma,
                           "live_representation": live})  # fmt: skip
        write_json({"history": self.curve}, self.path)
        logger.info("step %d: probe MSE %.5f (context-mean baseline %.5f), %s of the representation varies across "
                    "scenes", step, mse, base, "-" if live is None else f"{live:.0%}")  # fmt: skip
        if live == 0.0:
            logger.warning(
                "step %d: the representation network gives every probe scene the same r (its ReLUs have died), so "
                "the model cannot use the context any more and this run is unlikely to recover: restart it with "
                "another seed, or with model_options={'representation_output': 'linear'} (the CLI's "
                "--representation-output linear)",
                step,
            )


@torch.no_grad()
def live_representation(model: GQN, context_images: torch.Tensor, context_viewpoints: torch.Tensor) -> float:
    """The share of the representation's units (channel and position of r) that differ across the given scenes.

    The representation networks end in a ReLU (``representation_output="relu"``, the default), so a unit whose input
    turns negative for every scene outputs 0 and gets no gradient again. When every unit has died, r is the same for
    every scene, the generator renders from the latents alone and the run is stuck (a `two_colour_walls` run at
    sigma 0.35 ended so, r exactly 0, its probe MSE flat at about 0.5x the context mean from 2,000 steps on). 0.0 is
    that state; a healthy run keeps some of its units alive."""
    r = model.represent(context_images, context_viewpoints)
    if r.shape[0] < 2:
        raise ValueError("live_representation needs at least two scenes to compare")
    return float((r.std(dim=0) > 0).float().mean())


def probe_curve_figure(curve: Sequence[dict[str, float]], path: str | os.PathLike) -> Path:
    """The probe MSE against steps, as a fraction of the context-mean baseline's, with the pixel sigma beside it.

    While sigma anneals, the negative ELBO of ``loss.png`` is dominated by the Gaussian normaliser, which falls as
    log sigma does (a straight line under the geometric schedule): this is where the learning shows. ``curve`` is
    ``summary["test_mse_curve"]``: dicts with "step", "mse", "baseline_mse" and "sigma"."""
    if not curve:
        raise ValueError("probe_curve_figure needs at least one point of the probe curve (train with eval_every)")
    steps = [point["step"] for point in curve]
    ratio = [point["mse"] / point["baseline_mse"] for point in curve]
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, ratio, marker=".", lw=1.2, label="probe MSE / context-mean MSE")
    ax.axhline(1.0, color="grey", ls=":", lw=1, label="predicting the mean of the context views")
    ax.set_xlabel("step")
    ax.set_ylabel("novel-view MSE / context-mean MSE")
    ax.set_ylim(0, max(1.05, max(ratio) * 1.05))
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot(steps, [point["sigma"] for point in curve], color="tab:orange", lw=1, ls="--", label="pixel sigma")
    right.set_ylabel("pixel sigma (log scale)")
    right.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    right.yaxis.set_major_formatter(plain)
    right.yaxis.set_minor_formatter(plain)
    right.tick_params(axis="y", which="minor", labelsize=7)
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper right")
    ax.set_title(f"probe: novel views of held-out scenes, steps {steps[0]:,}-{steps[-1]:,}", fontsize=9)
    return save_figure(fig, path)
