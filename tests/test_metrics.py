"""Disentanglement metrics against closed forms and sampling distributions.

Exact cases use factors on a full, balanced factorial grid: every combination of classes appears equally often,
so independent factors have *exactly* zero empirical mutual information and a classifier that only sees one
factor scores *exactly* 1/C on another one. Noise cases use tolerances from the estimator's sampling law.
"""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from probrep import metrics as M
from probrep.metrics._arrays import discretize


def grid(sizes, reps=1):
    """All class combinations of ``sizes``, each ``reps`` times -> int [prod(sizes) * reps, K]."""
    g = np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)
    return np.tile(g, (reps, 1))


def uniform_factors(sizes, n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in sizes], axis=1)


class Toy:
    """A dataset whose 'image' is its factor vector: encode = identity returns the true factors."""

    def __init__(self, sizes):
        self.factor_sizes = tuple(sizes)

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1)

    def render(self, classes):
        return np.asarray(classes, dtype=np.float32)


# ----------------------------------------------------------------------------------------------------- MIG


def test_mig_identity_codes_is_one():
    # 20 equal-width bins over a factor with C <= 20 integer values are at most 1 wide, so every value gets
    # its own bin: I(z_k; v_k) = H(v_k) exactly, and on the grid I(z_j; v_k) = 0 for j != k -> MIG = 1 up to
    # float rounding of the log sums (1e-12).
    sizes = (3, 4, 5, 7)
    f = grid(sizes, reps=2)
    res = M.mig(f, f.astype(np.float64))
    assert res.score == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.entropy, np.log(sizes), atol=1e-12)
    np.testing.assert_allclose(res.mutual_info, np.diag(np.log(sizes)), atol=1e-12)


def test_mig_one_copied_factor_is_one_over_k():
    # Code 0 copies factor 0, the other codes are constant (I = 0): factor 0 has gap H/H = 1, the other
    # K - 1 factors have top-1 = top-2 = 0 (code 0 is independent of them on the grid) -> MIG = 1/K.
    f = grid((3, 4, 5, 6))
    codes = np.zeros((f.shape[0], 3))
    codes[:, 0] = f[:, 0]
    res = M.mig(f, codes)
    assert res.score == pytest.approx(1 / 4, abs=1e-12)
    np.testing.assert_allclose(res.gaps, [1, 0, 0, 0], atol=1e-12)


def test_mig_excludes_constant_factor():
    f = grid((3, 4, 5))
    with_colour = np.concatenate([np.zeros((f.shape[0], 1), dtype=np.int64), f], axis=1)
    codes = np.stack([f[:, 0], f[:, 1] + 0.5 * f[:, 2]], axis=1).astype(float)
    a, b = M.mig(f, codes), M.mig(with_colour, codes)
    assert b.factors.tolist() == [1, 2, 3]
    assert b.score == pytest.approx(a.score, abs=1e-15)
    assert b.mutual_info.shape == (2, 4) and np.all(b.mutual_info[:, 0] < 1e-12)


def test_mutual_info_matches_sklearn_and_noise_mig_is_small():
    n, num_bins, sizes = 5000, 20, (3, 5, 8)
    f = uniform_factors(sizes, n, seed=1)
    z = np.random.default_rng(2).normal(size=(n, 6))
    res = M.mig(f, z, num_bins=num_bins)
    # Discretisation is disentanglement_lib's: digitize against the histogram edges without the last one.
    ref_bins = np.stack([np.digitize(c, np.histogram(c, num_bins)[1][:-1]) for c in z.T], axis=1) - 1
    np.testing.assert_array_equal(discretize(z, num_bins), ref_bins)
    ref = np.array([[mutual_info_score(f[:, k], ref_bins[:, d]) for k in range(3)] for d in range(6)])
    np.testing.assert_allclose(res.mutual_info, ref, atol=1e-12)
    # Under independence 2N * I_plugin ~ chi2 with df = (B-1)(C-1): mean df/(2N), sd sqrt(2 df)/(2N). The gap
    # is at most the top MI, so each normalised gap is below (df + 5 sqrt(2 df)) / (2N H) (5 sd, 18 MIs).
    df = (num_bins - 1) * (np.array(sizes) - 1)
    bound = (df + 5 * np.sqrt(2 * df)) / (2 * n * res.entropy)
    assert np.all(res.gaps <= bound), (res.gaps, bound)
    assert res.score < bound.mean()


def test_mig_continuous_factors_need_discretize_flag():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(500, 2))
    with pytest.raises(ValueError, match="discretize_factors"):
        M.mig(v, v)
    # Binned the same way as the codes, a factor copied into a code gives I = H -> its gap is 1.
    res = M.mig(v, v, discretize_factors=True)
    assert res.score == pytest.approx(1.0 - np.mean(np.sort(res.mutual_info, 0)[0] / res.entropy), abs=1e-12)
    np.testing.assert_allclose(np.diag(res.mutual_info), res.entropy, atol=1e-12)


# ---------------------------------------------------------------------------------------------- modularity


def test_modularity_closed_forms():
    f = grid((3, 3, 3), reps=2)
    assert M.modularity(f, f.astype(float)).score == pytest.approx(1.0, abs=1e-12)
    # Code 0 = f0 + 3 f1 determines f0 and f1 (I = ln 3 each), independent of f2: theta = ln 3,
    # delta = (ln 3)^2 / ((ln 3)^2 (K - 1)) = 1/2 -> 0.5; code 1 = f2 -> 1. Mean 0.75.
    mixed = np.stack([f[:, 0] + 3 * f[:, 1], f[:, 2]], axis=1).astype(float)
    res = M.modularity(f, mixed)
    np.testing.assert_allclose(res.per_code, [0.5, 1.0], atol=1e-12)
    assert res.score == pytest.approx(0.75, abs=1e-12)
    # A constant code carries no information (theta = 0) and scores 0, as in disentanglement_lib.
    const = np.stack([f[:, 0], np.ones(len(f))], axis=1).astype(float)
    np.testing.assert_allclose(M.modularity(f, const).per_code, [1.0, 0.0], atol=1e-12)


# ----------------------------------------------------------------------------------------------------- DCI


def test_dci_identity_is_one_and_parallel_matches_sequential():
    # On the grid every tree split on a code j != k would gain exactly 0 (each node is a balanced grid over
    # the other factors), so only code k is ever used: R is diagonal up to float-rounding splits (< 1e-12)
    # and D = C = 1; depth-3 boosting fits <= 5 classes from their own code exactly: accuracy 1.
    f = grid((2, 3, 4, 5), reps=4)
    test = grid((2, 3, 4, 5))
    res = M.dci(f, f.astype(float), test, test.astype(float), n_jobs=2)
    off = res.importance - np.diag(np.diag(res.importance))
    assert np.abs(off).max() < 1e-12
    assert res.disentanglement == pytest.approx(1.0, abs=1e-9)
    assert res.completeness == pytest.approx(1.0, abs=1e-9)
    assert res.informativeness == 1.0 and res.informativeness_train == 1.0
    seq = M.dci(f, f.astype(float), test, test.astype(float), n_jobs=1)
    np.testing.assert_array_equal(seq.importance, res.importance)  # same fitted models, bit for bit
    assert (seq.disentanglement, seq.completeness) == (res.disentanglement, res.completeness)


def test_dci_from_importance_duplicated_codes():
    # Five factors, each copied into two of ten codes with equal importance: every factor spreads evenly over
    # 2 codes -> completeness = 1 - ln 2 / ln 10; every code serves one factor -> disentanglement 1.
    r = np.zeros((10, 5))
    r[np.arange(10), np.arange(10) // 2] = 1.0
    d, c = M.dci_from_importance(r)
    assert d == pytest.approx(1.0, abs=1e-12)
    assert c == pytest.approx(1 - math.log(2) / math.log(10), abs=1e-12)
    # A uniform R has maximal entropy everywhere: D = C = 0.
    assert M.dci_from_importance(np.ones((4, 3))) == pytest.approx((0.0, 0.0), abs=1e-12)


def test_dci_duplicated_codes_fitted():
    # With two identical copies the trees pick a copy at random per split, so the fitted split is not exactly
    # even: completeness lies in [1 - ln2/ln10, 1] and importance stays on each factor's two copies.
    f = grid((2, 2, 2, 2, 2), reps=8)
    codes = np.repeat(f, 2, axis=1).astype(float)
    res = M.dci(f, codes, grid((2,) * 5), np.repeat(grid((2,) * 5), 2, axis=1).astype(float))
    mask = np.repeat(np.eye(5), 2, axis=0).astype(bool)
    assert np.abs(res.importance[~mask]).max() < 1e-12
    assert res.disentanglement == pytest.approx(1.0, abs=1e-9)
    assert 1 - math.log(2) / math.log(10) - 1e-9 <= res.completeness <= 1.0


def test_dci_noise_informativeness_is_chance():
    # Codes independent of the factors: a classifier's test predictions are independent of the test labels,
    # so each test point is right with probability 1/C for uniform labels; the mean accuracy over factors has
    # sd sqrt(sum_k p_k (1 - p_k) / n) / K.
    sizes, n_test = (2, 4), 2000
    f_tr, f_te = uniform_factors(sizes, 400, 3), uniform_factors(sizes, n_test, 4)
    rng = np.random.default_rng(5)
    res = M.dci(f_tr, rng.normal(size=(400, 3)), f_te, rng.normal(size=(n_test, 3)))
    p = 1 / np.array(sizes)
    sd = np.sqrt(np.sum(p * (1 - p)) / n_test) / len(sizes)
    assert abs(res.informativeness - p.mean()) < 4 * sd
    assert res.informativeness_train > res.informativeness  # boosting memorises noise


# ----------------------------------------------------------------------------------------------------- SAP


def test_sap_identity_exact_on_grid():
    # Binary factors: a 1-D LinearSVC on the factor's own code separates the two values (accuracy 1); on a
    # balanced grid any classifier that sees only another code is right exactly 1/C of the time -> SAP = 1/2.
    f = grid((2, 2, 2), reps=20)
    res = M.sap(f, f.astype(float), grid((2, 2, 2)), grid((2, 2, 2)).astype(float))
    np.testing.assert_allclose(res.matrix, 0.5 + 0.5 * np.eye(3), atol=1e-12)
    assert res.score == pytest.approx(0.5, abs=1e-12)
    # Larger factors: the off-diagonal entries are still exactly 1/C_k.
    sizes = (3, 4, 5)
    g = grid(sizes)
    res = M.sap(np.tile(g, (5, 1)), np.tile(g, (5, 1)).astype(float), g, g.astype(float))
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(res.matrix[off], np.broadcast_to(1 / np.array(sizes), (3, 3))[off], atol=1e-12)


def test_sap_noise_is_small():
    # Each S_dk is a test accuracy with mean 1/C_k and sd s_k = sqrt(p(1-p)/n); the gap of the top two is below
    # the range, < 8 s_k when every entry lies within 4 sd.
    sizes, n_test = (2, 3), 3000
    rng = np.random.default_rng(6)
    f_tr, f_te = uniform_factors(sizes, 1000, 7), uniform_factors(sizes, n_test, 8)
    res = M.sap(f_tr, rng.normal(size=(1000, 4)), f_te, rng.normal(size=(n_test, 4)))
    p = 1 / np.array(sizes)
    assert np.all(res.gaps < 8 * np.sqrt(p * (1 - p) / n_test))


# ------------------------------------------------------------------------------------------- explicitness


def test_explicitness_identity_and_noise():
    f = grid((2, 2, 2), reps=10)
    res = M.explicitness(f, f.astype(float), grid((2, 2, 2)), grid((2, 2, 2)).astype(float))
    assert res.score == 1.0 and res.score_train == 1.0
    # Noise: each one-vs-rest AUC is a Mann-Whitney statistic with mean 1/2 and variance
    # (n1 + n0 + 1) / (12 n1 n0); averages of AUCs have at most the largest sd.
    n_test = 3000
    f_tr, f_te = uniform_factors((2, 3), 1000, 9), uniform_factors((2, 3), n_test, 10)
    rng = np.random.default_rng(11)
    res = M.explicitness(f_tr, rng.normal(size=(1000, 3)), f_te, rng.normal(size=(n_test, 3)))
    n1 = n_test / 3
    sd = math.sqrt((n_test + 1) / (12 * n1 * (n_test - n1)))
    assert abs(res.score - 0.5) < 4 * sd


# ------------------------------------------------------------------------------------------------- Gaussian TC


def exact_covariance_samples(cov, n, seed):
    """Samples whose sample covariance is exactly ``cov`` (whiten random draws, then colour them)."""
    x = np.random.default_rng(seed).normal(size=(n, cov.shape[0]))
    x -= x.mean(axis=0)
    white = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    return white @ np.linalg.cholesky(cov).T


def test_gaussian_total_correlation_closed_form():
    cov = np.array([[2.0, 0.6, 0.3], [0.6, 1.0, -0.4], [0.3, -0.4, 0.5]])
    expected = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    z = exact_covariance_samples(cov, 500, 0)
    assert M.gaussian_total_correlation(z) == pytest.approx(expected, abs=1e-10)
    assert M.gaussian_total_correlation(torch.from_numpy(z)) == pytest.approx(expected, abs=1e-10)
    rho = 0.8  # two dims: TC = -0.5 log(1 - rho^2)
    z2 = exact_covariance_samples(np.array([[1.0, rho], [rho, 1.0]]), 300, 1)
    assert M.gaussian_total_correlation(z2) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=1e-10)
    assert M.gaussian_total_correlation(exact_covariance_samples(np.diag([1.0, 4.0, 9.0]), 300, 2)) < 1e-12
    # Independent draws: 2 n TC ~ chi2 with D(D-1)/2 df (Bartlett), so TC < (df + 5 sqrt(2 df)) / (2 n).
    n, d = 20000, 5
    df = d * (d - 1) / 2
    tc = M.gaussian_total_correlation(np.random.default_rng(3).normal(size=(n, d)))
    assert 0 <= tc < (df + 5 * math.sqrt(2 * df)) / (2 * n)


# ------------------------------------------------------------------------------------- FactorVAE / BetaVAE


def test_factor_vae_score_identity_and_dropped_factor():
    ds = Toy((1, 4, 5, 6))  # factor 0 is constant: never fixed, and its code dimension is inactive
    res = M.factor_vae_score(ds, lambda x: x, num_train=300, num_eval=300, num_variance_estimate=1000, progress=False)
    # Fixing factor k makes code k exactly constant in the batch, every other dimension varies: all votes right.
    assert res.score == 1.0 and res.train_accuracy == 1.0
    assert res.num_active_dims == 3 and res.classifier.tolist() == [-1, 1, 2, 3]
    # Dropping factor 3 from the code: votes for k = 1, 2 are right, votes for k = 3 always wrong, so each eval
    # vote is right with probability 2/3 exactly; sd sqrt(2/9 / n).
    n = 1000
    res = M.factor_vae_score(ds, lambda x: x[:, 1:3], num_train=300, num_eval=n, num_variance_estimate=1000,
                             progress=False)  # fmt: skip
    assert res.classifier.tolist() == [1, 2]
    assert abs(res.score - 2 / 3) < 4 * math.sqrt(2 / 9 / n)
    again = M.factor_vae_score(ds, lambda x: x[:, 1:3], num_train=300, num_eval=n, num_variance_estimate=1000,
                               progress=False, chunk_size=1000)  # fmt: skip
    np.testing.assert_array_equal(again.votes_eval, res.votes_eval)  # seeded, independent of the chunking


def test_factor_vae_score_no_active_dims_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="probrep.metrics"):
        res = M.factor_vae_score(Toy((3, 4)), lambda x: np.zeros((len(x), 2)), num_train=10, num_eval=10,
                                 num_variance_estimate=100, progress=False)  # fmt: skip
    assert res.score == 0.0 and res.num_active_dims == 0
    assert "no active code dimension" in caplog.text


def test_beta_vae_score_identity_and_merged_factors():
    res = M.beta_vae_score(Toy((1, 4, 5, 6)), lambda x: x, num_train=300, num_eval=300, progress=False)
    assert res.score == 1.0 and res.train_accuracy == 1.0
    # Code 0 = f0 + f1 with equal sizes: fixing f0 or f1 gives identically distributed features, so together
    # those points are right with probability 1/2; fixing f2 zeroes feature 1 (always right). Each eval point is
    # right with probability 1/3 + 2/3 * 1/2 = 2/3; sd sqrt(2/9 / n).
    n = 1000
    res = M.beta_vae_score(Toy((5, 5, 3)), lambda x: np.stack([x[:, 0] + x[:, 1], x[:, 2]], axis=1),
                           num_train=1000, num_eval=n, progress=False)  # fmt: skip
    assert abs(res.score - 2 / 3) < 4 * math.sqrt(2 / 9 / n)


class TensorOnlyEncoder(torch.nn.Module):
    """Accepts only torch tensors, as a VAE does."""

    def forward(self, x):
        assert torch.is_tensor(x)
        return x.reshape(x.shape[0], -1)


def test_torch_module_encoder_gets_tensors():
    res = M.factor_vae_score(Toy((3, 4)), TensorOnlyEncoder(), num_train=50, num_eval=50,
                             num_variance_estimate=200, progress=False)  # fmt: skip
    assert res.score == 1.0


def test_factor_vae_score_dsprites_centre_of_mass_encoder():
    # Centre of mass recovers posX / posY up to a sub-pixel offset that depends on shape, scale and orientation;
    # fixing a position leaves its coordinate nearly constant, so the position votes land on those dimensions.
    from probrep.data import DSprites

    cols = np.arange(64, dtype=np.float32)

    def encode(images):
        img = images[:, 0]
        mass = img.sum(axis=(1, 2))
        cx = (img.sum(axis=1) * cols).sum(axis=1) / mass
        cy = (img.sum(axis=2) * cols).sum(axis=1) / mass
        return np.stack([cx, cy, mass], axis=1)

    res = M.factor_vae_score(DSprites(), encode, batch_size=32, num_train=100, num_eval=100,
                             num_variance_estimate=1000, progress=False)  # fmt: skip
    assert res.classifier[:2].tolist() == [4, 5]  # posX, posY
    assert res.votes_train[4, 0] == res.votes_train[4].sum() and res.votes_train[5, 1] == res.votes_train[5].sum()
    assert res.votes_train[0].sum() == 0  # colour has one value and is never fixed


# ---------------------------------------------------------------------------------------------- inputs


def test_torch_inputs_match_numpy():
    f = grid((3, 4), reps=3)
    z = np.random.default_rng(0).normal(size=(f.shape[0], 3)) + f[:, :1]
    ft, zt = torch.from_numpy(f), torch.from_numpy(z).float().requires_grad_(False)
    assert M.mig(ft, zt).score == pytest.approx(M.mig(f, z.astype(np.float32)).score, abs=1e-12)
    assert M.modularity(ft, zt).score == pytest.approx(M.modularity(f, z.astype(np.float32)).score, abs=1e-12)
    assert M.sap(ft, zt, seed=1).score == M.sap(f, z.astype(np.float32), seed=1).score


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda f, z: M.mig(f[:, 0], z), ValueError, r"factors must have shape \[N, K factors\]"),
        (lambda f, z: M.mig(f, z[:, 0]), ValueError, r"codes must have shape \[N, D"),
        (lambda f, z: M.mig(f, z[:-1]), ValueError, "same number of rows"),
        (lambda f, z: M.mig(f, np.where(z > 1, np.nan, z)), ValueError, "codes contains NaN"),
        (lambda f, z: M.mig(f, z, num_bins=1), ValueError, "num_bins"),
        (lambda f, z: M.mig(np.zeros_like(f), z), ValueError, "every column of factors is constant"),
        (lambda f, z: M.mig("abc", z), TypeError, "factors"),
        (lambda f, z: M.mig(f, np.array([["a"]] * len(z))), TypeError, "codes must be a numeric array"),
        (lambda f, z: M.dci(f + 0.5, z), ValueError, "integer factor classes"),
        (lambda f, z: M.dci(f, z, factors_test=f), ValueError, "codes_test is missing"),
        (lambda f, z: M.sap(f, z, f, z[:, :1]), ValueError, "codes_test has 1 code dimensions"),
        (lambda f, z: M.sap(f, z, test_fraction=1.5), ValueError, "test_fraction"),
        (lambda f, z: M.gaussian_total_correlation(np.ones_like(z)), ValueError, "constant dimensions"),
        (lambda f, z: M.dci_from_importance(np.full((2, 2), np.nan)), ValueError, "importance"),
    ],
)
def test_bad_array_inputs(call, error, match):
    f = grid((3, 4), reps=2)
    z = np.random.default_rng(0).normal(size=(f.shape[0], 2))
    with pytest.raises(error, match=match):
        call(f, z)


def test_bad_sampled_inputs():
    class NoRender:
        factor_sizes = (2, 3)

        def sample_factors(self, n, rng):
            return np.zeros((n, 2), dtype=np.int64)

    with pytest.raises(TypeError, match="lacks render"):
        M.factor_vae_score(NoRender(), lambda x: x, progress=False)
    with pytest.raises(ValueError, match="encode must return codes of shape"):
        M.beta_vae_score(Toy((3, 4)), lambda x: x[:2], num_train=5, num_eval=5, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        M.factor_vae_score(Toy((3, 4)), lambda x: x, batch_size=1, progress=False)
    with pytest.raises(ValueError, match="no factor with more than one value"):
        M.beta_vae_score(Toy((1, 1)), lambda x: x, progress=False)


def test_a_constant_code_dimension_carries_no_information_and_is_not_modular():
    # disentanglement_lib gives 0 for a constant code; rounding noise in its mutual information must not count
    rng = np.random.default_rng(2)
    n = 2520  # a size and factor draw whose plug-in sum for the constant column rounds to 6e-17, not 0
    rng.integers(50, 3000), rng.integers(2, 40)  # the draws that picked this case in a search
    factors = rng.integers(0, 11, size=(n, 2))
    codes = np.column_stack([factors[:, 0] + 0.1 * rng.normal(size=n), np.full(n, 0.3)])
    res = M.modularity(factors, codes)
    assert res.per_code[1] == 0.0 and np.all(res.mutual_info[1] == 0.0)
    assert res.per_code[0] > 0.9
    assert np.all(M.discrete_mutual_info(factors, codes)[1] == 0.0)
