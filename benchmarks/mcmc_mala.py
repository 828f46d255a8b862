"""probrep's MALA against BlackJAX's MALA on the same targets: ESS per gradient evaluation and ESS per second.

Targets (log densities in NumPyro's unconstrained space, the very same function for both samplers):
``gaussian_50d`` (independent normals, variances log-spaced over two orders of magnitude), ``eight_schools``
(non-centred) and ``sblrc_blr`` (posteriordb's Bayesian linear regression; skipped if the folder is absent).

- probrep: ``mcmc.sample(model, kernel="mala", chain_method="vectorized")``: dual averaging to 0.574 and a
  diagonal mass matrix in Stan windows during ``--warmup`` steps, then ``--samples`` draws.
- BlackJAX: ``blackjax.mala`` (identity metric: BlackJAX leaves adaptation to the user), its step size tuned by
  hand to an acceptance of 0.574 (repeated short runs, adjusting log step size by the acceptance error), then
  ``--warmup`` burn-in steps and ``--samples`` draws, 4 chains under ``jax.vmap`` in one ``lax.scan``.

Both count one gradient per draw; ESS is the smallest bulk ESS over all scalar sampled parameters (constrained),
ESS/s divides by the sampling phase's wall time (compilation excluded for both; probrep's from its timing split).
BlackJAX is imported lazily; without it the script says so and records probrep alone.

    python benchmarks/mcmc_mala.py [--warmup 2000] [--samples 10000]

Writes benchmarks/results/mcmc_mala.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import arviz as az  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)
from jax.flatten_util import ravel_pytree  # noqa: E402
from numpyro.infer.util import initialize_model  # noqa: E402

from probrep.data import posteriordb  # noqa: E402
from probrep.inference import mcmc  # noqa: E402

CHAINS, TARGET = 4, 0.574
MEAN50, VAR50 = np.linspace(-2.0, 2.0, 50), np.logspace(-1.0, 1.0, 50)


def gaussian_50d():
    numpyro.sample("x", dist.Normal(jnp.asarray(MEAN50), jnp.sqrt(jnp.asarray(VAR50))).to_event(1))


def targets() -> dict:
    out = {
        "gaussian_50d": (gaussian_50d, {}),
        "eight_schools": (
            posteriordb.eight_schools_noncentered,
            {
                "sigma": np.array([15.0, 10, 16, 11, 9, 11, 10, 18], dtype=np.float32),
                "y": np.array([28.0, 8, -3, 7, -1, 1, 18, 12], dtype=np.float32),
            },
        ),
    }
    try:
        post = posteriordb.load("sblrc-blr")
        out["sblrc_blr"] = (post.model, post.model_kwargs)
    except FileNotFoundError as exc:
        print(f"skipping sblrc_blr: {exc}")
    return out


def min_ess(draws: dict[str, np.ndarray], sites) -> float:
    values = []
    for site in sites:
        x = np.asarray(draws[site], dtype=np.float64)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        values += [float(az.ess(x[..., j], method="bulk")) for j in range(x.shape[-1])]
    return min(values)


def run_probrep(model, kwargs, warmup, samples) -> dict:
    idata = mcmc.sample(
        model,
        kernel="mala",
        num_warmup=warmup,
        num_samples=samples,
        num_chains=CHAINS,
        chain_method="vectorized",
        seed=1,
        progress=False,
        **kwargs,
    )
    info = initialize_model(jax.random.PRNGKey(0), model, model_kwargs=kwargs)
    sites = sorted(info.param_info.z)
    ess = min_ess({s: idata.posterior[s].values for s in sites}, sites)
    seconds = idata.posterior.attrs["sampling_seconds"]
    return {
        "min_ess_bulk": round(ess, 1),
        "ess_per_grad": ess / (CHAINS * samples),
        "ess_per_s": ess / seconds,
        "sampling_seconds": round(seconds, 4),
        "acceptance": round(float(idata.sample_stats["acceptance_rate"].mean()), 3),
        "step_size_median": float(np.median(idata.sample_stats["step_size"].values[:, -1])),
    }


def run_blackjax(model, kwargs, warmup, samples) -> dict:
    import blackjax

    keys = jax.random.split(jax.random.PRNGKey(1), CHAINS)
    info = initialize_model(keys, model, model_kwargs=kwargs)  # batched: one start per chain
    z0 = info.param_info.z
    flat0 = jax.vmap(lambda z: ravel_pytree(z)[0])(z0)
    unravel = ravel_pytree(jax.tree.map(lambda v: v[0], z0))[1]
    potential = info.potential_fn

    def logdensity(x):
        return -potential(unravel(x))

    kernel = blackjax.mala.build_kernel()

    def run(key, positions, step_size, n):
        def chain(key, position):
            state = blackjax.mala.init(position, logdensity)

            def body(state, k):
                state, step_info = kernel(k, state, logdensity, step_size)
                return state, (state.position, step_info.acceptance_rate)

            last, (xs, acc) = jax.lax.scan(body, state, jax.random.split(key, n))
            return last.position, xs, acc

        return jax.vmap(chain)(jax.random.split(key, CHAINS), positions)

    tune = jax.jit(lambda k, p, s: run(k, p, s, 400))
    # hand tuning: short runs, moving log(step) by the acceptance error until it sits at 0.574
    step, positions, key = 0.01, flat0, jax.random.PRNGKey(7)
    for _ in range(25):
        key, sub = jax.random.split(key)
        positions, _, acc = tune(sub, positions, step)
        error = float(jnp.mean(acc)) - TARGET
        if abs(error) < 0.01:
            break
        step *= float(np.exp(2.0 * error))
    burn = jax.jit(lambda k, p, s: run(k, p, s, warmup)[0])
    positions = burn(jax.random.PRNGKey(8), positions, step)
    sample = jax.jit(lambda k, p, s: run(k, p, s, samples)).lower(jax.random.PRNGKey(9), positions, step).compile()
    start = time.perf_counter()
    _, xs, acc = jax.block_until_ready(sample(jax.random.PRNGKey(9), positions, step))
    seconds = time.perf_counter() - start
    constrained = jax.vmap(jax.vmap(lambda x: info.postprocess_fn(unravel(x))))(xs)
    sites = sorted(z0)
    ess = min_ess({s: np.asarray(constrained[s]) for s in sites}, sites)
    return {
        "min_ess_bulk": round(ess, 1),
        "ess_per_grad": ess / (CHAINS * samples),
        "ess_per_s": ess / seconds,
        "sampling_seconds": round(seconds, 4),
        "acceptance": round(float(jnp.mean(acc)), 3),
        "step_size_blackjax": step,
        "step_size_in_probrep_units": 2.0 * step,  # BlackJAX: x + s grad + sqrt(2 s) xi, so e = 2 s
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "mcmc_mala.json"))
    args = parser.parse_args()
    try:
        import blackjax

        blackjax_version = blackjax.__version__
    except ImportError:
        blackjax_version = None
        print("BlackJAX is not installed (pip install blackjax): measuring probrep's MALA alone")
    rows = {}
    for name, (model, kwargs) in targets().items():
        row = {"probrep": run_probrep(model, kwargs, args.warmup, args.samples)}
        if blackjax_version:
            row["blackjax"] = run_blackjax(model, kwargs, args.warmup, args.samples)
            row["ratio_ess_per_grad"] = round(row["probrep"]["ess_per_grad"] / row["blackjax"]["ess_per_grad"], 3)
            row["ratio_ess_per_s"] = round(row["probrep"]["ess_per_s"] / row["blackjax"]["ess_per_s"], 3)
            # raw speed, ESS aside: probrep's draws per second over BlackJAX's (same number of draws)
            row["ratio_steps_per_s"] = round(
                row["blackjax"]["sampling_seconds"] / row["probrep"]["sampling_seconds"], 3
            )
        for side in ("probrep", "blackjax"):
            if side in row:
                row[side]["ess_per_grad"] = round(row[side]["ess_per_grad"], 5)
                row[side]["ess_per_s"] = round(row[side]["ess_per_s"], 1)
        rows[name] = row
        print(name, json.dumps(row), flush=True)
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores visible",
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "blackjax": blackjax_version,
        "settings": {"chains": CHAINS, "warmup": args.warmup, "samples": args.samples, "target_accept": TARGET},
        "figure_of_merit": "min bulk ESS over sampled parameters; per sampling-phase gradient and per sampling second",
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
