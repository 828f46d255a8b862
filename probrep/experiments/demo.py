"""The flagship pipeline behind ``make demo``: the disentanglement study's shipped models on procedural dSprites
(traversals, IRS heat maps, scores of the VAE against the regularised models), and a short fresh training run
that shows the loop working, each number labelled with where it comes from."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from probrep.data import DSprites
from probrep.device import resolve_device
from probrep.experiments import pretrained
from probrep.experiments.evaluate import (
    downstream_plot,
    encoder_fn,
    evaluate,
    headline,
    irs_heatmap,
    labelled_traversals,
)
from probrep.experiments.vae_dsprites import train_vae_on_dsprites
from probrep.io.json_file import write_json

logger = logging.getLogger(__name__)

#: scored live on every model: cheap enough for a demo (the sampled scores come from the study)
LIVE_METRICS = ("irs", "irs_interventional", "mig", "dci")
#: the shipped models' downstream utility: gradient-boosted trees (LightGBM) fitted on 10 / 100 / 1,000 labels
DOWNSTREAM_MODELS = ("gbt",)


def demo(
    out: str | Path = "runs/demo",
    steps: int = 600,
    device: str = "auto",
    seed: int = 0,
    num_points: int = 3000,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the shipped models and a freshly trained beta-VAE, and write a report.

    1. Shipped weights (:mod:`probrep.experiments.pretrained`, made by ``benchmarks/disentanglement_study.py``):
       each is scored now with IRS (observational and under do(shape=heart)), MIG and DCI (LightGBM estimator)
       on ``num_points`` images, and drawn as labelled traversals; the study's own scores over its seeds
       (BetaVAE and FactorVAE scores included) are reported beside them. Their downstream utility too: the
       test accuracy of gradient-boosted trees predicting each factor from the codes with 10, 100 and 1,000
       labels (of the ``2/3 num_points`` training rows), and its sample efficiency (accuracy at 100 / at the
       largest size), drawn in ``downstream.png``.
    2. A fresh beta-VAE (beta = 4) trained for ``steps`` steps from scratch, scored the same way: it shows the
       training loop working, not a disentangled model (that takes the study's budget).

    Files in ``out``: ``metrics.json``, ``irs_matrices.png``, ``downstream.png`` (with shipped models),
    ``shipped/<name>_traversals.png``, and
    ``fresh_beta_vae/`` (checkpoint, loss curve, reconstructions, traversals, summary).
    """
    out = Path(out)
    started = time.perf_counter()
    ds = DSprites()
    report: dict[str, Any] = {"steps": steps, "seed": seed, "num_points": num_points, "shipped": {}, "fresh": {}}
    evaluations, downstream = {}, {}  # by panel title, for the IRS heat maps

    def score(model, metrics=LIVE_METRICS) -> Any:
        encode = encoder_fn(model, next(model.parameters()).device)
        return evaluate(encode, metrics, num_points=num_points, seed=seed, progress=False, dataset=ds,
                        dci_estimator="lightgbm", downstream_models=DOWNSTREAM_MODELS)  # fmt: skip

    names = pretrained.available()
    if not names:
        logger.warning("no shipped weights in %s: only the fresh run", pretrained.WEIGHTS)
    for name in names:
        logger.info("[shipped %s] scoring", name)
        model, info = pretrained.load(name, resolve_device(device))
        evaluation = score(model, (*LIVE_METRICS, "downstream"))
        downstream[name] = evaluation.scores["downstream"]
        evaluations[f"{name} (shipped)"] = evaluation
        title = f"{name}: shipped weights (study seed {info['seed']}, {info['steps']} steps)"
        traversals = labelled_traversals(model, out / "shipped" / f"{name}_traversals.png", title, ds, seed)
        report["shipped"][name] = {
            "measured_now": headline(evaluation.scores),
            "downstream": downstream[name],
            "study_over_seeds": info["scores_over_seeds"],
            "trained": {k: info[k] for k in ("model", "settings", "seed", "steps", "made_by")},
            "files": {"traversals": str(traversals)},
        }

    logger.info("[fresh beta-VAE] training %d steps", steps)
    # the demo's folder is its own: a rerun replaces the earlier demo's fresh run
    run = train_vae_on_dsprites(
        out / "fresh_beta_vae", beta=4.0, steps=steps, device=device, seed=seed, progress=progress, overwrite=True
    )
    evaluation = score(run.model)
    evaluations["beta-VAE (fresh)"] = evaluation
    report["fresh"] = {
        "model": "vae",
        "beta": 4.0,
        "measured_now": headline(evaluation.scores),
        "training": run.summary,
        "files": {k: str(v) for k, v in run.files.items()},
    }
    matrices, shares, active = ({title: getattr(e, key) for title, e in evaluations.items()}
                                for key in ("irs_matrix", "irs_weights", "irs_active"))  # fmt: skip
    files = {"irs_matrices": irs_heatmap(matrices, ds.factor_names[1:], out / "irs_matrices.png", shares, active)}
    if downstream:
        title = "shipped models: gradient-boosted trees on the codes"
        files["downstream"] = downstream_plot(downstream, out / "downstream.png", title)
    report["files"] = {"metrics": str(out / "metrics.json"), **{k: str(v) for k, v in files.items()}}
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_json(report, out / "metrics.json")
    return report
