"""Wall-clock time of each disentanglement metric on encoded procedural dSprites.

The codes come from ``probrep.models.VAE((1, 64, 64), 10)``: randomly initialised (torch seed 0), or trained
weights from ``--checkpoint`` (a file written by ``svi.fit``, holding ``module``). A random encoder's posterior
means have a standard deviation of ~1e-3, below the FactorVAE score's pruning threshold (0.05), which would
end that metric before its first vote; the random encoder's codes are therefore multiplied by 1000 (a
per-dimension scale changes none of the scores except through that pruning and SAP's fixed C).

Array metrics use disentanglement_lib's sizes: 10,000 training points (MIG, modularity, TC, IRS; DCI, SAP and
explicitness fit on them) and 5,000 test points; IRS bins the factors into 20 as disentanglement_lib does. DCI
is also run sequentially (``n_jobs=1``) on the same data to measure the speed-up of the parallel fits; the two
runs must give identical importance matrices. The sampled metrics run their default protocol
(``num_train=10000``, ``num_eval=5000``, batch 64; 10,000 images for the FactorVAE variances);
``--sampled-fraction f`` runs ``f`` of the votes / points instead and also reports the time extrapolated to the
full protocol (linear in the images encoded: exact with ``--cache none``, an upper bound with the cache, whose
share of repeated draws grows with the protocol). The two sampled scores share one ``CodeCache`` (each distinct
factor vector encoded once; ``--cache none`` encodes every draw, as the code did before the cache, and gives
the same scores).

``--suite`` times the whole suite of issue 18 (BetaVAE, FactorVAE, MIG, DCI with LightGBM, SAP, modularity,
explicitness, IRS) at these sizes, i.e. disentanglement_lib's, and its total; the total also counts encoding the
15,000 images of the array metrics.

    python benchmarks/metrics_timing.py [--checkpoint PATH] [--sampled-fraction 1.0] [--device cpu]
                                        [--metrics mig,dci,...] [--skip-sequential] [--suite] [--cache none]

Writes benchmarks/results/metrics_timing.json after every metric (``"complete": true`` once all chosen metrics
ran) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)

from probrep import metrics as M
from probrep.data import DSprites
from probrep.device import resolve_device
from probrep.models import VAE
from probrep.training import checkpoint

NUM_TRAIN, NUM_TEST, SEED = 10_000, 5_000, 0
OUT = Path(__file__).parent / "results" / "metrics_timing.json"
METRICS = (
    "irs", "mig", "modularity", "gaussian_tc", "explicitness", "sap", "dci", "dci_lightgbm", "factor_vae", "beta_vae",
)  # fmt: skip
SUITE = ("irs", "mig", "modularity", "explicitness", "sap", "dci_lightgbm", "factor_vae", "beta_vae")


class ScaledEncoder(torch.nn.Module):
    """``vae.encode(x) * scale``: an nn.Module, so the sampled metrics hand it torch tensors on its device."""

    def __init__(self, vae: VAE, scale: float):
        super().__init__()
        self.vae, self.scale = vae, scale

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x) * self.scale


def load_encoder(path: str | None, device: torch.device) -> tuple[ScaledEncoder, str]:
    torch.manual_seed(SEED)
    vae = VAE((1, 64, 64), latent_dim=10)
    if path is None:
        return ScaledEncoder(vae.to(device).eval(), 1000.0), "random init (torch seed 0), codes x 1000"
    state = checkpoint.load(path)
    if state.get("module") is None:
        raise SystemExit(f"{path} holds no 'module' state: pass a checkpoint written by svi.fit for a VAE")
    vae.load_state_dict(state["module"])
    return ScaledEncoder(vae.to(device).eval(), 1.0), f"checkpoint {path}"


def encode_images(ds: DSprites, encoder: ScaledEncoder, classes: np.ndarray, device: torch.device) -> np.ndarray:
    out = []
    for start in range(0, len(classes), 2048):
        images = torch.from_numpy(ds.render(classes[start : start + 2048])).to(device)
        out.append(encoder(images).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="VAE checkpoint from svi.fit (default: random init)")
    parser.add_argument("--sampled-fraction", type=float, default=1.0, help="fraction of the sampled protocol")
    parser.add_argument("--device", default="cpu", help="device of the encoder (auto, cpu, cuda)")
    parser.add_argument("--skip-sequential", action="store_true", help="skip the n_jobs=1 DCI reference run")
    parser.add_argument("--num-train", type=int, default=NUM_TRAIN, help="training points of the array metrics")
    parser.add_argument("--num-test", type=int, default=NUM_TEST, help="test points of the array metrics")
    parser.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated subset of {METRICS}")
    parser.add_argument("--suite", action="store_true", help=f"time the whole suite {SUITE} and its total")
    parser.add_argument("--cache", choices=["shared", "none"], default="shared",
                        help="the sampled scores: one CodeCache for both, or encode every draw")  # fmt: skip
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    chosen = list(SUITE) if args.suite else [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(METRICS))
    if unknown:
        raise SystemExit(f"unknown metrics {unknown}; choose from {METRICS}")
    if not 0 < args.sampled_fraction <= 1:
        raise SystemExit("--sampled-fraction must be in (0, 1]")
    device = resolve_device(args.device)
    encoder, encoder_desc = load_encoder(args.checkpoint, device)
    ds = DSprites()
    rng = np.random.default_rng(SEED)
    f_train, f_test = ds.sample_factors(args.num_train, rng), ds.sample_factors(args.num_test, rng)
    (z_train, enc_s) = timed(encode_images, ds, encoder, np.concatenate([f_train, f_test]), device)
    z_train, z_test = z_train[: args.num_train], z_train[args.num_train :]
    print(f"encoded {args.num_train + args.num_test} images in {enc_s:.1f} s ({encoder_desc}, {device})")

    out = Path(args.out)
    report = {
        "machine": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "encoder": encoder_desc,
        "num_train": args.num_train,
        "num_test": args.num_test,
        "encode_seconds": round(enc_s, 3),
        "sampled_fraction": args.sampled_fraction,
        "cache": args.cache,
        "dci_sequential": None,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "complete": False,
        "metrics": [],
    }

    def write() -> None:  # after every metric, so an interrupted run keeps what it measured
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")

    images_before = [0]

    def encoded(draws: int, seconds: float) -> dict:
        """Images the score drew and those it encoded (fewer with the cache), and the rate of draws."""
        done = draws if cache is None else cache.encoded - images_before[0]
        images_before[0] += done if cache is not None else 0
        return {"images_encoded": done, "images_per_s": round(draws / seconds, 1)}

    def record(name: str, seconds: float, score: dict, **extra) -> None:
        report["metrics"].append({"metric": name, "seconds": round(seconds, 3), "scores": score, **extra})
        print(f"  {name:<28} {seconds:9.2f} s   {score}", flush=True)
        write()

    if "irs" in chosen:
        res, s = timed(M.irs, f_train[:, 1:], z_train, num_bins=20)  # colour is constant
        record("irs", s, {"irs": res.score, "num_active_dims": res.num_active_dims})
    if "mig" in chosen:
        res, s = timed(M.mig, f_train, z_train)
        record("mig", s, {"mig": res.score})
    if "modularity" in chosen:
        res, s = timed(M.modularity, f_train, z_train)
        record("modularity", s, {"modularity": res.score})
    if "gaussian_tc" in chosen:
        res, s = timed(M.gaussian_total_correlation, z_train)
        record("gaussian_total_correlation", s, {"tc_nats": res})
    if "explicitness" in chosen:
        res, s = timed(M.explicitness, f_train, z_train, f_test, z_test)
        record("explicitness", s, {"explicitness": res.score, "explicitness_train": res.score_train})
    if "sap" in chosen:
        res, s = timed(M.sap, f_train, z_train, f_test, z_test)
        record("sap", s, {"sap": res.score})
    if "dci" in chosen:
        res_par, s_par = timed(M.dci, f_train, z_train, f_test, z_test, n_jobs=-1)
        dci_scores = {
            "disentanglement": res_par.disentanglement,
            "completeness": res_par.completeness,
            "informativeness": res_par.informativeness,
            "informativeness_train": res_par.informativeness_train,
        }
        record("dci (n_jobs=-1, threads)", s_par, dci_scores)
        if not args.skip_sequential:
            res_seq, s_seq = timed(M.dci, f_train, z_train, f_test, z_test, n_jobs=1)
            identical = bool(np.array_equal(res_seq.importance, res_par.importance))
            report["dci_sequential"] = {
                "seconds": round(s_seq, 3),
                "speedup": round(s_seq / s_par, 3),
                "identical": identical,
            }
            record("dci (n_jobs=1)", s_seq, {"identical_to_parallel": identical})

    if "dci_lightgbm" in chosen:  # the fast estimator, on the same codes: its time and its distance to the reference
        fast, s = timed(M.dci, f_train, z_train, f_test, z_test, n_jobs=-1, estimator="lightgbm")
        scores = {"disentanglement": fast.disentanglement, "completeness": fast.completeness,
                  "informativeness": fast.informativeness}  # fmt: skip
        reference = next((r for r in report["metrics"] if r["metric"].startswith("dci (n_jobs=-1")), None)
        extra = {}
        if reference is not None:
            extra = {"difference_to_reference": {k: round(v - reference["scores"][k], 4) for k, v in scores.items()},
                     "speedup_over_reference": round(reference["seconds"] / s, 1)}  # fmt: skip
        record("dci (lightgbm)", s, scores, **extra)

    frac = args.sampled_fraction
    n_train, n_eval = max(1, round(10_000 * frac)), max(1, round(5_000 * frac))
    cache = M.CodeCache() if args.cache == "shared" else None
    if "factor_vae" in chosen:
        fv, s = timed(
            M.factor_vae_score, ds, encoder, num_train=n_train, num_eval=n_eval, num_variance_estimate=10_000,
            seed=SEED, progress=False, cache=cache,
        )  # fmt: skip
        images, full = 10_000 + (n_train + n_eval) * 64, 10_000 + 15_000 * 64
        record("factor_vae_score", s, {"score": fv.score, "train_accuracy": fv.train_accuracy,
                                       "num_active_dims": fv.num_active_dims},
               num_train=n_train, num_eval=n_eval, images=images, **encoded(images, s),
               full_protocol_seconds_estimate=round(s * full / images, 1))  # fmt: skip
    if "beta_vae" in chosen:
        bv, s = timed(M.beta_vae_score, ds, encoder, num_train=n_train, num_eval=n_eval, seed=SEED, progress=False,
                      cache=cache)  # fmt: skip
        images, full = 2 * (n_train + n_eval) * 64, 2 * 15_000 * 64
        record("beta_vae_score", s, {"score": bv.score, "train_accuracy": bv.train_accuracy},
               num_train=n_train, num_eval=n_eval, images=images, **encoded(images, s),
               full_protocol_seconds_estimate=round(s * full / images, 1))  # fmt: skip
    if chosen == list(SUITE):
        metric_s = sum(row["seconds"] for row in report["metrics"])
        report["suite"] = {"metrics_seconds": round(metric_s, 2), "encode_arrays_seconds": round(enc_s, 2),
                           "total_seconds": round(metric_s + enc_s, 2),
                           "images_encoded_by_sampled_scores": None if cache is None else cache.encoded}  # fmt: skip

    report["complete"] = True
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    write()
    print(f"\n{'metric':<28} {'seconds':>9}")
    for row in report["metrics"]:
        print(f"{row['metric']:<28} {row['seconds']:9.2f}")
    if "suite" in report:
        suite = report["suite"]
        print(f"{'suite total (+ encoding the arrays)':<28} {suite['total_seconds']:9.2f}")
    if report["dci_sequential"]:
        seq = report["dci_sequential"]
        print(f"DCI speed-up of the parallel fits: {seq['speedup']:.2f}x (identical: {seq['identical']})")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
