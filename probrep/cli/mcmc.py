"""``probrep mcmc``: sample posteriordb posteriors and validate them against their reference draws.

A posterior passes only when its chains are usable (R-hat, ESS and divergences within Stan's limits, see
``mcmc.diagnose``) and agree with the reference draws.

It runs in float64 (as Stan) unless ``--float32``, inside ``jax.enable_x64``: no JAX setting outlives the command."""

from __future__ import annotations

import argparse

from probrep.cli.options import add_progress, add_seed


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mcmc",
        help="sample posteriordb posteriors with NUTS / HMC / MALA / ULA and validate them against reference draws",
        description="For each posterior: run mcmc.sample, print R-hat / ESS / divergences / timing, and the "
        "z-score validation of every parameter's mean and sd against the reference draws.",
    )
    p.add_argument("posteriors", nargs="*", help="posteriordb names (default: all available)")
    p.add_argument("--kernel", choices=["nuts", "hmc", "mala", "ula"], default="nuts", help="MCMC kernel")
    p.add_argument("--warmup", type=int, default=1000, help="warm-up steps per chain")
    p.add_argument("--samples", type=int, default=1000, help="kept draws per chain")
    p.add_argument("--chains", type=int, default=4, help="number of chains")
    p.add_argument(
        "--chain-method",
        choices=["sequential", "vectorized", "parallel"],
        default="sequential",
        help="how chains run: one after another, vmapped, or on several devices",
    )
    p.add_argument("--dense-mass", action="store_true", help="dense inverse mass matrix")
    p.add_argument("--float32", action="store_true", help="single precision (default: float64, as Stan)")
    p.add_argument(
        "--posteriordb", default=None, help="folder (default: $PROBREP_POSTERIORDB or ../shared/posteriordb)"
    )
    add_seed(p)
    add_progress(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import jax

    from probrep.data import posteriordb
    from probrep.inference import mcmc

    with jax.enable_x64(not args.float32):  # float64 as Stan, for this command only
        names = args.posteriors or posteriordb.available(args.posteriordb)
        failed = 0
        for name in names:
            post = posteriordb.load(name, args.posteriordb)
            idata = mcmc.sample(
                post.model, kernel=args.kernel, num_warmup=args.warmup, num_samples=args.samples,
                num_chains=args.chains, chain_method=args.chain_method, seed=args.seed, progress=not args.no_progress,
                kernel_kwargs={"dense_mass": True} if args.dense_mass else None, **post.model_kwargs,
            )  # fmt: skip
            report = posteriordb.validate(idata, post)
            # agreement with the reference counts only for usable chains: unmixed chains can agree by luck
            problems = mcmc.diagnose(idata)
            print(f"\n== {name} ({args.kernel})")
            mcmc.print_summary(idata)
            print(report.table())
            if problems:
                print(f"{name}: not passed: the chains are not usable ({'; '.join(problems)})")
            failed += not (report.passed and not problems)
    print(f"\n{len(names) - failed}/{len(names)} posteriors agree with the reference draws from usable chains")
    return 1 if failed else 0
