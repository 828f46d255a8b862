"""Comparing distributions: f-divergences and their variational bounds, mutual-information bounds, integral
probability metrics, and score-based discrepancies, for torch tensors on any device.

Everything about f-divergences rests on one table (:mod:`probrep.divergences.fdiv`): ``D_f(P||Q) = E_Q[f(p/q)]``
in nats, with f, f', the conjugate f*, its domain and the f-GAN activation g_f for each name of
:data:`F_DIVERGENCES`. The f-GAN objective, critic-based estimates, the NWJ / JS mutual-information bounds and
FactorVAE's density-ratio discriminator (:mod:`probrep.divergences.density_ratio`) all evaluate that table.

    from probrep import divergences as dv
    dv.f_lower_bound(critic(xp), critic(xq), "jensen_shannon")   # <= JS(P, Q), tight at the optimal critic
    dv.estimate_divergence(xp, xq, "kl", steps=2000)             # trains a critic; value +- stderr (held out)
    dv.infonce_lower_bound(scores)                               # scores[i, j] = T(x_i, y_j), diagonal joint
    dv.mmd2(x, y, kernel="rbf", bandwidth=None, unbiased=True)   # blockwise: 100k x 100k in bounded memory
    dv.energy_distance(x, y); dv.wasserstein_1d(x, y, p=1); dv.sliced_wasserstein(x, y)
    dv.ksd2(mcmc_draws, score_fn)                                # kernel Stein discrepancy against grad log p

Modules: ``fdiv`` (the table, bounds, Monte Carlo D_f), ``fgan`` (critic training, f-GAN), ``mi_bounds``,
``ipm`` (MMD, energy distance, Wasserstein), ``stein`` (KSD, Fisher divergence), ``pairwise`` (the blockwise
pair sums under MMD, energy distance and KSD), ``gaussians`` (closed forms).
"""

from probrep.divergences._util import Estimate
from probrep.divergences.fdiv import (
    F_DIVERGENCES,
    FDivergence,
    Interval,
    f_bound_terms,
    f_lower_bound,
    get_f_divergence,
    monte_carlo_divergence,
)
from probrep.divergences.fgan import (
    CriticEstimate,
    FGANResult,
    critic_mlp,
    estimate_divergence,
    fgan_critic_loss,
    fgan_generator_loss,
    train_fgan,
)
from probrep.divergences.gaussians import (
    gaussian_alpha_divergence,
    gaussian_bhattacharyya_coefficient,
    gaussian_energy_distance,
    gaussian_fisher_divergence,
    gaussian_kl,
    gaussian_mmd2_rbf,
    gaussian_neyman,
    gaussian_pearson,
    gaussian_squared_hellinger,
    gaussian_total_variation_1d,
    gaussian_w2,
)
from probrep.divergences.ipm import (
    KERNELS,
    PermutationTest,
    energy_distance,
    median_bandwidth,
    mmd2,
    mmd2_linear,
    mmd_permutation_test,
    sliced_wasserstein,
    wasserstein_1d,
)
from probrep.divergences.mi_bounds import (
    MI_BOUNDS,
    correlated_gaussian_log_ratio,
    correlated_gaussians,
    correlation_for_mi,
    dv_lower_bound,
    infonce_lower_bound,
    interpolated_lower_bound,
    js_nwj_lower_bound,
    mi_lower_bound,
    mine_lower_bound,
    nwj_lower_bound,
    tuba_lower_bound,
)
from probrep.divergences.stein import fisher_divergence, ksd2

__all__ = [
    "Estimate",
    "F_DIVERGENCES",
    "FDivergence",
    "Interval",
    "f_bound_terms",
    "f_lower_bound",
    "get_f_divergence",
    "monte_carlo_divergence",
    "CriticEstimate",
    "FGANResult",
    "critic_mlp",
    "estimate_divergence",
    "fgan_critic_loss",
    "fgan_generator_loss",
    "train_fgan",
    "gaussian_alpha_divergence",
    "gaussian_bhattacharyya_coefficient",
    "gaussian_energy_distance",
    "gaussian_fisher_divergence",
    "gaussian_kl",
    "gaussian_mmd2_rbf",
    "gaussian_neyman",
    "gaussian_pearson",
    "gaussian_squared_hellinger",
    "gaussian_total_variation_1d",
    "gaussian_w2",
    "KERNELS",
    "PermutationTest",
    "energy_distance",
    "median_bandwidth",
    "mmd2",
    "mmd2_linear",
    "mmd_permutation_test",
    "sliced_wasserstein",
    "wasserstein_1d",
    "MI_BOUNDS",
    "correlated_gaussian_log_ratio",
    "correlated_gaussians",
    "correlation_for_mi",
    "dv_lower_bound",
    "infonce_lower_bound",
    "interpolated_lower_bound",
    "js_nwj_lower_bound",
    "mi_lower_bound",
    "mine_lower_bound",
    "nwj_lower_bound",
    "tuba_lower_bound",
    "fisher_divergence",
    "ksd2",
]
