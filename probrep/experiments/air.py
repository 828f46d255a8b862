"""The run behind ``probrep train air``: Attend-Infer-Repeat on procedural multi-object scenes.

Trains :class:`probrep.models.air.model.AIR` with :func:`probrep.inference.svi.fit` (TraceGraph ELBO, neural baselines
with their own learning rate), measures count accuracy and the count confusion matrix on held-out scenes every
``eval_every`` steps through a callback, and leaves in ``out``: ``checkpoints/`` (resumable), ``loss.png``,
``count_accuracy.png`` and ``count_accuracy.json`` (accuracy against steps), ``reconstructions.png`` (inputs and
reconstructions with the inferred windows drawn, one colour per step) and ``summary.json``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probrep._checks import integer
from probrep.data.objects import MultiObjects, Scenes
from probrep.experiments.run_folder import RunFolder, RunOutputs
from probrep.inference import svi
from probrep.inference.svi import TraceGraphELBO
from probrep.io.figures import pyplot, save_figure
from probrep.io.json_file import write_json
from probrep.models.air import diagnostics
from probrep.models.air.model import AIR
from probrep.training.loop import StepInfo
from probrep.training.rng import forked
from probrep.training.schedules import AnnealAttribute, exponential_anneal

logger = logging.getLogger(__name__)

STEP_COLOURS = ("#e41a1c", "#4daf4a", "#377eb8", "#ff7f00", "#984ea3", "#a65628")


class CountAccuracyLogger:
    """``svi.fit`` callback: every ``every`` steps, count accuracy and confusion on held-out scenes.

    ``history`` holds ``{"step", "accuracy", "confusion"}`` records; each evaluation is logged and, when ``path``
    is given, the history is written there as JSON (atomically).
    """

    def __init__(
        self,
        air: AIR,
        images: torch.Tensor,
        counts: torch.Tensor,
        every: int,
        path: str | os.PathLike | None = None,
        history: Sequence[dict[str, Any]] = (),
    ):
        self.air, self.images, self.counts, self.every = air, images, counts, integer(every, "every")
        self.path = None if path is None else Path(path)
        self.history: list[dict[str, Any]] = list(history)

    def evaluate(self, step: int) -> dict[str, Any]:
        """Measure now and record the result as the accuracy after ``step`` steps."""
        device = next(self.air.parameters()).device
        was_training = self.air.training
        self.air.eval()
        accuracy, confusion = diagnostics.count_accuracy(self.air, self.images.to(device), self.counts)
        self.air.train(was_training)
        record = {"step": int(step), "accuracy": accuracy, "confusion": confusion.tolist()}
        self.history = [r for r in self.history if r["step"] != step] + [record]
        logger.info(
            "step %d: count accuracy %.4f, confusion (rows true, columns inferred) %s",
            step,
            accuracy,
            confusion.tolist(),
        )
        if self.path is not None:
            write_json({"history": self.history}, self.path)
        return record

    def __call__(self, info: StepInfo) -> None:
        if info.step % self.every == 0:
            self.evaluate(info.step)


def draw_scenes(
    rows: Sequence[tuple[str, np.ndarray]],
    boxes: np.ndarray,
    present: np.ndarray,
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Save a grid of images ``[n, H, W]`` per row with the same boxes ``[n, N, 4]`` (pixel edges) drawn on
    every row, coloured by step where ``present [n, N]``."""
    plt = pyplot()
    from matplotlib.patches import Rectangle

    n = len(rows[0][1])
    fig, axes = plt.subplots(
        len(rows), n, figsize=(n * 1.1 + 1.0, len(rows) * 1.15 + 0.8), squeeze=False, layout="constrained"
    )  # two-line column titles: room above the first row
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(np.clip(images[c], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xlim(-0.5, images.shape[-1] - 0.5)
            ax.set_ylim(images.shape[-2] - 0.5, -0.5)
            for t in np.flatnonzero(present[c]):
                x0, y0, x1, y1 = boxes[c, t] - 0.5  # pixel edges -> imshow's pixel-centre coordinates
                ax.add_patch(
                    Rectangle(
                        (x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.2, edgecolor=STEP_COLOURS[t % len(STEP_COLOURS)]
                    )
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and titles is not None:
                ax.set_title(titles[c], fontsize=7)
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def accuracy_curve(history: Sequence[dict[str, Any]], path: str | os.PathLike, title: str | None = None) -> Path:
    """Count accuracy against training steps."""
    plt = pyplot()
    steps = [r["step"] for r in history]
    acc = [100.0 * r["accuracy"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, acc, marker="o", ms=3)
    ax.axhline(95.0, color="grey", lw=0.8, ls="--", label="95%")
    ax.set_xlabel("step")
    ax.set_ylabel("held-out count accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="center right")  # clear of the curve, which starts low and rises to the line
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def _scenes(tier: str, max_objects: int, n: int, seed: int) -> Scenes:
    return MultiObjects.tier(tier, max_objects=max_objects).sample(n, seed=seed)


def train_air(
    out: str | os.PathLike,
    *,
    steps: int = 5000,
    batch_size: int = 64,
    lr: float = 1e-4,
    baseline_lr: float = 1e-3,
    z_pres_prior: float = 0.01,
    z_pres_prior_final: float | None = None,
    anneal_steps: int | None = None,
    num_steps: int = 3,
    max_objects: int = 2,
    tier: str = "standard",
    n_train: int = 20000,
    n_test: int = 1000,
    eval_every: int = 250,
    guide_input: str = "residual",
    model_kwargs: dict[str, Any] | None = None,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int = 500,
    progress: bool = True,
) -> RunOutputs:
    """Train AIR on ``n_train`` procedural scenes and evaluate counting on ``n_test`` held-out ones.

    The scale prior of the model is centred on the scenes' mean window scale. ``z_pres_prior_final`` with
    ``anneal_steps`` anneals the count prior exponentially from ``z_pres_prior``. Returns the folder, its
    files, the summary and the trained model (in eval mode).
    """
    run = RunFolder(out, resume, overwrite)
    if (z_pres_prior_final is None) != (anneal_steps is None):
        raise ValueError("give both z_pres_prior_final and anneal_steps to anneal the count prior, or neither")
    integer(eval_every, "eval_every")
    integer(n_test, "n_test")
    generator = MultiObjects.tier(tier, max_objects=max_objects)
    train = generator.sample(n_train, seed=seed)
    test = generator.sample(n_test, seed=seed + 1_000_003)
    kwargs = {"scale_prior": (generator.model_scale, 0.2), "guide_input": guide_input, **(model_kwargs or {})}
    with forked(seed):  # the networks' initialisation
        air = AIR(generator.image_size, num_steps=num_steps, z_pres_prior=z_pres_prior, **kwargs)
    test_images, test_counts = test.tensors()

    callbacks = []
    first_step = run.resumed_step()
    if anneal_steps is not None:
        schedule = exponential_anneal(z_pres_prior, float(z_pres_prior_final), 0, int(anneal_steps))
        callbacks.append(AnnealAttribute(air, "z_pres_prior", schedule))
    history_path = run.out / "count_accuracy.json"
    history = run.resumed_history(history_path)
    tracker = CountAccuracyLogger(air, test_images, test_counts, eval_every, history_path, history)
    if first_step == 0:
        tracker.evaluate(0)
    callbacks.append(tracker)

    fit = svi.fit(
        air,
        train.images,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        param_options=air.baseline_param_options(baseline_lr),
        elbo=TraceGraphELBO(),
        device=device,
        seed=seed,
        callbacks=callbacks,
        **run.checkpointing(checkpoint_every),
        progress=progress,
    )
    air.eval()
    if not tracker.history or tracker.history[-1]["step"] != fit.steps:
        tracker.evaluate(fit.steps)
    final = tracker.history[-1]
    trained = run.training_summary(fit, min(batch_size, n_train))
    files = run.files
    files["count_accuracy_curve"] = accuracy_curve(
        tracker.history,
        run.out / "count_accuracy.png",
        title=f"AIR ({air.guide_input} guide), {tier} scenes with 0-{max_objects} objects, Adam {lr:g}, "
        f"baselines {baseline_lr:g}",
    )
    files["count_accuracy_history"] = history_path

    shown = test[:10]
    x = torch.from_numpy(shown.images).to(fit.device)
    inference = air.infer(x)
    recon = air.reconstruct(x, inference).cpu().numpy()[:, 0]
    boxes = air.boxes(inference.z_where).cpu().numpy()
    present = inference.z_pres.cpu().numpy() > 0
    files["reconstructions"] = draw_scenes(
        [("data", shown.images[:, 0]), ("recon", recon)],
        boxes,
        present,
        run.out / "reconstructions.png",
        titles=[f"true {t}\ninferred {i}" for t, i in zip(shown.counts, inference.counts.tolist())],
        title="held-out scenes with inferred windows (red: step 1, green: step 2, blue: step 3)",
    )
    held_out = test_images.to(fit.device)
    with forked(seed + 2, fit.device):  # the guide's draws of the diagnostics
        # which count the objective itself prefers per true count (see diagnostics.count_elbo): tells
        # over-counting from a guide stuck in a local optimum
        count_elbos = diagnostics.count_elbo_table(air, held_out, test_counts)
        ghosts = diagnostics.ghost_windows(air, held_out, test_counts)
    summary = {
        "model": "air",
        "tier": tier,
        "image_size": generator.image_size,
        "max_objects": max_objects,
        "num_steps": num_steps,
        "batch_size": batch_size,
        "lr": lr,
        "baseline_lr": baseline_lr,
        "z_pres_prior": z_pres_prior,
        "guide_input": air.guide_input,
        "z_pres_prior_final": z_pres_prior_final,
        "anneal_steps": anneal_steps,
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        **trained,
        "count_accuracy": final["accuracy"],
        "count_confusion": final["confusion"],
        "best_count_accuracy": max(r["accuracy"] for r in tracker.history),
        "count_accuracy_history": [(r["step"], r["accuracy"]) for r in tracker.history],
        "count_elbo_rows_true_columns_forced": count_elbos,
        "ghost_windows": ghosts,
        "data": "procedural multi-object scenes (dSprites shapes and stroke glyphs), probrep.data.objects",
    }
    logger.info("AIR: count accuracy %.4f after %d steps", final["accuracy"], fit.steps)
    return run.finish(summary, air)
