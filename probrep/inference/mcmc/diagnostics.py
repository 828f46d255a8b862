"""What a user reads after MCMC: arviz's summary table, the divergences and the time split, and the checks that
say when the chains are not usable (Stan's and arviz's thresholds), printed with the table and raised as
warnings by ``mcmc.sample``."""

from __future__ import annotations

import io
import sys
from typing import Any, TextIO

import arviz as az
import numpy as np

#: split R-hat above this says the chains disagree (Vehtari et al. 2021)
RHAT_MAX = 1.01
#: bulk and tail ESS below this many per chain are too few for reliable means and quantiles (ibid.)
ESS_PER_CHAIN_MIN = 100


class MCMCWarning(UserWarning):
    """The chains are not (yet) usable: high R-hat, low ESS or divergences."""


def diagnose(idata: az.InferenceData, var_names: list[str] | None = None, table: Any = None) -> list[str]:
    """The problems with these draws, in words (empty when R-hat, bulk/tail ESS and divergences are within
    Stan's limits: R-hat <= 1.01, ESS >= 100 per chain, no divergent transitions). ``table``: an arviz summary
    of these draws already at hand (with ``r_hat``, ``ess_bulk``, ``ess_tail``), so it is not computed again."""
    problems = []
    chains = int(idata.posterior.sizes.get("chain", 1))
    if table is None:
        table = az.summary(idata, var_names=var_names, kind="diagnostics")
    worst_rhat = table["r_hat"].max() if "r_hat" in table else float("nan")
    if chains > 1 and np.isfinite(worst_rhat) and worst_rhat > RHAT_MAX:
        names = ", ".join(table.index[table["r_hat"] > RHAT_MAX][:5])
        problems.append(f"R-hat up to {worst_rhat:.3f} > {RHAT_MAX} ({names}): the chains have not mixed")
    ess_min = ESS_PER_CHAIN_MIN * chains
    for kind in ("ess_bulk", "ess_tail"):
        if kind in table and table[kind].min() < ess_min:
            names = ", ".join(table.index[table[kind] < ess_min][:5])
            problems.append(f"{kind.replace('_', ' ')} down to {table[kind].min():.0f} < {ess_min} ({names})")
    if "sample_stats" in idata.groups() and "diverging" in idata.sample_stats:
        divergent = int(idata.sample_stats["diverging"].sum())
        if divergent:
            problems.append(f"{divergent} divergent transitions: the sampler missed part of the posterior")
    return problems


def summary(idata: az.InferenceData, var_names: list[str] | None = None) -> Any:
    """arviz's summary table: mean, sd, HDI, MCSE, bulk and tail ESS, R-hat (a pandas DataFrame)."""
    return az.summary(idata, var_names=var_names)


def format_summary(idata: az.InferenceData, var_names: list[str] | None = None) -> str:
    """The summary table, then divergences, gradient evaluations and the time split, as text."""
    out = io.StringIO()
    table = summary(idata, var_names)
    out.write(table.to_string())
    out.write("\n")
    attrs = dict(idata.posterior.attrs)
    if "sample_stats" in idata.groups():
        stats = idata.sample_stats
        if "diverging" in stats:
            n = int(stats["diverging"].sum())
            total = int(stats["diverging"].size)
            out.write(f"divergences: {n} of {total} draws (warm-up: {attrs.get('warmup_divergences', 'n/a')})\n")
        if "acceptance_rate" in stats:
            out.write(f"mean acceptance: {float(stats['acceptance_rate'].mean()):.3f}\n")
    if "grad_evals_sampling" in attrs:
        out.write(
            f"gradient evaluations: {attrs['grad_evals_warmup']} warm-up + {attrs['grad_evals_sampling']} sampling\n"
        )
    problems = diagnose(idata, var_names, table)
    if problems:
        out.write("WARNING: " + "\nWARNING: ".join(problems) + "\n")
    if "compile_seconds" in attrs:
        out.write(
            f"time: compile {attrs['compile_seconds']:.2f} s, warm-up {attrs['warmup_seconds']:.2f} s, "
            f"sampling {attrs['sampling_seconds']:.2f} s (total {attrs['total_seconds']:.2f} s)\n"
        )
    return out.getvalue()


def print_summary(idata: az.InferenceData, var_names: list[str] | None = None, file: TextIO | None = None) -> None:
    """Print :func:`format_summary` (to ``file``, default stdout)."""
    print(format_summary(idata, var_names), file=file or sys.stdout, end="")
