"""Frequentist coverage of probrep's Bayesian causal queries (issue 17, acceptance a).

A nonlinear SCM of six nodes with confounding, every coefficient and noise scale unknown:

    Z  := Normal(0, 1)                                   confounder of X, M2 and Y
    W  := Normal(0, 1)                                   confounder of X and Y
    X  := a_z*Z + a_w*tanh(W) + Normal(0, s_x)           treatment
    M1 := b1*tanh(X) + Normal(0, s_m1)                   mediator, nonlinear in X
    M2 := b2*X + b3*Z**2 + Normal(0, s_m2)               mediator, confounded through Z**2
    Y  := c0 + c1*M1 + c2*M2 + c3*Z + c4*W + Normal(0, s_y)

The truth is exact: ``E[Y | do(X = x)] = c0 + c1*b1*tanh(x) + c2*(b2*x + b3)`` (E[Z^2] = 1, E[Z] = E[W] = 0);
a Monte Carlo check of it on 10^6 rows is written beside it. For each of ``--datasets`` independent datasets
(seed i) of ``--rows`` rows, the SCM with priors (coefficients Normal(0, 5), scales HalfNormal(2)) is fitted by
NUTS, and the 90% equal-tailed credible interval of E[Y | do(X = x)] is read two ways:

- ``probrep``: what a user runs, ``fitted.do({"X": x}).sample(n, per_draw=True)``, the mean of Y per parameter
  draw (its Monte Carlo error per draw, sd(Y)/sqrt(n), is reported beside the posterior sd: it widens the
  interval a little, never narrows it);
- ``closed_form``: the formula above at each posterior draw (no Monte Carlo error), at several x.

Coverage k/N is judged against Binomial(N, 0.9): the equal-tailed 95% acceptance range and an exact two-sided
p-value (scipy.stats.binomtest). The confounded regression answer E[Y | X = x] (a flexible fit of Y on X alone)
is reported too, to show that the interval is not wide enough to cover it by accident.

    OMP_NUM_THREADS=1 XLA_FLAGS=--xla_force_host_platform_device_count=1 python benchmarks/causal_coverage.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_name  # noqa: E402

from probrep.causal import SCM  # noqa: E402

EQUATIONS = {
    "Z": "Normal(0, 1)",
    "W": "Normal(0, 1)",
    "X": "a_z*Z + a_w*tanh(W) + Normal(0, s_x)",
    "M1": "b1*tanh(X) + Normal(0, s_m1)",
    "M2": "b2*X + b3*Z**2 + Normal(0, s_m2)",
    "Y": "c0 + c1*M1 + c2*M2 + c3*Z + c4*W + Normal(0, s_y)",
}
TRUE = {"a_z": 0.8, "a_w": 0.6, "s_x": 1.0, "b1": 1.5, "s_m1": 0.5, "b2": 0.5, "b3": 0.7, "s_m2": 0.5,
        "c0": 1.0, "c1": 1.0, "c2": -0.8, "c3": 1.2, "c4": 0.5, "s_y": 1.0}  # fmt: skip
PRIORS = {name: "HalfNormal(2)" if name.startswith("s_") else "Normal(0, 5)" for name in TRUE}
LEVEL = 0.9


def model() -> SCM:
    """The SCM with unknown parameters (priors as in the module docstring)."""
    return SCM.from_equations(EQUATIONS, parameters=PRIORS)


def interventional_mean(params: dict, x: float) -> np.ndarray:
    """E[Y | do(X = x)] in closed form, at one parameter set or elementwise over arrays of draws."""
    p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    return p["c0"] + p["c1"] * p["b1"] * np.tanh(x) + p["c2"] * (p["b2"] * x + p["b3"])


def dataset(seed: int, rows: int) -> dict[str, np.ndarray]:
    """One dataset from the true SCM (numpy backend, so the rows do not depend on JAX)."""
    return model().with_parameters(TRUE).sample(rows, seed=seed, backend="numpy")


def confounded_mean(data: dict[str, np.ndarray], x: float, bandwidth: float = 0.25) -> float:
    """E[Y | X = x] as the data show it (Gaussian-kernel local-linear regression of Y on X): the answer that
    ignores the confounders, which differs from E[Y | do(X = x)]."""
    d = data["X"] - x
    w = np.exp(-0.5 * (d / bandwidth) ** 2)
    design = np.column_stack([np.ones_like(d), d])
    coef = np.linalg.solve(design.T @ (w[:, None] * design), design.T @ (w * data["Y"]))
    return float(coef[0])


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def fit_one(seed: int, rows: int, x: float, xs: list[float], *, num_warmup: int, num_samples: int,
            query_rows: int, query_draws: int) -> dict:  # fmt: skip
    """Fit dataset ``seed`` by NUTS and read the credible intervals of E[Y | do(X = x)] (see the module)."""
    data = dataset(seed, rows)
    start = time.perf_counter()
    fitted = model().fit(data, method="nuts", num_warmup=num_warmup, num_samples=num_samples, seed=seed)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    per_draw = fitted.do({"X": x}).sample(query_rows, seed=seed, per_draw=True, num_draws=query_draws)["Y"]
    query_s = time.perf_counter() - start
    means = per_draw.mean(axis=1)
    mc_se = float(np.mean(per_draw.std(axis=1)) / np.sqrt(query_rows))
    truth = float(interventional_mean(TRUE, x))
    lo, hi = interval(means)
    closed = {}
    for value in xs:
        exact = interventional_mean(fitted.draws, value)
        c_lo, c_hi = interval(exact)
        t = float(interventional_mean(TRUE, value))
        closed[repr(value)] = {"interval": [c_lo, c_hi], "truth": t, "covered": bool(c_lo <= t <= c_hi),
                               "posterior_mean": float(exact.mean()), "posterior_sd": float(exact.std())}  # fmt: skip
    return {
        "seed": seed,
        "interval": [lo, hi],
        "posterior_mean": float(means.mean()),
        "posterior_sd": float(means.std()),
        "covered": bool(lo <= truth <= hi),
        "query_mc_se_per_draw": mc_se,
        "confounded_mean": confounded_mean(data, x),
        "closed_form": closed,
        "fit_s": fit_s,
        "query_s": query_s,
    }


def binomial_check(k: int, n: int, p: float = LEVEL) -> dict:
    """The equal-tailed 95% acceptance range of Binomial(n, p) and the exact two-sided p-value of k."""
    from scipy import stats

    dist = stats.binom(n, p)
    low = max(j for j in range(n + 1) if dist.cdf(j - 1) <= 0.025)  # the excluded lower tail {K < low}: <= 2.5%
    high = min(j for j in range(n + 1) if dist.sf(j) <= 0.025)  # the excluded upper tail {K > high}: <= 2.5%
    inside = float(dist.cdf(high) - dist.cdf(low - 1))
    p_value = float(stats.binomtest(k, n, p).pvalue)
    return {"k": k, "n": n, "p": p, "acceptance_range_95": [low, high], "range_probability": inside,
            "consistent": bool(low <= k <= high), "p_value_two_sided": p_value}  # fmt: skip


def truth_by_monte_carlo(x: float, rows: int = 1_000_000, seed: int = 12345) -> dict:
    """The closed form checked by sampling the true SCM under do(X = x): mean and its standard error."""
    y = model().with_parameters(TRUE).do({"X": x}).sample(rows, seed=seed, backend="numpy")["Y"]
    return {"rows": rows, "mean": float(y.mean()), "standard_error": float(y.std() / np.sqrt(rows)),
            "closed_form": float(interventional_mean(TRUE, x))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--x", type=float, default=1.0)
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--query-rows", type=int, default=20_000)
    parser.add_argument("--query-draws", type=int, default=200)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "causal_coverage.json"))
    args = parser.parse_args()
    xs = [-1.0, 0.0, args.x, 2.0] if args.x not in (-1.0, 0.0, 2.0) else [-1.0, 0.0, 1.0, 2.0]
    load_at_start = list(os.getloadavg())
    start = time.perf_counter()
    runs = []
    for seed in range(args.datasets):
        run = fit_one(seed, args.rows, args.x, xs, num_warmup=args.num_warmup, num_samples=args.num_samples,
                      query_rows=args.query_rows, query_draws=args.query_draws)  # fmt: skip
        runs.append(run)
        print(f"dataset {seed:2d}: 90% interval [{run['interval'][0]:.3f}, {run['interval'][1]:.3f}] "
              f"{'covers' if run['covered'] else 'MISSES'} {interventional_mean(TRUE, args.x):.3f} "
              f"(confounded E[Y|X=x] {run['confounded_mean']:.3f}; fit {run['fit_s']:.1f} s, "
              f"query {run['query_s']:.1f} s)", flush=True)  # fmt: skip
    total_s = time.perf_counter() - start
    k = sum(r["covered"] for r in runs)
    closed = {x: binomial_check(sum(r["closed_form"][x]["covered"] for r in runs), len(runs)) for x in map(repr, xs)}
    result = {
        "benchmark": "causal_coverage",
        "scm": EQUATIONS,
        "true_parameters": TRUE,
        "priors": PRIORS,
        "x": args.x,
        "truth": float(interventional_mean(TRUE, args.x)),
        "truth_monte_carlo": truth_by_monte_carlo(args.x),
        "rows_per_dataset": args.rows,
        "nuts": {"num_warmup": args.num_warmup, "num_samples": args.num_samples, "num_chains": 1},
        "query": {"rows_per_draw": args.query_rows, "draws": args.query_draws},
        "level": LEVEL,
        "coverage": binomial_check(k, len(runs)),
        "coverage_closed_form_by_x": closed,
        "median_posterior_sd": float(np.median([r["posterior_sd"] for r in runs])),
        "median_query_mc_se": float(np.median([r["query_mc_se_per_draw"] for r in runs])),
        "datasets": runs,
        "total_s": total_s,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
        },  # fmt: skip
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    cov = result["coverage"]
    print(
        f"coverage {k}/{len(runs)} (95% acceptance range of Binomial({len(runs)}, 0.9): "
        f"{cov['acceptance_range_95']}, p = {cov['p_value_two_sided']:.3f}); {total_s:.0f} s; wrote {out}"
    )


if __name__ == "__main__":
    main()
