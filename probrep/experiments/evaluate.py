"""Evaluate a representation on procedural dSprites: IRS and the disentanglement metrics, on observational
and interventional test sets drawn from the data-generating SCM; and the flagship demo built on it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probrep.causal import irs
from probrep.data import DSprites
from probrep.io import figures as reports
from probrep.training import checkpoint

logger = logging.getLogger(__name__)

ALL_METRICS = ("irs", "irs_interventional", "mig", "dci", "sap", "factor_vae", "beta_vae", "modularity", "gaussian_tc")
DEFAULT_METRICS = ("irs", "irs_interventional", "mig", "dci", "factor_vae")


def encoder_fn(model, device: torch.device | str = "cpu", batch: int = 1024) -> Callable[[np.ndarray], np.ndarray]:
    """``images [n, 1, 64, 64]`` (numpy or torch) -> posterior means ``[n, D]`` (numpy), in batches."""
    device = torch.device(device)

    def encode(images) -> np.ndarray:
        x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images, dtype=torch.float32)
        out = [model.encode(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)]
        return torch.cat(out).numpy().astype(np.float64)

    return encode


@dataclass
class Evaluation:
    """Scores by metric name, with timings and the IRS matrices for plotting."""

    scores: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    irs_matrix: np.ndarray | None = None


def evaluate(
    encode: Callable[[np.ndarray], np.ndarray],
    metrics: Sequence[str] = DEFAULT_METRICS,
    num_points: int = 10_000,
    vote_sizes: tuple[int, int] = (10_000, 5_000),
    seed: int = 0,
    progress: bool = True,
    dataset: DSprites | None = None,
) -> Evaluation:
    """Score the representation ``encode`` on procedural dSprites.

    ``num_points`` observational samples (split 2:1 into train/test for the metrics that fit predictors) are
    drawn from the data SCM; ``irs_interventional`` uses the same number drawn under ``do(shape=heart)``.
    ``vote_sizes`` are the (train, eval) sizes of the FactorVAE / BetaVAE score protocols.
    """
    from probrep import metrics as m

    unknown = [name for name in metrics if name not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; available: {', '.join(ALL_METRICS)}")
    ds = dataset or DSprites()
    classes, images = ds.sample_scm(ds.scm(), num_points, seed=seed)
    codes = encode(images)
    factors = classes[:, 1:]  # colour has a single value
    split = (2 * num_points) // 3
    train, test = slice(0, split), slice(split, None)
    result = Evaluation()
    for name in metrics:
        start = time.perf_counter()
        if name == "irs":
            res = irs(factors, codes)
            result.scores[name] = {"score": res.score, "num_active_dims": res.num_active_dims}
            result.irs_matrix = res.matrix
        elif name == "irs_interventional":
            c_int, im_int = ds.sample_scm(ds.scm().do({"shape": 2}), num_points, seed=seed + 1)
            res = irs(c_int[:, 2:], encode(im_int))  # shape is constant under the intervention
            result.scores[name] = {"score": res.score, "num_active_dims": res.num_active_dims}
        elif name == "mig":
            result.scores[name] = {"score": m.mig(factors, codes).score}
        elif name == "dci":
            d = m.dci(factors[train], codes[train], factors[test], codes[test])
            result.scores[name] = {
                "disentanglement": d.disentanglement,
                "completeness": d.completeness,
                "informativeness": d.informativeness,
            }
        elif name == "sap":
            result.scores[name] = {"score": m.sap(factors[train], codes[train], factors[test], codes[test]).score}
        elif name == "modularity":
            result.scores[name] = {"score": m.modularity(factors, codes).score}
        elif name == "gaussian_tc":
            result.scores[name] = {"nats": float(m.gaussian_total_correlation(codes))}
        elif name in ("factor_vae", "beta_vae"):
            fn = m.factor_vae_score if name == "factor_vae" else m.beta_vae_score
            r = fn(ds, encode, num_train=vote_sizes[0], num_eval=vote_sizes[1], seed=seed, progress=progress)
            result.scores[name] = {"score": r.score}
        result.seconds[name] = round(time.perf_counter() - start, 2)
        logger.info("%s: %s (%.1f s)", name, result.scores[name], result.seconds[name])
    return result


def headline(scores: dict[str, Any]) -> dict[str, float]:
    """One number per metric for tables: the score, or DCI's disentanglement."""
    out = {}
    for name, value in scores.items():
        if name == "dci":
            out["dci_disentanglement"] = value["disentanglement"]
            out["dci_completeness"] = value["completeness"]
            out["dci_informativeness"] = value["informativeness"]
        else:
            out[name] = value.get("score", value.get("nats"))
    return out


def irs_heatmap(matrices: dict[str, np.ndarray], factor_names: Sequence[str], path: str | Path) -> Path:
    """IRS matrices [D, K] side by side (rows: latents, columns: factors)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(matrices), figsize=(4.2 * len(matrices), 4.2), squeeze=False)
    for ax, (title, matrix) in zip(axes[0], matrices.items()):
        image = ax.imshow(np.nan_to_num(matrix, nan=0.0), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(factor_names)), factor_names, rotation=45, ha="right")
        ax.set_yticks(range(matrix.shape[0]), [f"z{i}" for i in range(matrix.shape[0])])
        ax.set_title(f"IRS matrix: {title}")
        fig.colorbar(image, ax=ax, fraction=0.046)
    return reports.save_figure(fig, path)


def load_run(run_dir: str | Path):
    """A trained model from a ``probrep train vae`` / demo run folder (summary.json + checkpoints/)."""
    from probrep.experiments.vae_dsprites import build_model

    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path} not found: pass a folder written by 'probrep train vae'")
    summary = json.loads(summary_path.read_text())
    latest = checkpoint.latest(run_dir / "checkpoints")
    if latest is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir / 'checkpoints'}")
    model = build_model(
        summary["model"], summary["latent_dim"], summary["beta"], summary.get("gamma") or 10.0, summary["arch"],
        dataset_size=737_280,
    )  # fmt: skip
    state = checkpoint.load(latest)
    if state.get("module") is None:
        raise ValueError(f"checkpoint {latest} holds no module state")
    model.load_state_dict(state["module"])
    return model.eval(), summary


def demo(
    out: str | Path = "runs/demo",
    steps: int = 1500,
    device: str = "auto",
    seed: int = 0,
    num_points: int = 3000,
    vote_sizes: tuple[int, int] = (1000, 500),
    progress: bool = True,
) -> dict[str, Any]:
    """The flagship pipeline: train a VAE (beta=1) and a beta-VAE (beta=4) on procedural dSprites, score both
    with IRS (observational and under do(shape=heart)), MIG, DCI and the FactorVAE score, and write a report.

    Files in ``out``: ``metrics.json``, ``irs_matrices.png``, and per model ``<name>/`` with its checkpoint,
    loss curve, reconstructions and traversals. The FactorVAE score uses ``vote_sizes`` (train, eval) votes,
    fewer than the protocol's 10,000 / 5,000 so the demo fits in minutes; ``probrep evaluate`` runs the full
    protocol on a saved run.
    """
    from probrep.experiments.vae_dsprites import train_vae_on_dsprites

    out = Path(out)
    started = time.perf_counter()
    ds = DSprites()
    report: dict[str, Any] = {"steps": steps, "seed": seed, "num_points": num_points, "models": {}}
    matrices = {}
    for name, beta in (("vae", 1.0), ("beta_vae", 4.0)):
        print(f"\n[{name}] training (beta={beta}, {steps} steps)")
        run = train_vae_on_dsprites(out / name, beta=beta, steps=steps, device=device, seed=seed, progress=progress)
        print(f"[{name}] evaluating")
        encode = encoder_fn(run.model, next(run.model.parameters()).device)
        evaluation = evaluate(
            encode, DEFAULT_METRICS, num_points=num_points, vote_sizes=vote_sizes, seed=seed, progress=progress,
            dataset=ds,
        )  # fmt: skip
        matrices[f"{name} (beta={beta:g})"] = evaluation.irs_matrix
        report["models"][name] = {
            "beta": beta,
            "training": run.summary,
            "scores": evaluation.scores,
            "headline": headline(evaluation.scores),
            "seconds": evaluation.seconds,
            "files": {k: str(v) for k, v in run.files.items()},
        }
    report["seconds"] = round(time.perf_counter() - started, 1)
    files = {
        "metrics": reports.write_json(report, out / "metrics.json"),
        "irs_matrices": irs_heatmap(matrices, ds.factor_names[1:], out / "irs_matrices.png"),
    }
    report["files"] = {k: str(v) for k, v in files.items()}
    _print_table(report)
    return report


def _print_table(report: dict[str, Any]) -> None:
    names = list(report["models"])
    rows = list(report["models"][names[0]]["headline"])
    print("\n" + f"{'metric':24s}" + "".join(f"{n:>14s}" for n in names))
    for row in rows:
        print(f"{row:24s}" + "".join(f"{report['models'][n]['headline'][row]:14.3f}" for n in names))
    for n in names:
        t = report["models"][n]["training"]
        print(f"{n}: held-out negative ELBO {t['held_out_negative_elbo_per_image']:.1f} nats/image, "
              f"{t['active_dimensions_kl_above_0.1']} active latents")  # fmt: skip
    print(f"\nDone in {report['seconds']:.0f} s. Report: {Path(report['files']['metrics']).resolve()}")
    print(f"IRS heat maps: {Path(report['files']['irs_matrices']).resolve()}")
    for n in names:
        print(f"{n}: {Path(report['models'][n]['files']['traversals']).parent.resolve()} (traversals, reconstructions)")
