"""End-to-end runs behind the ``probrep`` command: train a VAE-family model on procedural dSprites and leave
a checkpoint, a loss curve, reconstructions, latent traversals and a JSON summary in one folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from probrep.data import DSprites
from probrep.experiments.run_folder import RunFolder, RunOutputs
from probrep.experiments.vae_family import MODELS, SETTINGS, WEIGHTS
from probrep.inference import svi
from probrep.io.figures import image_grid
from probrep.models import DIPVAE, VAE, AnnealedVAE, BetaTCVAE, FactorVAE
from probrep.models.vae import kl_to_standard_normal
from probrep.training import checkpoint
from probrep.training.rng import forked
from probrep.training.schedules import AnnealAttribute, linear_anneal

logger = logging.getLogger(__name__)


def build_model(
    kind: str,
    latent_dim: int = 10,
    *,
    beta: float = 1.0,
    tc_weight: float = 6.0,
    tc_estimator: str = "mws",
    gamma: float = 10.0,
    lambda_od: float = 10.0,
    c_max: float = 25.0,
    capacity_weight: float = 1000.0,
    arch: str = "conv",
    dataset_size: int | None = None,
) -> VAE:
    """One of the VAE family for 64x64 dSprites, each with its own weight: ``beta`` (the KL weight of the
    (beta-)VAE), ``tc_weight`` (beta-TCVAE's total-correlation weight; ``tc_estimator`` its estimate,
    :data:`probrep.models.vae.TC_ESTIMATORS`), ``gamma`` (FactorVAE's), ``lambda_od``
    (DIP-VAE's off-diagonal weight), ``c_max`` and ``capacity_weight`` (the AnnealedVAE's capacity)."""
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}: expected one of {sorted(MODELS)}")
    common = {"image_shape": (1, 64, 64), "latent_dim": latent_dim, "arch": arch}
    if kind == "betatcvae":
        return BetaTCVAE(**common, tc_weight=tc_weight, dataset_size=dataset_size, estimator=tc_estimator)
    if kind == "factorvae":
        return FactorVAE(**common, gamma=gamma)
    if kind in ("dipvae_i", "dipvae_ii"):
        return DIPVAE(**common, dip_type=kind.split("_")[1], lambda_od=lambda_od)
    if kind == "annealedvae":
        return AnnealedVAE(**common, c_max=c_max, capacity_weight=capacity_weight)
    return VAE(**common, beta=beta)


def negative_elbo(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """The negative ELBO ``E_q[-log p(x|z)] + KL(q(z|x) || N(0, I))`` per image ``[N]``, one draw of z: the
    same quantity for every member of the family, whatever weights (beta, TC, discriminator) its training
    objective puts on its terms."""
    with torch.no_grad():
        loc, scale = model.posterior(x)
        z = loc + scale * torch.randn_like(loc)
        return -model.likelihood_dist(z).log_prob(x) + kl_to_standard_normal(loc, scale)


def train_vae_on_dsprites(
    out: str | os.PathLike,
    *,
    model: str = "vae",
    beta: float = 4.0,
    tc_weight: float = 6.0,
    tc_estimator: str = "mws",
    gamma: float = 10.0,
    lambda_od: float = 10.0,
    c_max: float = 25.0,
    capacity_weight: float = 1000.0,
    capacity_steps: int | None = None,
    latent_dim: int = 10,
    arch: str = "conv",
    steps: int = 1500,
    batch_size: int = 64,
    lr: float = 1e-3,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int = 250,
    progress: bool = True,
) -> RunOutputs:
    """Train on all 737,280 procedural dSprites images (each batch rendered on the fly) and write the results.

    ``model`` is one of :data:`MODELS`; each reads its own weight (see :func:`build_model`). The AnnealedVAE's
    capacity grows linearly from 0 to ``c_max`` over ``capacity_steps`` (default: the whole run).

    Files in ``out``: ``checkpoints/`` (resumable), ``loss.png``, ``reconstructions.png``, ``traversals.png``
    (one row per latent dimension, most informative first) and ``summary.json``.
    """
    run = RunFolder(out, resume, overwrite)
    sprites = DSprites()
    with forked(seed):  # the networks' initialisation
        given = {"beta": beta, "tc_weight": tc_weight, "tc_estimator": tc_estimator, "gamma": gamma,
                 "lambda_od": lambda_od, "c_max": c_max, "capacity_weight": capacity_weight}  # fmt: skip
        settings = {name: given[name] for name in SETTINGS[model]} if model in SETTINGS else {}
        vae = build_model(model, latent_dim, **settings, arch=arch, dataset_size=len(sprites))
    callbacks = []
    if model == "annealedvae":
        callbacks.append(AnnealAttribute(vae, "capacity", linear_anneal(0.0, c_max, capacity_steps or steps)))
    data = sprites.torch_dataset(return_factors=False)
    fit = svi.fit(
        vae,
        data,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        device=device,
        seed=seed,
        **run.checkpointing(checkpoint_every),
        progress=progress,
        callbacks=callbacks,
    )
    vae.eval()
    weighted = model != "vae" or beta != 1.0
    trained = run.training_summary(
        fit,
        min(batch_size, len(sprites)),
        f"training objective per image{' (weighted, not the ELBO)' if weighted else ' (negative ELBO, nats)'}",
    )
    files = run.files

    rng = np.random.default_rng(seed + 1)
    held_out = torch.from_numpy(sprites.render(sprites.sample_factors(512, rng))).to(fit.device)
    kl = vae.kl_per_dimension(held_out).mean(0).cpu().numpy()
    variance = vae.posterior_mean_variance(held_out).cpu().numpy()
    order = np.argsort(-kl)
    shown = held_out[:8]
    recon = vae.reconstruct(shown)
    files["reconstructions"] = image_grid(
        torch.stack([shown, recon]).cpu().numpy(),
        run.out / "reconstructions.png",
        row_labels=["data", "recon"],
        title="procedural dSprites and their reconstructions",
    )
    values = torch.linspace(-2.5, 2.5, 9)
    rows = [vae.traverse(shown[:1], int(d), values)[0] for d in order]
    grid = torch.stack(rows).cpu().numpy()
    files["traversals"] = image_grid(
        grid,
        run.out / "traversals.png",
        row_labels=[f"z{d} KL {kl[d]:.2f}" for d in order],
        title="latent traversals from -2.5 to 2.5 (rows sorted by KL)",
    )
    with forked(seed + 2, fit.device), torch.no_grad():  # the draws of z
        nelbo = float(negative_elbo(vae, held_out).mean())
        objective = svi.make_elbo(None, vae).loss(vae.model, vae.guide, held_out) / len(held_out)
    summary = {
        "model": model,
        WEIGHTS[model]: settings[WEIGHTS[model]],
        "settings": {**settings, **({"capacity_steps": capacity_steps or steps} if model == "annealedvae" else {})},
        "latent_dim": latent_dim,
        "arch": arch,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        **trained,
        "held_out_negative_elbo_per_image": nelbo,
        "held_out_training_objective_per_image": float(objective),
        "active_dimensions_kl_above_0.1": int((kl > 0.1).sum()),
        # Burda et al.'s count, which KL spent on a posterior the same for every image does not fool
        "informative_dimensions_mean_variance_above_0.01": int((variance > 0.01).sum()),
        "kl_dimensions_without_information": [int(d) for d in np.flatnonzero((kl > 0.1) & (variance <= 0.01))],
        "kl_per_dimension": [float(v) for v in kl],
        "posterior_mean_variance_per_dimension": [float(v) for v in variance],
        "data": "procedural dSprites (a regeneration of the factor grid, not the original pixels)",
    }
    return run.finish(summary, vae)


def load_run(run_dir: str | Path):
    """A trained model from a ``probrep train vae`` / demo run folder (summary.json + checkpoints/). A summary
    that is not JSON, or lacks what the model is built from, is refused with a ``ValueError`` naming the file
    and the key (the CLI prints it as an error, not a traceback)."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path} not found: pass a folder written by 'probrep train vae'")
    try:
        summary = json.loads(summary_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{summary_path} is not valid JSON: {type(exc).__name__}: {exc}") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{summary_path} must hold a JSON object, got {type(summary).__name__}")
    missing = [key for key in ("model", "latent_dim", "arch") if key not in summary]
    if missing:
        raise ValueError(f"{summary_path} lacks the key(s) {missing}: was it written by 'probrep train vae'?")
    if summary["model"] not in MODELS:
        raise ValueError(f"{summary_path}: key 'model' must be one of {list(MODELS)}, got {summary['model']!r}")
    if not isinstance(summary.get("settings") or {}, dict):
        raise ValueError(f"{summary_path}: key 'settings' must be an object, got {summary['settings']!r}")
    latest = checkpoint.latest(run_dir / "checkpoints")
    if latest is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir / 'checkpoints'}")
    kind = summary["model"]
    settings = dict(summary.get("settings") or _legacy_settings(summary))
    settings.pop("capacity_steps", None)  # how the capacity was annealed, not how the model is built
    try:
        model = build_model(kind, summary["latent_dim"], **settings, arch=summary["arch"], dataset_size=737_280)
    except (TypeError, ValueError, RuntimeError) as exc:  # a wrong type or value under a key, a setting the
        # model lacks, or a size torch cannot allocate
        raise ValueError(f"{summary_path} does not describe a model that can be built: {exc}") from exc
    state = checkpoint.load(latest)
    if not isinstance(state, dict) or not isinstance(state.get("module"), dict):
        raise ValueError(f"checkpoint {latest} holds no module state")
    try:
        model.load_state_dict(state["module"])
    except (RuntimeError, TypeError) as exc:  # torch's message for other names, shapes or non-tensors
        raise ValueError(f"checkpoint {latest} does not fit the model {summary_path} describes: {exc}") from exc
    return model.eval(), summary


def _legacy_settings(summary: dict) -> dict:
    """The settings of a summary written before runs recorded them: the model's weight at the top level (beta-TCVAE
    kept its weight under "beta"); absent or null keys take the defaults, a recorded 0 stays 0."""
    kind = summary["model"]
    if kind == "betatcvae":
        weight = summary.get("tc_weight", summary.get("beta"))
        return {} if weight is None else {"tc_weight": weight}
    return {name: summary[name] for name in SETTINGS.get(kind, ()) if summary.get(name) is not None}
