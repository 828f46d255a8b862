"""NUTS on eight schools (non-centred): ``probrep.inference.mcmc.sample`` against NumPyro's own ``MCMC`` and Pyro's
NUTS, as effective samples per second, side by side in one run on one machine.

All runners use 4 chains x (1,000 warm-up + 1,000 draws), NUTS with its defaults (diagonal mass matrix, target
acceptance 0.8, tree depth 10), float32, progress bars off. The figure of merit is the smallest bulk ESS over the
sampled parameters (mu, tau, theta_trans[1..8]) divided by the end-to-end wall time of the call (set-up,
compilation, warm-up and sampling: what a user waits for). probrep and NumPyro get the same seeds, so they draw
the same chains (checked below) and their ratio measures only the runner. Repetitions alternate between runners
so that machine drift hits them alike; the table reports medians, and each probrep / NumPyro ratio is the median
over repetitions of the paired (same-seed) ratio.

    python benchmarks/mcmc_nuts.py [--reps 3] [--pyro-reps 1]

Writes benchmarks/results/mcmc_nuts.json. Pyro is imported lazily (it is a dependency of probrep anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import arviz as az  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)
from numpyro.infer import MCMC, NUTS  # noqa: E402

from probrep.data.posteriordb import eight_schools_noncentered  # noqa: E402
from probrep.inference import mcmc  # noqa: E402

Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=np.float32)
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=np.float32)
WARMUP, SAMPLES, CHAINS = 1000, 1000, 4
SITES = ("mu", "tau", "theta_trans")


def min_ess(draws: dict[str, np.ndarray]) -> float:
    """Smallest bulk ESS over all scalar components of the sampled sites; draws are [chains, draws, ...]."""
    values = []
    for site in SITES:
        x = np.asarray(draws[site], dtype=np.float64)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        values += [float(az.ess(x[..., j], method="bulk")) for j in range(x.shape[-1])]
    return min(values)


def run_probrep(seed: int, chain_method: str) -> dict:
    start = time.perf_counter()
    idata = mcmc.sample(
        eight_schools_noncentered,
        sigma=SIGMA,
        y=Y,
        kernel="nuts",
        num_warmup=WARMUP,
        num_samples=SAMPLES,
        num_chains=CHAINS,
        chain_method=chain_method,
        seed=seed,
        progress=False,
        # NumPyro's MCMC.run computes no predictive or likelihood groups: time the same work
        log_likelihood=False,
        posterior_predictive=False,
        prior=False,
    )
    wall = time.perf_counter() - start
    draws = {s: idata.posterior[s].values for s in SITES}
    attrs = idata.posterior.attrs
    return {
        "wall": wall,
        "ess": min_ess(draws),
        "draws": draws,
        "split": {k: attrs[f"{k}_seconds"] for k in ("compile", "warmup", "sampling")},
        "grad_evals": attrs["grad_evals_warmup"] + attrs["grad_evals_sampling"],
    }


def run_numpyro(seed: int, chain_method: str) -> dict:
    start = time.perf_counter()
    sampler = MCMC(
        NUTS(eight_schools_noncentered),
        num_warmup=WARMUP,
        num_samples=SAMPLES,
        num_chains=CHAINS,
        chain_method=chain_method,
        progress_bar=False,
    )
    sampler.run(jax.random.PRNGKey(seed), sigma=SIGMA, y=Y)
    samples = jax.device_get(sampler.get_samples(group_by_chain=True))
    wall = time.perf_counter() - start
    draws = {s: np.asarray(samples[s]) for s in SITES}
    return {"wall": wall, "ess": min_ess(draws), "draws": draws}


def run_pyro(seed: int) -> dict:
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import MCMC as PyroMCMC
    from pyro.infer import NUTS as PyroNUTS

    def model(sigma, y):
        mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(5.0))
        with pyro.plate("J", len(sigma)):
            theta_trans = pyro.sample("theta_trans", dist.Normal(0.0, 1.0))
            pyro.sample("y", dist.Normal(mu + tau * theta_trans, sigma), obs=y)

    sigma, y = torch.tensor(SIGMA), torch.tensor(Y)
    start = time.perf_counter()
    chains = []
    for c in range(CHAINS):  # one process, chains in sequence (Pyro's multi-chain mode forks processes)
        pyro.set_rng_seed(seed * 100 + c)
        kernel = PyroNUTS(model, jit_compile=True, ignore_jit_warnings=True)
        run = PyroMCMC(kernel, num_samples=SAMPLES, warmup_steps=WARMUP, num_chains=1, disable_progbar=True)
        run.run(sigma, y)
        chains.append({k: v.numpy() for k, v in run.get_samples().items()})
    wall = time.perf_counter() - start
    draws = {s: np.stack([ch[s] for ch in chains]) for s in SITES}
    return {"wall": wall, "ess": min_ess(draws)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pyro-reps", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "mcmc_nuts.json"))
    args = parser.parse_args()

    runners = {
        "probrep_sequential": lambda s: run_probrep(s, "sequential"),
        "numpyro_sequential": lambda s: run_numpyro(s, "sequential"),
        "probrep_vectorized": lambda s: run_probrep(s, "vectorized"),
        "numpyro_vectorized": lambda s: run_numpyro(s, "vectorized"),
    }
    for runner in runners.values():  # warm JAX's process-wide caches once, untimed
        runner(0)
    results: dict[str, list[dict]] = {name: [] for name in runners}
    identical = []
    for rep in range(args.reps):
        seed = rep + 1
        for name, runner in runners.items():
            results[name].append(runner(seed))
            last = results[name][-1]
            print(f"rep {rep + 1} {name:20s} wall {last['wall']:7.2f} s  min ESS {last['ess']:7.0f}", flush=True)
        for method in ("sequential", "vectorized"):
            a, b = results[f"probrep_{method}"][-1]["draws"], results[f"numpyro_{method}"][-1]["draws"]
            identical.append(max(float(np.max(np.abs(a[s] - b[s]))) for s in SITES))
    if args.pyro_reps:
        results["pyro_sequential"] = []
        for rep in range(args.pyro_reps):
            results["pyro_sequential"].append(run_pyro(rep + 1))
            print(f"rep {rep + 1} pyro_sequential      wall {results['pyro_sequential'][-1]['wall']:7.2f} s")

    summary = {}
    for name, runs in results.items():
        summary[name] = {
            "median_wall_s": round(statistics.median(r["wall"] for r in runs), 3),
            "median_min_ess_bulk": round(statistics.median(r["ess"] for r in runs), 1),
            "median_ess_per_s": round(statistics.median(r["ess"] / r["wall"] for r in runs), 2),
            "runs": len(runs),
            "per_run": [{"wall_s": round(r["wall"], 3), "min_ess_bulk": round(r["ess"], 1)} for r in runs],
        }
        if "split" in runs[0]:
            summary[name]["median_split_s"] = {
                k: round(statistics.median(r["split"][k] for r in runs), 3) for k in ("compile", "warmup", "sampling")
            }

    def paired(a: str, b: str) -> float:
        """Median over repetitions of the ESS/s ratio a / b (same seed in a repetition: same ESS for probrep and
        NumPyro, so each ratio is a pure wall-time ratio)."""
        return statistics.median(
            (ra["ess"] / ra["wall"]) / (rb["ess"] / rb["wall"]) for ra, rb in zip(results[a], results[b])
        )

    ratios = {
        "probrep_vs_numpyro_sequential": paired("probrep_sequential", "numpyro_sequential"),
        "probrep_vs_numpyro_vectorized": paired("probrep_vectorized", "numpyro_vectorized"),
        "probrep_sequential_vs_numpyro_vectorized": paired("probrep_sequential", "numpyro_vectorized"),
    }
    if "pyro_sequential" in summary:  # different chains: a ratio of medians
        ratios["probrep_vs_pyro"] = (
            summary["probrep_sequential"]["median_ess_per_s"] / summary["pyro_sequential"]["median_ess_per_s"]
        )
        ratios["numpyro_vs_pyro"] = (
            summary["numpyro_sequential"]["median_ess_per_s"] / summary["pyro_sequential"]["median_ess_per_s"]
        )
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores visible",
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "target": "eight_schools_noncentered, float32",
        "settings": {"chains": CHAINS, "warmup": WARMUP, "samples": SAMPLES},
        "figure_of_merit": "min bulk ESS over mu, tau, theta_trans / end-to-end wall seconds",
        "probrep_and_numpyro_draws_max_abs_difference": max(identical),
        "summary": summary,
        "ratios_ess_per_s": {k: round(v, 3) for k, v in ratios.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(json.dumps(result["summary"], indent=2))
    print(json.dumps(result["ratios_ess_per_s"], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
