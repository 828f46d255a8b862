"""What a trained AIR counts and why: count accuracy and confusion against true counts, *ghost* windows
(present but drawing nothing), and the ELBO with the count forced, which tells over-counting that the objective
prefers from a guide stuck in a local optimum."""

from __future__ import annotations

import numpy as np
import torch
from pyro import poutine

from probrep._checks import integer
from probrep.models.air.model import AIR, AIRInference


def count_confusion(true_counts, inferred_counts, max_true: int, max_inferred: int) -> np.ndarray:
    """Confusion matrix ``[max_true + 1, max_inferred + 1]``: row = true count, column = inferred count."""
    t = np.asarray(true_counts, dtype=np.int64).reshape(-1)
    i = np.asarray(inferred_counts, dtype=np.int64).reshape(-1)
    if t.shape != i.shape:
        raise ValueError(f"true_counts and inferred_counts differ in length: {t.shape} vs {i.shape}")
    if t.size and (t.min() < 0 or t.max() > max_true or i.min() < 0 or i.max() > max_inferred):
        raise ValueError(f"counts must lie in [0, {max_true}] (true) and [0, {max_inferred}] (inferred)")
    out = np.zeros((max_true + 1, max_inferred + 1), dtype=np.int64)
    np.add.at(out, (t, i), 1)
    return out


@torch.no_grad()
def count_accuracy(
    air: AIR, images: torch.Tensor, counts: torch.Tensor, batch_size: int = 500, max_count: int | None = None
) -> tuple[float, np.ndarray]:
    """Fraction of images whose greedy inferred count equals the true count, and the confusion matrix
    ``[max_count + 1, N + 1]`` (rows: true count, columns: inferred)."""
    if len(images) != len(counts):
        raise ValueError(f"images and counts differ in length: {len(images)} vs {len(counts)}")
    if len(images) == 0:
        raise ValueError("count_accuracy needs at least one image")
    true = torch.as_tensor(counts).reshape(-1).cpu().numpy()
    inferred = np.concatenate(
        [air.infer(images[i : i + batch_size]).counts.cpu().numpy() for i in range(0, len(images), batch_size)]
    )
    top = int(true.max()) if max_count is None else int(max_count)
    return float((true == inferred).mean()), count_confusion(true, inferred, top, air.num_steps)


@torch.no_grad()
def window_peaks(air: AIR, inference: AIRInference) -> torch.Tensor:
    """The brightest pixel each step's window writes on the canvas ``[B, N]``, present or not."""
    return air._placed(inference.z_where, inference.z_what).amax(-1)


@torch.no_grad()
def ghost_windows(air: AIR, images: torch.Tensor, counts, threshold: float = 0.1, batch_size: int = 500) -> dict:
    """How far ``z_pres`` counts differ from what the model draws. A *ghost* is a present window whose
    brightest pixel is below ``threshold`` (it adds nothing visible); the *visible count* counts present
    windows that are not ghosts. Returns the fraction of present windows that are ghosts and the accuracy of
    the visible count against ``counts``: a model whose visible count is right but whose ``z_pres`` count is
    not has learned the scenes' decomposition and pays the count prior for empty windows instead of switching
    them off."""
    true = torch.as_tensor(counts).reshape(-1).cpu()
    if len(images) != len(true):
        raise ValueError(f"images and counts differ in length: {len(images)} vs {len(true)}")
    present = ghosts = correct = 0
    for i in range(0, len(images), batch_size):
        inference = air.infer(images[i : i + batch_size])
        on = inference.z_pres > 0
        ghost = on & (window_peaks(air, inference) < threshold)
        present += int(on.sum())
        ghosts += int(ghost.sum())
        correct += int(((on & ~ghost).sum(1).cpu() == true[i : i + batch_size]).sum())
    return {
        "threshold": float(threshold),
        "ghost_fraction": ghosts / present if present else 0.0,
        "visible_count_accuracy": correct / len(true),
    }


@torch.no_grad()
def count_elbo(air: AIR, x: torch.Tensor, count: int, num_samples: int = 8) -> torch.Tensor:
    """The ELBO of each image ``[B]`` with the count forced to ``count``: ``z_pres = (1,..,1,0,..)`` in both
    model and guide, ``E_q[log p(x, z) - log q(z_where, z_what | x, z_pres)]`` over ``num_samples`` draws of
    the guide. Comparing counts shows which explanation the objective itself prefers, apart from the
    guide's ``z_pres`` (a model that over-counts because extra windows raise the ELBO needs a stronger
    count prior; one whose single windows explain an object badly sits in a local optimum)."""
    if integer(count, "count", minimum=0) > air.num_steps:
        raise ValueError(f"count must be an integer in [0, {air.num_steps}], got {count!r}")
    integer(num_samples, "num_samples")
    images = air._images(x)
    b = images.shape[0]
    forced = {f"z_pres_{t}": images.new_full((b,), float(t < count)) for t in range(air.num_steps)}
    total = images.new_zeros(b)
    for _ in range(num_samples):
        guide = poutine.trace(poutine.condition(air.guide, data=forced)).get_trace(images)
        model = poutine.trace(poutine.replay(poutine.condition(air.model, data=forced), trace=guide))
        joint = model.get_trace(images)
        joint.compute_log_prob()
        guide.compute_log_prob()
        log_p = sum(site["log_prob"] for site in joint.nodes.values() if site["type"] == "sample")
        log_q = sum(
            site["log_prob"]
            for name, site in guide.nodes.items()
            if site["type"] == "sample" and not name.startswith("z_pres")
        )
        total += log_p - log_q
    return total / num_samples


@torch.no_grad()
def count_elbo_table(air: AIR, images: torch.Tensor, counts, per_count: int = 100, num_samples: int = 8) -> dict:
    """Mean :func:`count_elbo` per true count (rows) and forced count 0..N (columns), over at most
    ``per_count`` images of each true count: ``{true count: [ELBO at forced count 0, 1, ..]}``."""
    true = torch.as_tensor(counts).reshape(-1).to(images.device)
    table = {}
    for c in sorted(set(true.tolist())):
        chosen = images[true == c][:per_count]
        table[int(c)] = [
            round(float(count_elbo(air, chosen, n, num_samples).mean()), 1) for n in range(air.num_steps + 1)
        ]
    return table
