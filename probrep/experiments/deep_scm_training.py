"""Training the deep SCM's image mechanism on procedural dSprites, in a resumable run folder, and loading it back.

The factors of every training image are drawn from the data SCM (:mod:`probrep.data.sprites_scm`, uniform and
independent), the image rendered from them, and the conditional VAE fitted with ``svi.fit`` on (image, condition)
pairs. A fixed tenth of the factor grid (:func:`held_out_mask`) never appears in training: evaluations draw their
images from it, so every held-out image shows a factor combination the mechanism never saw.

    run = train_deep_scm("runs/deep_scm", steps=3000)          # resume=True continues an interrupted run
    deep = load_deep_scm("runs/deep_scm")                      # a DeepSCM in eval mode
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from probrep._checks import one_of
from probrep.data.sprites import FACTOR_SIZES, DSprites
from probrep.data.sprites_scm import classes_from_samples, dsprites_scm
from probrep.device import resolve_device
from probrep.experiments.deep_scm import CONDITION_DIM, FACTOR_NODES, DeepSCM, PlacedSpriteDecoder, factor_features
from probrep.experiments.run_folder import RunFolder, RunOutputs
from probrep.inference import svi
from probrep.io.figures import image_grid
from probrep.models.conditional_vae import ConditionalVAE
from probrep.training import checkpoint
from probrep.training.rng import forked

HELD_OUT_FRACTION = 0.1
_HELD_OUT_SEED = 20_200_617  # fixed: the split belongs to the experiment, not to a run


_SPRITES: list[DSprites] = []


def sprites() -> DSprites:
    """One shared renderer (its patch bank is built once per process)."""
    if not _SPRITES:
        _SPRITES.append(DSprites())
    return _SPRITES[0]


def held_out_mask() -> np.ndarray:
    """bool ``[737280]`` over the dSprites grid (index order): the combinations kept out of training."""
    return np.random.default_rng(_HELD_OUT_SEED).random(int(np.prod(FACTOR_SIZES))) < HELD_OUT_FRACTION


def _grid_index(classes: np.ndarray) -> np.ndarray:
    full = np.zeros((classes.shape[0], 6), dtype=np.int64)
    full[:, 1:] = classes
    return np.asarray(sprites().classes_to_index(full)).reshape(-1)


def draw_factors(n: int, seed: int, held_out: bool) -> np.ndarray:
    """``n`` factor-class rows ``[n, 5]`` from the data SCM, kept to the held-out part of the grid or to the rest."""
    scm, mask, rows, k = dsprites_scm(FACTOR_SIZES), held_out_mask(), [], 0
    while sum(len(r) for r in rows) < n:
        draw = classes_from_samples(scm.sample(max(2 * n, 1000), seed=seed + 7919 * k, backend="numpy"))[:, 1:]
        rows.append(draw[mask[_grid_index(draw)] == held_out])
        k += 1
    return np.concatenate(rows)[:n]


class FactorImages(Dataset):
    """(image ``[1, 64, 64]``, condition ``[CONDITION_DIM]``) pairs from factor classes ``[N, 5]``, rendered when
    a batch is fetched."""

    def __init__(self, classes: np.ndarray):
        self.classes = np.asarray(classes, dtype=np.int64)
        self.features = factor_features(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def images(self, rows: Any) -> torch.Tensor:
        cls = self.classes[np.asarray(rows, dtype=np.int64).reshape(-1)]
        full = np.zeros((len(cls), 6), dtype=np.int64)
        full[:, 1:] = cls
        return torch.from_numpy(sprites().render(full))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images([i])[0], self.features[i]

    def __getitems__(self, rows: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        imgs, feats = self.images(rows), self.features[np.asarray(rows, dtype=np.int64)]
        return [(imgs[k], feats[k]) for k in range(len(rows))]


DECODERS = ("placed", "generic")


def build_cvae(
    latent_dim: int = 4, beta: float = 1.0, hidden: int = 256, arch: str = "conv", decoder: str = "generic"
) -> ConditionalVAE:
    """The image mechanism for 64x64 dSprites under the five factors: the conditional VAE with the ``arch``'s
    networks (``decoder="generic"``: position is one more input to learn) or with the
    :class:`~probrep.experiments.deep_scm.PlacedSpriteDecoder` (``"placed"``: position translates a drawn window)."""
    one_of(decoder, "decoder", DECODERS)
    own = PlacedSpriteDecoder(latent_dim, hidden) if decoder == "placed" else None
    return ConditionalVAE((1, 64, 64), CONDITION_DIM, latent_dim, beta=beta, arch=arch, hidden=hidden, decoder=own)


def train_deep_scm(
    out: str | os.PathLike,
    *,
    steps: int = 3000,
    batch_size: int = 64,
    lr: float = 1e-3,
    latent_dim: int = 4,
    beta: float = 1.0,
    hidden: int = 256,
    arch: str = "conv",
    decoder: str = "placed",
    n_train: int = 200_000,
    n_eval: int = 512,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int = 250,
    progress: bool = True,
    figures: bool = True,
) -> RunOutputs:
    """Fit the deep SCM's image mechanism and leave ``checkpoints/``, ``loss.png``, ``reconstructions.png``,
    ``counterfactuals.png`` (one held-out image per column: the data, its reconstruction, then do(shape) for
    each shape) and ``summary.json`` in ``out``; the held-out negative ELBO is measured on ``n_eval`` images.
    ``resume=True`` continues from the last checkpoint (a finished run is returned as it is); ``figures=False``
    leaves out the two image grids."""
    run = RunFolder(out, resume, overwrite)
    if resume and run.resumed_step() >= steps and (run.out / "summary.json").is_file():
        # a finished run: leave its summary (training time, losses) and figures as they are
        summary = json.loads((run.out / "summary.json").read_text())
        return RunOutputs(out=run.out, files={"summary": run.out / "summary.json"}, summary=summary,
                          model=load_deep_scm(run.out, device=resolve_device(device)))  # fmt: skip
    with forked(seed):
        cvae = build_cvae(latent_dim, beta, hidden, arch, decoder)
    data = FactorImages(draw_factors(n_train, seed, held_out=False))
    fit = svi.fit(cvae, data, steps=steps, batch_size=batch_size, lr=lr, device=device, seed=seed,
                  **run.checkpointing(checkpoint_every), progress=progress)  # fmt: skip
    cvae.eval()
    trained = run.training_summary(fit, batch_size, "negative ELBO per image (nats)" if beta == 1.0 else
                                   "training objective per image (beta-weighted)")  # fmt: skip
    deep = DeepSCM(cvae)
    test = FactorImages(draw_factors(n_eval, seed + 1, held_out=True))
    x, c = test.images(np.arange(n_eval)).to(fit.device), test.features.to(fit.device)
    with forked(seed + 2, fit.device):
        nelbo = float(cvae.negative_elbo(x, c).mean())
    kl = cvae.kl_per_dimension(x, c).mean(0).cpu().numpy()
    if figures:
        _figures(run, deep, x, c, test.classes)
    summary = {
        "model": "deep_scm",
        "settings": {"latent_dim": latent_dim, "beta": beta, "hidden": hidden, "arch": arch, "decoder": decoder},
        "batch_size": batch_size,
        "lr": lr,
        "n_train": n_train,
        "seed": seed,
        **trained,
        "held_out_negative_elbo_per_image": nelbo,
        "kl_per_dimension": [float(v) for v in kl],
        "data": "procedural dSprites; factors from the data SCM, a fixed 10% of the grid held out",
    }
    return run.finish(summary, deep)


def _figures(run: RunFolder, deep: DeepSCM, x: torch.Tensor, c: torch.Tensor, classes: np.ndarray) -> None:
    """Reconstructions and counterfactuals (do(shape) for each shape) of the first eight held-out images."""
    shown = np.arange(min(8, len(x)))
    cf = [deep.counterfactual(_evidence(x[shown], classes[shown]), do={"shape": s})["counterfactual"]["image"]
          for s in range(3)]  # fmt: skip
    run.files["reconstructions"] = image_grid(
        torch.stack([x[shown], deep.cvae.reconstruct(x[shown], c[shown])]).cpu().numpy(),
        run.out / "reconstructions.png",
        row_labels=["data", "recon"],
        title="held-out dSprites and their reconstructions",
    )
    run.files["counterfactuals"] = image_grid(
        torch.stack([x[shown], *cf]).cpu().numpy(),
        run.out / "counterfactuals.png",
        row_labels=["data", "do square", "do ellipse", "do heart"],
        title="counterfactuals of held-out images",
    )


def _evidence(x: torch.Tensor, classes: np.ndarray) -> dict[str, Any]:
    return {"image": x, **{name: classes[:, j] for j, name in enumerate(FACTOR_NODES)}}


def load_deep_scm(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> DeepSCM:
    """The deep SCM of a ``train_deep_scm`` run folder (its summary and latest checkpoint), in eval mode."""
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass a folder written by train_deep_scm")
    try:
        summary = json.loads(path.read_text())
        settings = dict(summary["settings"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} does not hold a deep SCM run's summary: {type(exc).__name__}: {exc}") from None
    latest = checkpoint.latest(run_dir / "checkpoints")
    if latest is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir / 'checkpoints'}")
    try:
        cvae = build_cvae(**settings)
        cvae.load_state_dict(checkpoint.load(latest)["module"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ValueError(f"checkpoint {latest} does not fit the model {path} describes: {exc}") from exc
    return DeepSCM(cvae.to(device).eval())
