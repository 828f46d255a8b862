"""probrep's SCM.from_graph beside DoWhy's gcm (issue 17): the same graph and the same data, interventional means
and speed.

Data: 5,000 rows from a linear additive-noise SCM of six nodes (Z and W confound X and Y, M mediates, V is a child
of Y and Z). Both libraries learn a linear mechanism per node from the graph and the data: probrep's
``SCM.from_graph(graph, data)`` (least squares, Gaussian noise) and gcm's ``AdditiveNoiseModel`` with
``create_linear_regressor()``, with Gaussian noise and roots (``ScipyDistribution(norm)``, like for like) and, as
a second row, with gcm's default empirical noise. Each then draws ``--samples`` interventional rows under
do(X = -1) and do(X = 2) (probrep: ``scm.do({"X": x}).sample(n, backend="numpy")``; gcm:
``gcm.interventional_samples(model, {"X": lambda v: x}, num_samples_to_draw=n)``).

Agreement: for every node and intervention, z = (mean_probrep - mean_gcm) / sqrt(var_p / n + var_g / n), the
difference in Monte Carlo standard errors; the fits agree when every |z| is below the Bonferroni bound for all
comparisons at family-wise error 1%. Both are also set beside the true interventional means (exact, from the
linear-Gaussian truth), which they should match within estimation error plus Monte Carlo error.

Speed: fit seconds and interventional rows per second (best of 3 after one untimed call); probrep's NumPyro
backend (jit-compiled once per size) is timed too.

dowhy 0.14 needs scipy <= 1.15.3, below this project's pin, so gcm runs in its own virtual environment
(``make bench-dowhy`` makes .venv-dowhy from constraints-dowhy.txt): this script saves the data to a temporary
.npz, runs itself there with ``--gcm-side``, and reads back its JSON. That side never imports probrep.

    make bench-dowhy          # or: python benchmarks/causal_dowhy.py --dowhy-python .venv-dowhy/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EDGES = [("Z", "X"), ("W", "X"), ("Z", "Y"), ("X", "M"), ("W", "M"), ("M", "Y"), ("X", "Y"), ("Y", "V"), ("Z", "V")]
TRUTH = {
    "Z": "Normal(0, 1)",
    "W": "0.5 + Normal(0, 1.5)",
    "X": "0.8*Z - 0.6*W + Normal(0, 1)",
    "M": "1.2*X + 0.4*W + Normal(0, 0.7)",
    "Y": "1.0 + 0.5*M - 0.7*X + 1.1*Z + Normal(0, 1)",
    "V": "0.9*Y - 0.5*Z + Normal(0, 0.5)",
}
INTERVENTIONS = (-1.0, 2.0)


def best_time(fn, repeats: int = 3) -> tuple[float, float]:
    """(seconds of the first call, best seconds of ``repeats`` more)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, min(times)


# --------------------------------------------------------------------------------------------------- gcm side
def gcm_side(data_path: str, out_path: str) -> None:
    """Fit gcm on the saved data and draw interventional samples; runs in the dowhy environment."""
    import networkx as nx
    import pandas as pd
    import scipy.stats
    from dowhy import gcm

    gcm.config.disable_progress_bars()
    saved = np.load(data_path)
    names = [str(n) for n in saved["names"]]
    frame = pd.DataFrame({n: saved[n] for n in names})
    edges = [(str(a), str(b)) for a, b in saved["edges"]]
    n, seed = int(saved["samples"]), int(saved["seed"])
    result = {"dowhy_version": __import__("dowhy").__version__, "python": platform.python_version()}
    for noise in ("gaussian", "empirical"):
        graph = nx.DiGraph(edges)

        def build(graph=graph, noise=noise):
            model = gcm.StructuralCausalModel(graph)
            for node in graph.nodes:
                fresh = gcm.ScipyDistribution(scipy.stats.norm) if noise == "gaussian" else gcm.EmpiricalDistribution()
                if graph.in_degree(node) == 0:
                    model.set_causal_mechanism(node, fresh)
                else:
                    regressor = gcm.ml.create_linear_regressor()
                    model.set_causal_mechanism(node, gcm.AdditiveNoiseModel(regressor, noise_model=fresh))
            return model

        holder = {}

        def fit(build=build, holder=holder):
            holder["model"] = build()
            gcm.fit(holder["model"], frame)

        fit_first, fit_best = best_time(fit)
        rows = {}
        for x in saved["interventions"]:
            np.random.seed(seed)  # gcm draws from numpy's global generator

            def draw(x=float(x), holder=holder):
                return gcm.interventional_samples(holder["model"], {"X": lambda v, x=x: x}, num_samples_to_draw=n)

            first, best = best_time(draw)
            sample = draw()
            rows[repr(float(x))] = {"mean": {c: float(sample[c].mean()) for c in names},
                                    "var": {c: float(sample[c].var()) for c in names},
                                    "first_s": first, "best_s": best}  # fmt: skip
        result[noise] = {"fit_first_s": fit_first, "fit_best_s": fit_best, "interventions": rows}
    Path(out_path).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------- probrep side
def probrep_side(data: dict[str, np.ndarray], n: int, seed: int) -> dict:
    """Fit probrep's linear mechanisms from the graph and draw the interventional samples."""
    from probrep.causal import SCM

    holder = {}

    def fit():
        holder["scm"] = SCM.from_graph(EDGES, data)

    fit_first, fit_best = best_time(fit)
    scm = holder["scm"]
    rows = {}
    for x in INTERVENTIONS:
        intervened = scm.do({"X": x})
        first, best = best_time(lambda m=intervened: m.sample(n, seed=seed, backend="numpy"))
        jax_first, jax_best = best_time(
            lambda m=intervened: m.sample(n, seed=seed, backend="numpyro")["V"].block_until_ready()
        )
        sample = intervened.sample(n, seed=seed, backend="numpy")
        rows[repr(x)] = {"mean": {c: float(v.mean()) for c, v in sample.items()},
                         "var": {c: float(v.var()) for c, v in sample.items()},
                         "first_s": first, "best_s": best, "numpyro_first_s": jax_first,
                         "numpyro_best_s": jax_best}  # fmt: skip
    return {"fit_first_s": fit_first, "fit_best_s": fit_best, "interventions": rows,
            "equations": scm.equations}  # fmt: skip


def true_means(x: float) -> dict[str, float]:
    from probrep.causal import SCM

    truth = SCM.from_equations(TRUTH).do({"X": x})
    mean, _ = truth.gaussian()
    return {name: float(m) for name, m in zip(truth.nodes, mean)}


def compare(ours: dict, theirs: dict, n: int, bound: float) -> dict:
    """Per intervention and node: both means, the z of their difference, and the truth."""
    table, worst = {}, 0.0
    for key, row in ours["interventions"].items():
        other, truth = theirs["interventions"][key], true_means(float(key))
        table[key] = {}
        for node, mean in row["mean"].items():
            se = float(np.sqrt(row["var"][node] / n + other["var"][node] / n))
            z = 0.0 if se == 0 else (mean - other["mean"][node]) / se
            worst = max(worst, abs(z))
            table[key][node] = {"probrep": mean, "gcm": other["mean"][node], "mc_se_of_difference": se, "z": z,
                                "truth": truth[node]}  # fmt: skip
    return {"by_intervention": table, "max_abs_z": worst, "bonferroni_bound": bound, "agree": bool(worst < bound)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=100_000, help="interventional rows per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dowhy-python", default=str(Path(__file__).resolve().parents[1] / ".venv-dowhy/bin/python"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "causal_dowhy.json"))
    parser.add_argument("--gcm-side", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gcm_side:
        gcm_side(*args.gcm_side)
        return
    if not Path(args.dowhy_python).exists():
        sys.exit(f"no dowhy environment at {args.dowhy_python}: run `make bench-dowhy` (it creates .venv-dowhy)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _machine import cpu_name
    from scipy import stats

    from probrep.causal import SCM

    data = SCM.from_equations(TRUTH).sample(args.rows, seed=args.seed, backend="numpy")
    load_at_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        data_path, gcm_out = Path(tmp) / "data.npz", Path(tmp) / "gcm.json"
        names = list(data)
        np.savez(data_path, names=np.array(names), edges=np.array(EDGES), samples=args.samples, seed=args.seed,
                 interventions=np.array(INTERVENTIONS), **data)  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        command = [args.dowhy_python, __file__, "--gcm-side", str(data_path), str(gcm_out)]
        subprocess.run(command, check=True, env=env)
        gcm = json.loads(gcm_out.read_text())
        # probrep reads the same file back, so both sides fit byte-identical columns
        with np.load(data_path) as saved:
            data = {name: saved[name] for name in names}
    ours = probrep_side(data, args.samples, args.seed + 1)  # not the seed that drew the data
    comparisons = 2 * len(INTERVENTIONS) * len(data)  # nodes x interventions x two gcm noise models
    bound = float(stats.norm.isf(0.01 / (2 * comparisons)))
    result = {
        "benchmark": "causal_dowhy",
        "graph": EDGES,
        "truth": TRUTH,
        "rows": args.rows,
        "interventional_samples": args.samples,
        "probrep": ours,
        "gcm": gcm,
        "agreement": {noise: compare(ours, gcm[noise], args.samples, bound) for noise in ("gaussian", "empirical")},
        "speed": {},
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
        },  # fmt: skip
    }
    for noise in ("gaussian", "empirical"):
        theirs = gcm[noise]
        key = repr(INTERVENTIONS[0])
        ours_s, jax_s = ours["interventions"][key]["best_s"], ours["interventions"][key]["numpyro_best_s"]
        theirs_s = theirs["interventions"][key]["best_s"]
        result["speed"][noise] = {
            "fit_s": {"probrep": ours["fit_best_s"], "gcm": theirs["fit_best_s"]},
            "fit_ratio_gcm_over_probrep": theirs["fit_best_s"] / ours["fit_best_s"],
            "samples_per_s": {
                "probrep_numpy": args.samples / ours_s,
                "probrep_numpyro": args.samples / jax_s,
                "gcm": args.samples / theirs_s,
            },  # fmt: skip
            "sampling_ratio_probrep_numpy_over_gcm": theirs_s / ours_s,
            "sampling_ratio_probrep_numpyro_over_gcm": theirs_s / jax_s,
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for noise, agreement in result["agreement"].items():
        speed = result["speed"][noise]
        print(
            f"gcm ({noise} noise): max |z| {agreement['max_abs_z']:.2f} (bound {bound:.2f}, agree: "
            f"{agreement['agree']}); fit {speed['fit_s']['probrep']:.3f} s probrep vs {speed['fit_s']['gcm']:.3f} "
            f"s gcm; rows/s probrep {speed['samples_per_s']['probrep_numpy']:.3g} (numpy), "
            f"{speed['samples_per_s']['probrep_numpyro']:.3g} (numpyro) vs gcm {speed['samples_per_s']['gcm']:.3g}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
