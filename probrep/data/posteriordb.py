"""Eight posteriordb posteriors as NumPyro programs, their data and reference draws, and a validation check.

The folder (a subset of the posterior database, stan-dev/posteriordb) is found through the environment variable
``PROBREP_POSTERIORDB`` or at ``<repository root>/../shared/posteriordb``; nothing is downloaded. Reference draws
(10 chains x 1,000 draws of long Stan runs) are zipped JSON, inflated with a bound on their size. Every file is
checked as it is read: a malformed or incomplete one fails at load with a ValueError naming the file and field.

    post = posteriordb.load("eight_schools-eight_schools_noncentered")
    idata = mcmc.sample(post.model, **post.model_kwargs)
    report = posteriordb.validate(idata, post)      # report.passed, report.table()

Validation. For every reference parameter, with our draws' mean ``m``, standard deviation ``s`` and their
Monte Carlo standard errors from our ESS (arviz ``mcse``; ``sd / sqrt(ESS)`` for the mean), and the same for the
reference draws,

    z_mean = (m - m_ref) / sqrt(mcse_m^2 + mcse_ref_m^2),    z_sd = (s - s_ref) / sqrt(mcse_s^2 + mcse_ref_s^2).

A correct sampler gives z ~ N(0, 1); the posterior passes when every |z| is within the Bonferroni bound
``z* = Phi^-1(1 - alpha / (2 m))`` for the ``m = 2 x parameters`` comparisons (family-wise error ``alpha``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from probrep.io.files import read_zip_member

__all__ = [
    "POSTERIOR_NAMES",
    "NEEDS_X64",
    "Posterior",
    "ParameterCheck",
    "Validation",
    "find_root",
    "available",
    "load",
    "flatten_draws",
    "validate",
    "bonferroni_bound",
]

ENV_VAR = "PROBREP_POSTERIORDB"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO_ROOT.parent / "shared" / "posteriordb"

# Stan works in double precision; these need it (the GP's Cholesky with 1e-10 jitter fails in float32).
NEEDS_X64 = frozenset({"gp_pois_regr-gp_pois_regr"})


# ------------------------------------------------------------------------------------------------ models
def eight_schools_noncentered(sigma, y=None):
    """theta_trans ~ N(0, 1); theta = mu + tau theta_trans; y ~ N(theta, sigma); mu ~ N(0, 5); tau ~ HalfCauchy(5)."""
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", sigma.shape[0]):
        theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_trans)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def _flat(name: str, support: Any, shape: tuple[int, ...] = ()):
    """A site with a flat (improper) prior on ``support``."""
    import numpyro
    import numpyro.distributions as dist

    return numpyro.sample(name, dist.ImproperUniform(support, (), shape))


def kidscore_momiq(mom_iq, kid_score=None):
    """kid_score ~ N(beta[1] + beta[2] mom_iq, sigma); sigma ~ HalfCauchy(2.5); beta flat."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    beta = _flat("beta", constraints.real, (2,))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("N", mom_iq.shape[0]):
        numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_iq, sigma), obs=kid_score)


def logearn_height(height, log_earn=None):
    """log(earn) ~ N(beta[1] + beta[2] height, sigma); beta flat, sigma > 0 flat."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    beta = _flat("beta", constraints.real, (2,))
    sigma = _flat("sigma", constraints.positive)
    with numpyro.plate("N", height.shape[0]):
        numpyro.sample("log_earn", dist.Normal(beta[0] + beta[1] * height, sigma), obs=log_earn)


def ark(lags, y_next=None):
    """y[t] ~ N(alpha + sum_k beta[k] y[t-k], sigma); ``lags[t, k-1] = y[t-k]``; alpha, beta ~ N(0, 10);
    sigma ~ HalfCauchy(2.5)."""
    import numpyro
    import numpyro.distributions as dist

    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([lags.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("T", lags.shape[0]):
        numpyro.sample("y", dist.Normal(alpha + lags @ beta, sigma), obs=y_next)


def garch11(y, sigma1):
    """sigma[t]^2 = alpha0 + alpha1 (y[t-1] - mu)^2 + beta1 sigma[t-1]^2, sigma[1] = sigma1; y[t] ~ N(mu, sigma[t]);
    flat priors on mu, alpha0 > 0, 0 < alpha1 < 1, 0 < beta1 < 1 - alpha1."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax import lax
    from numpyro.distributions import constraints

    mu = _flat("mu", constraints.real)
    alpha0 = _flat("alpha0", constraints.positive)
    alpha1 = _flat("alpha1", constraints.unit_interval)
    # beta1 = (1 - alpha1) u with u flat on (0, 1): a flat density on beta1 in (0, 1 - alpha1) is (1 - alpha1) in u.
    # (A site with the dependent support interval(0, 1 - alpha1) would be constrained with the transform of its
    # initial alpha1 by NumPyro's postprocessing, which misses dynamic supports wrapped by ImproperUniform.)
    beta1_unit = _flat("beta1_unit", constraints.unit_interval)
    beta1 = numpyro.deterministic("beta1", (1.0 - alpha1) * beta1_unit)
    numpyro.factor("beta1_jacobian", jnp.log1p(-alpha1))
    y = jnp.asarray(y)
    sigma1 = jnp.asarray(sigma1, dtype=y.dtype)

    def recursion(sigma_prev, y_prev):
        sigma = jnp.sqrt(alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * sigma_prev**2)
        return sigma, sigma

    _, rest = lax.scan(recursion, sigma1, y[:-1])
    sigma = jnp.concatenate([sigma1[None], rest])
    with numpyro.plate("T", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def gp_pois_regr(x, k=None):
    """f = L f_tilde, L = chol(alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)) + 1e-10 I); k ~ Poisson(exp(f));
    rho ~ Gamma(25, 4); alpha ~ HalfNormal(2); f_tilde ~ N(0, 1)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))
    n = x.shape[0]
    f_tilde = numpyro.sample("f_tilde", dist.Normal(0.0, 1.0).expand([n]).to_event(1))
    diff = x[:, None] - x[None, :]
    cov = alpha**2 * jnp.exp(-(diff**2) / (2.0 * rho**2)) + 1e-10 * jnp.eye(n)
    f = numpyro.deterministic("f", jnp.linalg.cholesky(cov) @ f_tilde)
    with numpyro.plate("N", n):
        numpyro.sample("k", dist.Poisson(jnp.exp(f)), obs=k)


def low_dim_gauss_mix(y):
    """y[n] ~ theta N(mu[1], sigma[1]) + (1 - theta) N(mu[2], sigma[2]); mu ordered, mu ~ N(0, 2);
    sigma ~ HalfNormal(2); theta ~ Beta(5, 5)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    mu = _flat("mu", constraints.ordered_vector, (2,))
    numpyro.factor("mu_prior", dist.Normal(0.0, 2.0).log_prob(mu).sum())
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([2]).to_event(1))
    theta = numpyro.sample("theta", dist.Beta(5.0, 5.0))
    mixing = dist.Categorical(probs=jnp.stack([theta, 1.0 - theta]))
    with numpyro.plate("N", y.shape[0]):
        numpyro.sample("y", dist.MixtureSameFamily(mixing, dist.Normal(mu, sigma)), obs=y)


def blr(X, y=None):
    """y ~ N(X beta, sigma); beta ~ N(0, 10); sigma ~ HalfNormal(10)."""
    import numpyro
    import numpyro.distributions as dist

    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(10.0))
    with numpyro.plate("N", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def _numbers(value: Any, where: str) -> np.ndarray:
    """``value`` (parsed JSON) as float64, refusing what is not numbers (strings, ragged lists, null)."""
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):  # ragged nesting
        array = np.asarray(None)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{where} must be numbers (a number, a list, or equal-length lists of them)")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{where} holds NaN or infinite values")
    return array


class _Fields:
    """The fields of one data.json, checked as they are read: bad data fails at load, not deep inside MCMC."""

    def __init__(self, data: Any, path: Path):
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of data fields, got {type(data).__name__}")
        self.data, self.path = data, path

    def array(self, name: str, ndim: int, *, positive: bool = False, counts: bool = False) -> np.ndarray:
        where = f"{self.path}: field {name!r}"
        if name not in self.data:
            raise ValueError(f"{self.path}: missing field {name!r}")
        value = _numbers(self.data[name], where)
        if value.ndim != ndim or 0 in value.shape:
            raise ValueError(f"{where} must be a non-empty {ndim}-dimensional array, got shape {value.shape}")
        if positive and not (value > 0).all():
            raise ValueError(f"{where} must be > 0 (a scale), got {value.min():g}")
        if counts and not ((value >= 0) & (value == np.round(value))).all():
            raise ValueError(f"{where} must be counts (integers >= 0)")
        return value

    def arrays(self, ndims: dict[str, int], count: str, **checks: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Arrays of one length (``count``'s value, when the file gives it); ``positive=``/``counts=`` name
        those that must be scales / counts."""
        out = {n: self.array(n, d, **{c: n in names for c, names in checks.items()}) for n, d in ndims.items()}
        lengths = {n: len(v) for n, v in out.items()}
        if count in self.data:
            lengths[count] = int(self.array(count, 0, counts=True))
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{self.path}: fields {sorted(lengths)} must agree in length, got {lengths}")
        return out


def _ark_kwargs(f: _Fields) -> dict:
    y, K = f.arrays({"y": 1}, "T")["y"], int(f.array("K", 0, counts=True))
    if not 1 <= K < len(y):
        raise ValueError(f"{f.path}: field 'K' must be in 1..{len(y) - 1} (lags of y), got {K}")
    lags = np.stack([y[K - k : len(y) - k] for k in range(1, K + 1)], axis=1)
    return {"lags": lags, "y_next": y[K:]}


def _earnings_kwargs(f: _Fields) -> dict:
    v = f.arrays({"height": 1, "earn": 1}, "N", positive=("earn",))
    return {"height": v["height"], "log_earn": np.log(v["earn"])}


def _gp_kwargs(f: _Fields) -> dict:
    v = f.arrays({"x": 1, "k": 1}, "N", counts=("k",))
    return {"x": v["x"], "k": v["k"].astype(np.int32)}


# name -> (program, checked data.json fields -> keyword arguments)
_PROGRAMS: dict[str, tuple[Callable, Callable[[_Fields], dict]]] = {
    "eight_schools-eight_schools_noncentered": (
        eight_schools_noncentered,
        lambda f: f.arrays({"sigma": 1, "y": 1}, "J", positive=("sigma",)),
    ),
    "kidiq-kidscore_momiq": (kidscore_momiq, lambda f: f.arrays({"mom_iq": 1, "kid_score": 1}, "N")),
    "earnings-logearn_height": (logearn_height, _earnings_kwargs),
    "arK-arK": (ark, _ark_kwargs),
    "garch-garch11": (garch11, lambda f: {**f.arrays({"y": 1}, "T"), "sigma1": f.array("sigma1", 0, positive=True)}),
    "gp_pois_regr-gp_pois_regr": (gp_pois_regr, _gp_kwargs),
    "low_dim_gauss_mix-low_dim_gauss_mix": (low_dim_gauss_mix, lambda f: f.arrays({"y": 1}, "N")),
    "sblrc-blr": (blr, lambda f: f.arrays({"X": 2, "y": 1}, "N")),
}
POSTERIOR_NAMES: tuple[str, ...] = tuple(_PROGRAMS)


# ------------------------------------------------------------------------------------------------ loader
def find_root(path: str | os.PathLike | None = None) -> Path:
    """The posteriordb folder: ``path``, else ``$PROBREP_POSTERIORDB``, else ``<repo root>/../shared/posteriordb``."""
    if path is not None:
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"posteriordb folder {root} does not exist")
        return root
    env = os.environ.get(ENV_VAR)
    candidates = ([Path(env)] if env else []) + [DEFAULT_ROOT]
    for root in candidates:
        if root.is_dir():
            return root
    raise FileNotFoundError(
        f"posteriordb reference data not found: set {ENV_VAR} (currently {env or 'unset'}) or place the folder at "
        f"{DEFAULT_ROOT}"
    )


def available(path: str | os.PathLike | None = None) -> list[str]:
    """The posteriors of :data:`POSTERIOR_NAMES` present in the folder."""
    root = find_root(path)
    return [name for name in POSTERIOR_NAMES if (root / name / "reference_draws.json.zip").is_file()]


@dataclass
class Posterior:
    """One posterior: ``model(**model_kwargs)`` is the NumPyro program conditioned on the data."""

    name: str
    folder: Path
    model: Callable
    model_kwargs: dict[str, np.ndarray]
    info: dict[str, Any] = field(repr=False)

    @property
    def needs_x64(self) -> bool:
        return self.name in NEEDS_X64

    @cached_property
    def reference_draws(self) -> dict[str, np.ndarray]:
        """Reference draws by parameter name (``"theta[1]"``), each [chains, draws], checked as they are read."""
        path = self.folder / "reference_draws.json.zip"
        if not path.is_file():
            raise FileNotFoundError(f"reference draws {path} do not exist")
        chains = _read_json(path, read_zip_member(path, ".json", MAX_REFERENCE_BYTES), "reference draws")
        if not isinstance(chains, list) or not chains or not all(isinstance(c, dict) and c for c in chains):
            raise ValueError(f"{path}: expected a JSON list of per-chain objects")
        names = list(chains[0])
        if any(set(chain) != set(names) for chain in chains):
            raise ValueError(f"{path}: every chain must hold the parameters of chain 0, {sorted(names)}")
        draws = {name: _numbers([c[name] for c in chains], f"{path}: parameter {name!r}") for name in names}
        for name, values in draws.items():
            if values.ndim != 2 or values.shape[1] < 2:
                raise ValueError(f"{path}: parameter {name!r} must hold a list of >= 2 draws in every chain")
        return draws

    @property
    def parameter_names(self) -> list[str]:
        return list(self.reference_draws)


#: the most a reference archive may inflate to (the largest of the eight is 2.3 MB): a zip bomb is refused
MAX_REFERENCE_BYTES = 64 * 2**20


def _read_json(path: Path, raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: the {what} file is not valid JSON: {type(exc).__name__}: {exc}") from None


def load(name: str, path: str | os.PathLike | None = None) -> Posterior:
    """Load one of :data:`POSTERIOR_NAMES` (data and program; reference draws are read on first use)."""
    if name not in _PROGRAMS:
        raise ValueError(f"unknown posterior {name!r}: expected one of {list(POSTERIOR_NAMES)}")
    folder = find_root(path) / name
    if not folder.is_dir():
        raise FileNotFoundError(f"posterior folder {folder} does not exist")
    data_path, info_path = folder / "data.json", folder / "posterior.json"
    data = _read_json(data_path, data_path.read_bytes(), "data")
    info = _read_json(info_path, info_path.read_bytes(), "posterior description")
    dims = info.get("dimensions") if isinstance(info, dict) else None
    if not isinstance(info, dict) or info.get("name") != name or not isinstance(dims, dict):
        raise ValueError(f"{info_path}: expected a JSON object with 'name' {name!r} and a 'dimensions' object")
    program, prepare = _PROGRAMS[name]
    return Posterior(name=name, folder=folder, model=program, model_kwargs=prepare(_Fields(data, data_path)), info=info)


# -------------------------------------------------------------------------------------------- validation
_INDEXED = re.compile(r"^(\w+)\[(\d+(?:,\d+)*)\]$")


def zero_based(name: str) -> str:
    """A posteriordb parameter name with its indices counted from 0, as arviz and NumPyro count them:
    ``"beta[2]"`` -> ``"beta[1]"``."""
    match = _INDEXED.match(name)
    if not match:
        return name
    return f"{match.group(1)}[{','.join(str(int(i) - 1) for i in match.group(2).split(','))}]"


def flatten_draws(source: Any, names: list[str]) -> dict[str, np.ndarray]:
    """Our draws for posteriordb parameter names (``"beta[2]"`` is ``beta[..., 1]``), each [chains, draws].

    ``source`` is arviz ``InferenceData`` (its ``posterior``) or a mapping of site -> array [chains, draws, ...]
    (or of posteriordb names -> [chains, draws], taken as they are).
    """
    posterior = source.posterior if hasattr(source, "posterior") else source
    out = {}
    for name in names:
        if name in posterior and not hasattr(source, "posterior"):  # already flat: {"beta[1]": [chains, draws]}
            out[name] = np.asarray(posterior[name])
            continue
        match = _INDEXED.match(name)
        site, index = (match.group(1), tuple(int(i) - 1 for i in match.group(2).split(","))) if match else (name, ())
        if site not in posterior:
            raise KeyError(f"parameter {name!r}: site {site!r} is not among the draws {sorted(posterior)}")
        values = np.asarray(posterior[site])
        out[name] = values[(Ellipsis,) + index] if index else values
    return out


@dataclass
class ParameterCheck:
    name: str
    mean: float
    ref_mean: float
    mcse_mean: float
    z_mean: float
    sd: float
    ref_sd: float
    mcse_sd: float
    z_sd: float
    ess_bulk: float


@dataclass
class Validation:
    posterior: str
    checks: list[ParameterCheck]
    z_bound: float
    alpha: float

    @property
    def max_abs_z(self) -> float:
        return max(max(abs(c.z_mean), abs(c.z_sd)) for c in self.checks)

    @property
    def passed(self) -> bool:
        return all(abs(c.z_mean) <= self.z_bound and abs(c.z_sd) <= self.z_bound for c in self.checks)

    @property
    def min_ess(self) -> float:
        return min(c.ess_bulk for c in self.checks)

    def failures(self) -> list[str]:
        return [
            f"{zero_based(c.name)}: mean {c.mean:.4g} vs {c.ref_mean:.4g} (z {c.z_mean:+.2f}), "
            f"sd {c.sd:.4g} vs {c.ref_sd:.4g} (z {c.z_sd:+.2f})"
            for c in self.checks
            if abs(c.z_mean) > self.z_bound or abs(c.z_sd) > self.z_bound
        ]

    def table(self) -> str:
        lines = [
            f"{self.posterior}: |z| bound {self.z_bound:.2f} (alpha {self.alpha}), passed={self.passed} "
            "(indices 0-based, as in the MCMC summary; posteriordb's own names count from 1)"
        ]
        lines.append(
            f"{'parameter':14s} {'mean':>10s} {'ref':>10s} {'z':>6s} {'sd':>10s} {'ref':>10s} {'z':>6s} {'ess':>7s}"
        )
        for c in self.checks:
            lines.append(
                f"{zero_based(c.name):14s} {c.mean:10.4g} {c.ref_mean:10.4g} {c.z_mean:+6.2f} {c.sd:10.4g} "
                f"{c.ref_sd:10.4g} {c.z_sd:+6.2f} {c.ess_bulk:7.0f}"
            )
        return "\n".join(lines)


def bonferroni_bound(comparisons: int, alpha: float = 0.01) -> float:
    """``Phi^-1(1 - alpha / (2 m))``: all ``m`` two-sided N(0, 1) statistics stay inside with probability ``>= 1 -
    alpha``."""
    from scipy.stats import norm

    return float(norm.ppf(1.0 - alpha / (2.0 * comparisons)))


def _moments(draws: np.ndarray) -> tuple[float, float, float, float, float]:
    """mean, sd, their MCSEs (arviz, ESS-based) and the bulk ESS of draws [chains, draws]."""
    import arviz as az

    draws = np.asarray(draws, dtype=np.float64)
    return (
        float(draws.mean()),
        float(draws.std(ddof=1)),
        float(az.mcse(draws, method="mean")),
        float(az.mcse(draws, method="sd")),
        float(az.ess(draws, method="bulk")),
    )


def validate(source: Any, posterior: Posterior | Mapping[str, np.ndarray], alpha: float = 0.01) -> Validation:
    """Compare our draws with the reference draws, parameter by parameter (see the module docstring)."""
    reference = posterior.reference_draws if isinstance(posterior, Posterior) else dict(posterior)
    label = posterior.name if isinstance(posterior, Posterior) else "posterior"
    ours = flatten_draws(source, list(reference))
    checks = []
    for name, ref in reference.items():
        m, s, mcse_m, mcse_s, ess = _moments(ours[name])
        rm, rs, rmcse_m, rmcse_s, _ = _moments(ref)
        z_mean = (m - rm) / np.hypot(mcse_m, rmcse_m)
        z_sd = (s - rs) / np.hypot(mcse_s, rmcse_s)
        checks.append(ParameterCheck(name, m, rm, mcse_m, float(z_mean), s, rs, mcse_s, float(z_sd), ess))
    return Validation(label, checks, bonferroni_bound(2 * len(checks), alpha), alpha)
