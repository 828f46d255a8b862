"""Learned mechanisms from a graph and data against the truth (issue 17, section 2; acceptance b and c).

1. MLP additive-noise mechanisms on the six-node nonlinear SCM with confounding of the tests
   (tests/test_causal_learn_networks.py), over ``--datasets`` independent datasets of ``--rows`` rows:
   - each learned mechanism's RMS error against the true mechanism on 20,000 fresh rows, over its noise scale, and
     the effective number of parameters that error implies, ``p = n_train * (rms / sigma)^2`` (the tests'
     tolerances assume p = 100);
   - E[Y | do(X = x)] against the closed form sin(x) + 0.5 x + 0.25 (40,000 draws), beside the tests' tolerance;
   - per-unit counterfactuals of Y under the shift do(X = X + 0.5) for 50 units, error over sigma_Y;
   - the fit time.
2. ``mechanisms="auto"`` on the mixed SCM of tests/test_causal_learn_auto.py (a linear, a nonlinear and a
   heteroscedastic child of X) over the same seeds: the family chosen per node, and the flow's per-unit
   counterfactual error against the closed form H' = x' + h(x') (H - X) / h(X).

    OMP_NUM_THREADS=1 python benchmarks/causal_learned_mechanisms.py --datasets 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_causal_learn_auto import MIXED, N_ROWS, _scale  # noqa: E402
from test_causal_learn_networks import EDGES, NONLINEAR, P_EFFECTIVE  # noqa: E402

from probrep.causal import SCM  # noqa: E402

TRUE_MEANS = {
    "X": lambda d: np.tanh(d["Z1"]) + 0.5 * d["Z2"],
    "M": lambda d: np.sin(d["X"]) + 0.5 * d["X"],
    "W": lambda d: 0.5 * d["Z2"] ** 2,
    "Y": lambda d: d["M"] + 1.5 * np.tanh(d["Z1"]) + 0.5 * d["W"],
}
SIGMAS = {"X": 0.5, "M": 0.3, "W": 0.4, "Y": 0.4}


def nonlinear_run(seed: int, rows: int) -> dict:
    truth = SCM.from_equations(NONLINEAR)
    data = {k: np.asarray(v) for k, v in truth.sample(rows, seed=seed, backend="numpy").items()}
    start = time.perf_counter()
    scm = SCM.from_graph(EDGES, data, mechanisms="mlp", seed=seed)
    fit_s = time.perf_counter() - start
    n_train = rows - round(0.2 * rows)
    fresh = truth.sample(20_000, seed=10_000 + seed, backend="numpy")
    out = {"seed": seed, "fit_s": fit_s, "function_rms_over_sigma": {}, "implied_p": {}, "do_error": {}}
    for node, mean in TRUE_MEANS.items():
        env = dict(fresh) | {f"U_{node}": np.zeros(20_000)}
        rms = float(np.sqrt(np.mean((scm.compiled("numpy")[node](env) - mean(fresh)) ** 2))) / SIGMAS[node]
        out["function_rms_over_sigma"][node] = rms
        out["implied_p"][node] = n_train * rms**2
    report = scm.fit_report
    est = np.hypot(report["M"]["sigma"], report["Y"]["sigma"]) * np.sqrt(P_EFFECTIVE / n_train)
    for x in (-1.0, 0.0, 1.0):
        y = scm.do({"X": x}).sample(40_000, seed=1, backend="numpy")["Y"]
        tol = 3 * np.sqrt(y.var() / 20_000 + est**2)  # the test's tolerance (it draws 20,000)
        out["do_error"][x] = {"error": float(y.mean() - (np.sin(x) + 0.5 * x + 0.25)), "test_tolerance": float(tol)}
    errors = []
    for i in range(50):
        evidence = {k: float(v[i]) for k, v in data.items()}
        got = scm.counterfactual(evidence, do={"X": "X + 0.5"}, n=1)["counterfactual"]["Y"][0]
        want = truth.counterfactual(evidence, do={"X": "X + 0.5"}, n=1)["counterfactual"]["Y"][0]
        errors.append((got - want) / report["Y"]["sigma"])
    out["cf_rms_over_sigma"], out["cf_max_over_sigma"] = (
        float(np.sqrt(np.mean(np.square(errors)))),
        float(np.max(np.abs(errors))),
    )
    return out


def mixed_run(seed: int, rows: int) -> dict:
    truth = SCM.from_equations(MIXED)
    data = {k: np.asarray(v) for k, v in truth.sample(rows, seed=seed, backend="numpy").items()}
    start = time.perf_counter()
    scm = SCM.from_graph([("X", "L"), ("X", "N"), ("X", "H")], data, mechanisms="auto", seed=seed)
    fit_s = time.perf_counter() - start
    errors = []
    for i in range(50):
        evidence = {k: float(v[i]) for k, v in data.items()}
        x_new = evidence["X"] + 1.0
        want = x_new + _scale(x_new) * (evidence["H"] - evidence["X"]) / _scale(evidence["X"])
        got = scm.counterfactual(evidence, do={"X": x_new}, n=1)["counterfactual"]["H"][0]
        errors.append((got - want) / _scale(x_new))
    chosen = {n: scm.fit_report[n]["mechanism"] for n in ("L", "N", "H")}
    return {"seed": seed, "fit_s": fit_s, "chosen": chosen, "flow_cf_rms_over_scale": float(np.sqrt(np.mean(
        np.square(errors)))), "scores": {n: scm.fit_report[n]["scores"] for n in ("L", "N", "H")}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=5)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--mixed-rows", type=int, default=N_ROWS)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    runs = [nonlinear_run(seed, args.rows) for seed in range(args.datasets)]
    print(f"MLP mechanisms, six-node nonlinear SCM, {args.rows} rows, {args.datasets} datasets")
    for node in TRUE_MEANS:
        rms = [r["function_rms_over_sigma"][node] for r in runs]
        p = [r["implied_p"][node] for r in runs]
        print(f"  f_{node}: RMS error / sigma {np.mean(rms):.3f} (max {np.max(rms):.3f}); implied p {np.mean(p):.0f}"
              f" (max {np.max(p):.0f}; tests assume {P_EFFECTIVE})")  # fmt: skip
    for x in (-1.0, 0.0, 1.0):
        err = np.array([r["do_error"][x]["error"] for r in runs])
        tol = np.mean([r["do_error"][x]["test_tolerance"] for r in runs])
        print(f"  E[Y|do(X={x:+.0f})] error: mean {err.mean():+.4f}, sd {err.std(ddof=1) if len(err) > 1 else 0:.4f},"
              f" max |.| {np.abs(err).max():.4f}; test tolerance {tol:.3f}")  # fmt: skip
    cf = [r["cf_rms_over_sigma"] for r in runs]
    print(f"  counterfactual Y (do X = X + 0.5), error / sigma_Y: RMS {np.mean(cf):.3f}, worst unit "
          f"{max(r['cf_max_over_sigma'] for r in runs):.3f}")  # fmt: skip
    print(f"  fit time {np.mean([r['fit_s'] for r in runs]):.1f} s (4 MLPs)")
    mixed = [mixed_run(seed, args.mixed_rows) for seed in range(args.datasets)]
    print(f"auto on the mixed SCM, {args.mixed_rows} rows, {args.datasets} datasets")
    for node in ("L", "N", "H"):
        counts = {}
        for r in mixed:
            counts[r["chosen"][node]] = counts.get(r["chosen"][node], 0) + 1
        print(f"  {node}: chosen {counts}")
    print(f"  flow counterfactual H error / h(x'): RMS {np.mean([r['flow_cf_rms_over_scale'] for r in mixed]):.3f}; "
          f"fit time {np.mean([r['fit_s'] for r in mixed]):.1f} s (6 networks)")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps({"nonlinear": runs, "mixed": mixed}, indent=1, default=str))


if __name__ == "__main__":
    main()
