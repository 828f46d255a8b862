"""NUTS and MALA on the eight posteriordb posteriors, validated against the reference draws: the full table.

For every posterior and sampler configuration, ``probrep.data.posteriordb.validate`` compares each parameter's
mean and standard deviation with the reference draws through z-scores built from our ESS-based MCSE and the
reference's MCSE, against the Bonferroni bound for all of the posterior's comparisons (family-wise alpha 0.01).
The table reports pass / fail, the largest |z|, the smallest bulk ESS and ESS per gradient evaluation (sampling
phase), divergences and mean acceptance. Everything runs in float64 (as Stan does), 4 chains, seed 0:

- ``nuts``: NumPyro's NUTS through ``mcmc.sample``, 1,000 warm-up + 1,000 draws, defaults.
- ``mala``: our MALA with its defaults (diagonal metric), 1,000 warm-up + 5,000 draws.
- ``mala_dense_long``: our MALA with a dense metric, 20,000 warm-up + 20,000 draws (still far fewer gradients
  than NUTS on most of these posteriors).

    python benchmarks/mcmc_posteriordb.py [--configs nuts mala mala_dense_long] [--names ...]

Writes benchmarks/results/mcmc_posteriordb.json. Needs the posteriordb folder (see probrep.data.posteriordb).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)

from probrep.data import posteriordb  # noqa: E402
from probrep.inference import mcmc  # noqa: E402

CONFIGS = {
    "nuts": {"kernel": "nuts", "num_warmup": 1000, "num_samples": 1000, "kernel_kwargs": None},
    "mala": {"kernel": "mala", "num_warmup": 1000, "num_samples": 5000, "kernel_kwargs": None},
    "mala_dense_long": {
        "kernel": "mala",
        "num_warmup": 20000,
        "num_samples": 20000,
        "kernel_kwargs": {"dense_mass": True},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--names", nargs="+", default=None, help="posteriors (default: all available)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "mcmc_posteriordb.json"))
    args = parser.parse_args()
    names = args.names or posteriordb.available()
    table: dict[str, dict] = {}
    for name in names:
        post = posteriordb.load(name)
        table[name] = {}
        for config in args.configs:
            settings = CONFIGS[config]
            start = time.perf_counter()
            idata = mcmc.sample(
                post.model,
                num_chains=4,
                seed=0,
                progress=False,
                log_likelihood=False,
                posterior_predictive=False,
                prior=False,
                **settings,
                **post.model_kwargs,
            )
            wall = time.perf_counter() - start
            report = posteriordb.validate(idata, post)
            grads = idata.posterior.attrs["grad_evals_sampling"]
            row = {
                "passed": report.passed,
                "max_abs_z": round(report.max_abs_z, 2),
                "z_bound": round(report.z_bound, 2),
                "min_ess_bulk": round(report.min_ess, 1),
                "ess_per_grad": float(f"{report.min_ess / grads:.3g}"),
                "grad_evals_sampling": grads,
                "grad_evals_warmup": idata.posterior.attrs["grad_evals_warmup"],
                "divergences": int(idata.sample_stats["diverging"].sum()),
                "acceptance": round(float(idata.sample_stats["acceptance_rate"].mean()), 3),
                "wall_s": round(wall, 1),
            }
            if not report.passed:
                row["failures"] = report.failures()
            table[name][config] = row
            print(
                f"{name:42s} {config:16s} {'PASS' if row['passed'] else 'FAIL'} max|z| {row['max_abs_z']:6.2f} "
                f"(bound {row['z_bound']:.2f}) min ESS {row['min_ess_bulk']:8.0f} ESS/grad {row['ess_per_grad']:.3g} "
                f"div {row['divergences']:5d} acc {row['acceptance']:.3f} {wall:6.1f}s",
                flush=True,
            )
    passed = {c: [n for n in names if table[n][c]["passed"]] for c in args.configs}
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores visible",
        "jax": jax.__version__,
        "precision": "float64",
        "configs": CONFIGS,
        "criterion": "every parameter: |z| of mean and sd <= Bonferroni bound (alpha 0.01); MCSE from ESS",
        "passed": {c: f"{len(v)}/{len(names)}" for c, v in passed.items()},
        "table": table,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=lambda v: v.item() if isinstance(v, np.generic) else v) + "\n")
    tmp.replace(out)
    print(json.dumps(result["passed"]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
