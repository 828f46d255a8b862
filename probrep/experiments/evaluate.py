"""Evaluate a representation on procedural dSprites: IRS and the disentanglement metrics, on observational
and interventional test sets drawn from the data-generating SCM."""

from __future__ import annotations

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
from probrep.io.figures import pyplot, save_figure

logger = logging.getLogger(__name__)

ALL_METRICS = (
    "irs", "irs_interventional", "mig", "dci", "sap", "factor_vae", "beta_vae", "modularity", "gaussian_tc",
    "downstream", "fairness", "symmetry",
)  # fmt: skip
# the dSprites factors whose steps are group actions (columns of the factors without colour): orientation is cyclic
# with period 39 (its 40 classes run over [0, 2 pi] inclusive, class 39 is class 0's angle), positions translate
SYMMETRY_FACTORS = {2: 39, 3: None, 4: None}
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
    irs_active: np.ndarray | None = None  # [D] bool: the code dimensions IRS counts as active
    irs_weights: np.ndarray | None = None  # [D]: each dimension's share of the IRS score's weight (0 if inactive)


def evaluate(
    encode: Callable[[np.ndarray], np.ndarray],
    metrics: Sequence[str] = DEFAULT_METRICS,
    num_points: int = 10_000,
    vote_sizes: tuple[int, int] = (10_000, 5_000),
    seed: int = 0,
    progress: bool = True,
    dataset: DSprites | None = None,
    dci_estimator: str = "gbt",
    n_jobs: int | None = -1,
    downstream_models: Sequence[str] = ("logistic", "gbt"),
) -> Evaluation:
    """Score the representation ``encode`` on procedural dSprites.

    ``num_points`` observational samples (split 2:1 into train/test for the metrics that fit predictors) are
    drawn from the data SCM; ``irs_interventional`` uses the same number drawn under ``do(shape=heart)``.
    ``vote_sizes`` are the (train, eval) sizes of the FactorVAE / BetaVAE score protocols. ``dci_estimator``
    picks DCI's classifiers (``"gbt"``: disentanglement_lib's; ``"lightgbm"``: fast, see
    :func:`probrep.metrics.dci`); ``n_jobs`` the threads of the fitted classifiers; ``downstream_models`` the
    classifiers of ``downstream`` (:data:`probrep.metrics.utility.MODELS`). When both sampled scores run, they
    share one :class:`probrep.metrics.CodeCache` (each distinct image encoded once; the same numbers).
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
    cache = m.CodeCache()  # the sampled scores' codes, by factor vector, shared by both
    for name in metrics:
        start = time.perf_counter()
        if name == "irs":
            res = irs(factors, codes)
            result.scores[name] = {"score": res.score, "num_active_dims": res.num_active_dims}
            result.irs_matrix, result.irs_active = res.matrix, np.asarray(res.active, dtype=bool)
            result.irs_weights = irs_weight_shares(res.max_deviations, result.irs_active)
        elif name == "irs_interventional":
            c_int, im_int = ds.sample_scm(ds.scm().do({"shape": 2}), num_points, seed=seed + 1)
            res = irs(c_int[:, 2:], encode(im_int))  # shape is constant under the intervention
            result.scores[name] = {"score": res.score, "num_active_dims": res.num_active_dims}
        elif name == "mig":
            result.scores[name] = {"score": m.mig(factors, codes).score}
        elif name == "dci":
            d = m.dci(factors[train], codes[train], factors[test], codes[test], estimator=dci_estimator, n_jobs=n_jobs)
            result.scores[name] = {
                "disentanglement": d.disentanglement,
                "completeness": d.completeness,
                "informativeness": d.informativeness,
                "estimator": dci_estimator,
            }
        elif name == "sap":
            sap = m.sap(factors[train], codes[train], factors[test], codes[test], n_jobs=n_jobs)
            result.scores[name] = {"score": sap.score}
        elif name == "modularity":
            result.scores[name] = {"score": m.modularity(factors, codes).score}
        elif name == "gaussian_tc":
            result.scores[name] = {"nats": float(m.gaussian_total_correlation(codes))}
        elif name == "downstream":
            down = m.downstream(factors[train], codes[train], factors[test], codes[test], seed=seed, n_jobs=n_jobs,
                                models=downstream_models)  # fmt: skip
            result.scores[name] = down.summary()
        elif name == "fairness":
            fair = m.fairness(factors[train], codes[train], factors[test], codes[test], seed=seed, n_jobs=n_jobs)
            result.scores[name] = {"score": fair.score, "score_max": fair.score_max, "model": fair.model}
        elif name == "symmetry":
            result.scores[name] = _symmetry(ds, encode, max(num_points // 4, 50), seed + 2)
        elif name in ("factor_vae", "beta_vae"):
            fn = m.factor_vae_score if name == "factor_vae" else m.beta_vae_score
            r = fn(ds, encode, num_train=vote_sizes[0], num_eval=vote_sizes[1], seed=seed, progress=progress,
                   cache=cache)  # fmt: skip
            result.scores[name] = {"score": r.score}
            if name == "factor_vae":  # which factors the score finds (NaN: the constant colour, never voted on)
                result.scores[name]["per_factor"] = {
                    f: float(a) for f, a in zip(ds.factor_names, r.factor_accuracy) if not np.isnan(a)
                }
        result.seconds[name] = round(time.perf_counter() - start, 2)
        logger.info("%s: %s (%.1f s)", name, result.scores[name], result.seconds[name])
    return result


def _symmetry(ds: DSprites, encode: Callable[[np.ndarray], np.ndarray], num_base: int, seed: int) -> dict[str, Any]:
    """:func:`probrep.metrics.symmetry` on dSprites: ``num_base`` factor rows drawn from the data SCM, each with
    its one-step neighbour in orientation (cyclic) and in each position, rendered and encoded."""
    from probrep import metrics as m

    base, _ = ds.sample_scm(ds.scm(), num_base, seed=seed)
    base = base.copy()
    base[:, 3] %= 39  # class 39 is class 0's angle
    base[:, 4:6] = np.minimum(base[:, 4:6], 30)  # a position step from 31 leaves the grid
    rows = [base]
    for k, period in SYMMETRY_FACTORS.items():
        step = base.copy()
        step[:, k + 1] = (step[:, k + 1] + 1) % period if period else step[:, k + 1] + 1
        rows.append(step)
    classes = np.concatenate(rows)
    res = m.symmetry(classes[:, 1:], encode(ds.render(classes)), which=list(SYMMETRY_FACTORS), cyclic={2: 39},
                     seed=seed)  # fmt: skip
    names = [ds.factor_names[1 + k] for k in res.factors]
    return {
        "score": res.score,
        "separation": res.separation,
        "equivariance": dict(zip(names, res.equivariance.tolist())),
        "axis_alignment": dict(zip(names, res.axis_alignment.tolist())),
        "moved_dims": dict(zip(names, res.moved_dims.tolist())),
    }


def headline(scores: dict[str, Any]) -> dict[str, float]:
    """One number per metric for tables: the score, or DCI's disentanglement."""
    out = {}
    for name, value in scores.items():
        if name == "dci":
            out["dci_disentanglement"] = value["disentanglement"]
            out["dci_completeness"] = value["completeness"]
            out["dci_informativeness"] = value["informativeness"]
        elif name == "downstream":
            for model in (key for key, v in value.items() if isinstance(v, dict)):
                largest = str(value["sizes"][-1])
                out[f"downstream_{model}_accuracy_{largest}"] = value[model]["accuracy"][largest]
                if value[model]["efficiency"] is not None:  # tables print numbers only
                    out[f"downstream_{model}_efficiency"] = value[model]["efficiency"]
        elif name == "symmetry":
            out["symmetry"] = value["score"]
            out["symmetry_separation"] = value["separation"]
        else:
            out[name] = value.get("score", value.get("nats"))
    return out


def downstream_plot(summary: dict[str, Any], path: str | Path, title: str = "downstream accuracy") -> Path:
    """Mean test accuracy over factors against the number of labelled training examples (log axis), one line
    per classifier, from ``evaluate(...).scores["downstream"]`` (:meth:`probrep.metrics.DownstreamResult.summary`);
    or, given ``{label: summary}`` (several representations), one line per representation and classifier."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6), layout="constrained")
    single = "sizes" in summary
    for label, one in ({"": summary} if single else summary).items():
        for model in (key for key, v in one.items() if isinstance(v, dict)):
            sizes = [int(n) for n in one[model]["accuracy"]]
            eff = one[model]["efficiency"]
            name = model if single else (label if len(_classifiers(summary)) == 1 else f"{label}, {model}")
            name += "" if eff is None else f" (efficiency {eff:.2f})"
            ax.plot(sizes, list(one[model]["accuracy"].values()), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel("mean test accuracy over factors")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def _classifiers(summaries: dict[str, Any]) -> set[str]:
    return {key for one in summaries.values() for key, v in one.items() if isinstance(v, dict)}


#: a latent with less than this share of the IRS score's weight is drawn faded: it moves so little next to the
#: others that its row (a ratio of tiny deviations, often noise) hardly enters the score
IRS_FAINT_SHARE = 0.02


def irs_weight_shares(max_deviations: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Each latent's share of the IRS score's weight: the score averages the latents' IRS weighted by their largest
    deviation ``max_dev_l`` (:func:`probrep.metrics.irs`), so ``max_dev_l / sum max_dev`` over the active latents,
    0 for inactive ones. Computed relative to the largest deviation, in powers of two, so codes near the float64
    limit neither overflow the sum nor lose the small latents' shares."""
    active = np.asarray(active, dtype=bool)
    weights = np.where(active, np.asarray(max_deviations, dtype=float), 0.0)
    if not active.any():
        return weights
    if not np.isfinite(weights).all():  # deviations past float64 (IRS reports them as inf): those share alike
        return np.isinf(weights) / np.isinf(weights).sum()
    mantissa, exponent = np.frexp(weights)
    relative = np.ldexp(mantissa, exponent - exponent[active].max())  # the largest is in [0.5, 1)
    return relative / relative.sum()


def irs_row_labels(shares: np.ndarray, active: np.ndarray) -> list[str]:
    """The heat map's row labels: each latent with its share of the score's weight (one decimal under 10%), the
    faint ones (under ``IRS_FAINT_SHARE``) and the inactive ones (IRS's: constant codes) said so."""
    labels = []
    for d, share in enumerate(shares):
        if not active[d]:
            labels.append(f"z{d} (inactive)")
        else:
            text = f"{share:.1%}" if share < 0.1 else f"{share:.0%}"
            labels.append(f"z{d} ({text}, faint)" if share < IRS_FAINT_SHARE else f"z{d} ({text})")
    return labels


def irs_heatmap(
    matrices: dict[str, np.ndarray],
    factor_names: Sequence[str],
    path: str | Path,
    weights: dict[str, np.ndarray] | None = None,
    active: dict[str, np.ndarray] | None = None,
) -> Path:
    """IRS matrices [D, K] side by side (rows: latents, columns: factors) with one shared colour bar.

    ``weights[title]`` ([D], :func:`irs_weight_shares`) is each latent's share of that IRS score's weight; each row
    is labelled with it. Rows are sorted so that a disentangled code reads as a diagonal: latents with at least
    ``IRS_FAINT_SHARE`` of the weight first, grouped by the factor each explains best, strongest first; then the
    faint latents (which barely move, so their rows are ratios of tiny deviations and hardly count) and the
    inactive (constant) ones, greyed."""
    plt = pyplot()
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(
        1, len(matrices), figsize=(4.4 * len(matrices) + 1.2, 4.6), squeeze=False, layout="constrained"
    )
    for ax, (title, matrix) in zip(axes[0], matrices.items()):
        values = np.nan_to_num(np.asarray(matrix, dtype=float), nan=0.0)
        shares = None if weights is None or title not in weights else np.asarray(weights[title], dtype=float)
        live = np.ones(len(values), bool) if active is None or title not in active else np.asarray(active[title])
        on = live if shares is None else live & (shares >= IRS_FAINT_SHARE)
        if shares is None:
            labels = [f"z{d}" if live[d] else f"z{d} (inactive)" for d in range(len(values))]
        else:
            labels = irs_row_labels(shares, live)
        # strong latents by factor, then the faint ones, then the inactive ones
        order = sorted(range(len(values)),
                       key=lambda d: (not on[d], not live[d], int(values[d].argmax()), -values[d].max()))  # fmt: skip
        image = ax.imshow(values[order], vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(factor_names)), factor_names, rotation=45, ha="right")
        ax.set_yticks(range(len(order)), [labels[d] for d in order])
        for row, (label, d) in enumerate(zip(ax.get_yticklabels(), order)):
            if not on[d]:
                label.set_color("grey")
                ax.add_patch(Rectangle((-0.5, row - 0.5), len(factor_names), 1, color="white", alpha=0.65, lw=0))
        ax.set_title(f"IRS: {title}")
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.04, pad=0.02, label="IRS (0 to 1)")
    return save_figure(fig, path)


def labelled_traversals(model, path: str | Path, title: str, dataset: DSprites | None = None, seed: int = 0) -> Path:
    """Latent traversals (-2.5 to 2.5 around one image's code), one row per latent, most informative (KL) first,
    each labelled with its KL and the factor it shares most information with (MIG's mutual-information matrix
    on 5,000 images): a disentangled model reads as one factor changing per row."""
    from probrep.io.figures import image_grid
    from probrep.metrics import mig

    ds = dataset or DSprites()
    classes, images = ds.sample_scm(ds.scm(), 5000, seed=seed)
    device = next(model.parameters()).device
    codes = encoder_fn(model, device)(images)
    mutual_info = mig(classes[:, 1:], codes).mutual_info
    with torch.no_grad():
        x = torch.from_numpy(images[:1024]).to(device)
        kl = model.kl_per_dimension(x).mean(0).cpu().numpy()
        order = np.argsort(-kl)
        values = torch.linspace(-2.5, 2.5, 9)
        grid = torch.stack([model.traverse(x[:1], int(d), values)[0] for d in order]).cpu().numpy()
    names = ds.factor_names[1:]
    labels = [f"z{d} KL {kl[d]:.1f} " + (f"~{names[int(mutual_info[d].argmax())]}" if kl[d] > 0.1 else "(inactive)")
              for d in order]  # fmt: skip
    return image_grid(grid, path, row_labels=labels, title=title)
