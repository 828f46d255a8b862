"""Downstream utility (issue 18): accuracy with few labels and sample efficiency, unfairness, and UDR, against
exact answers (identity codes, hand-computed total variations, UDR's formula on small matrices) and known
distributions (pure noise: chance accuracy within binomial error)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from probrep import metrics as M

pytest.importorskip("lightgbm")


def grid(sizes, reps=1):
    rows = np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)
    return np.repeat(rows, reps, axis=0)


# ---- downstream -------------------------------------------------------------------------------------------------


def test_identity_codes_are_learned_from_a_hundred_labels():
    rng = np.random.default_rng(0)
    f = np.stack([rng.integers(0, s, 1200) for s in (2, 4, 6)], 1)
    test = grid((2, 4, 6))
    res = M.downstream(f, f.astype(float), test, test.astype(float), sizes=(10, 100, 1000), models="gbt", n_jobs=1)
    assert res.sizes == (10, 100, 1000) and res.skipped == ()
    # thresholds between consecutive integers separate every class once each class has been seen
    np.testing.assert_array_equal(res.accuracy[0, 1:], 1.0)
    assert res.efficiency["gbt"] == 1.0
    assert res.accuracy.shape == (1, 3, 3)


def test_logistic_regression_reads_identity_codes_with_few_labels():
    f = np.repeat(grid((2, 3)), 30, axis=0)[np.random.default_rng(1).permutation(180)]
    test = grid((2, 3))
    res = M.downstream(f, f.astype(float), test, test.astype(float), sizes=(100,), models="logistic")
    np.testing.assert_array_equal(res.accuracy, 1.0)
    assert res.efficiency == {"logistic": None}  # nothing larger than 100 ran


@pytest.mark.parametrize("model", ["gbt", "logistic"])
def test_pure_noise_codes_predict_at_chance(model):
    # predictions that do not depend on the test labels are right with probability 1/C on iid uniform labels,
    # whatever the classifier learned: the count of hits is Binomial(n_test, 1/C)
    rng = np.random.default_rng(2)
    sizes = (2, 5)
    f = np.stack([rng.integers(0, s, 2600) for s in sizes], 1)
    z = rng.normal(size=(2600, 3))
    res = M.downstream(f[:600], z[:600], f[600:], z[600:], sizes=(100, 500), models=model, n_jobs=1)
    for k, c in enumerate(sizes):
        p = 1 / c
        sd = np.sqrt(p * (1 - p) / 2000)
        assert np.all(np.abs(res.accuracy[0, :, k] - p) < 4 * sd), (res.accuracy[0, :, k], p)


def test_efficiency_is_the_ratio_of_mean_accuracies_and_big_sizes_are_skipped(caplog):
    rng = np.random.default_rng(3)
    f = np.stack([rng.integers(0, 4, 900), rng.integers(0, 3, 900)], 1)
    z = f + rng.normal(scale=0.6, size=f.shape)  # noisy codes: accuracy grows with the number of labels
    with caplog.at_level("INFO", logger="probrep.metrics"):
        res = M.downstream(f, z, sizes=(10, 100, 500, 10_000), models="gbt", n_jobs=1)
    assert res.sizes == (10, 100, 500) and res.skipped == (10_000,)
    assert "skipped" in caplog.text
    mean = res.accuracy[0].mean(axis=1)
    assert res.efficiency["gbt"] == pytest.approx(mean[1] / mean[2], rel=1e-12)
    assert 0.3 < res.efficiency["gbt"] < 1.05
    summary = res.summary()
    assert summary["gbt"]["accuracy"]["500"] == pytest.approx(mean[2])
    assert summary["skipped"] == [10_000]


def test_downstream_says_what_is_wrong():
    f = grid((2, 3), reps=5)
    z = f.astype(float)
    with pytest.raises(ValueError, match="unknown model 'svm'"):
        M.downstream(f, z, models=("svm",))
    with pytest.raises(ValueError, match="larger than the"):
        M.downstream(f, z, sizes=(1000,))
    with pytest.raises(ValueError, match="same number of rows"):
        M.downstream(f, z[:-1])
    with pytest.raises(TypeError, match="sizes entries must be an integer"):
        M.downstream(f, z, sizes=(10.5,))
    with pytest.raises(ValueError, match="integer factor classes"):
        M.downstream(f + 0.5, z)


# ---- fairness ---------------------------------------------------------------------------------------------------


def test_unfairness_by_hand():
    # groups 0 and 1 get disjoint predictions: P(p|c) are point masses, P(p) = (1/2, 1/2), TV = 1/2 each
    assert M.unfairness([0, 0, 1, 1], [0, 0, 1, 1]) == (0.5, 0.5)
    # predictions independent of the group: parity
    assert M.unfairness([0, 1, 0, 1], [0, 0, 1, 1]) == (0.0, 0.0)
    # unequal groups: P(p) = (3, 2, 1)/6; group 0 (4 rows) (3, 1, 0)/4: TV = (1/4 + 1/12 + 1/6)/2 = 1/4;
    # group 1 (2 rows) (0, 1, 1)/2: TV = (1/2 + 1/6 + 1/3)/2 = 1/2; mean = 4/6 * 1/4 + 2/6 * 1/2 = 1/3
    mean, worst = M.unfairness([0, 0, 0, 1, 1, 2], [0, 0, 0, 0, 1, 1])
    assert mean == pytest.approx(1 / 3, abs=1e-15) and worst == pytest.approx(0.5, abs=1e-15)
    with pytest.raises(ValueError, match="1-D"):
        M.unfairness([[0, 1]], [0, 1])
    with pytest.raises(ValueError, match="same number of rows"):
        M.unfairness([0, 1, 1], [0, 1])


def test_fairness_of_a_perfect_classifier_on_a_grid_is_exactly_parity():
    # the classifier predicts each target exactly, and on a full grid every target value occurs equally often
    # with every value of another factor: P(pred | v_j = c) = P(pred), unfairness 0
    f = grid((2, 3, 4), reps=3)
    test = grid((2, 3, 4))
    res = M.fairness(f, f.astype(float), test, test.astype(float), n_jobs=1)
    np.testing.assert_array_equal(res.accuracy, 1.0)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(res.mean[off], 0.0, atol=1e-15)
    assert np.isnan(np.diag(res.mean)).all()
    assert res.score == pytest.approx(0.0, abs=1e-15)


def test_fairness_when_the_target_is_a_function_of_the_sensitive_factor():
    # factors (t, a) with t = a // 2 and a uniform on 0..3; the code is a. Predicting t from a is exact, so given
    # a = c the prediction is the point mass at c // 2 against P(t) = (1/2, 1/2): TV = 1/2 for every c.
    # Predicting a given t = 0 is uniform on {0, 1} against uniform on {0..3}: TV = (2 * 1/4 + 2 * 1/4) / 2 = 1/2
    a = np.tile(np.arange(4), 20)
    f = np.stack([a // 2, a], 1)
    res = M.fairness(f, a[:, None].astype(float), f, a[:, None].astype(float), n_jobs=1)
    np.testing.assert_allclose(res.mean, [[np.nan, 0.5], [0.5, np.nan]], atol=1e-12)
    np.testing.assert_allclose(res.max, [[np.nan, 0.5], [0.5, np.nan]], atol=1e-12)
    assert res.score == pytest.approx(0.5)
    only = M.fairness(f, a[:, None].astype(float), f, a[:, None].astype(float), target=0, sensitive=[1], n_jobs=1)
    assert only.score == pytest.approx(0.5) and np.isnan(only.accuracy[1])
    with pytest.raises(ValueError, match="other than the target"):
        M.fairness(f, a[:, None].astype(float), target=0, sensitive=0)


# ---- UDR --------------------------------------------------------------------------------------------------------


def test_udr_pair_formula_by_hand():
    assert M.udr_pair(np.eye(3)) == 1.0
    # two latents tied to two: each row and column of the 2 x 2 block scores 1/2, the third 1: (4 * 1/2 + 2) / 6
    assert M.udr_pair([[1, 1, 0], [1, 1, 0], [0, 0, 1]]) == pytest.approx(2 / 3)
    assert M.udr_pair(np.ones((3, 3))) == pytest.approx(1 / 3)
    assert M.udr_pair(np.zeros((3, 3))) == 0.0
    # the uninformative third latent of model b is dropped; in the 2 x 2 block that is left, max^2 / sum of the
    # rows (1, 0) -> 1 and (0.5, 0.5) -> 0.25, of the columns (1, 0.5) -> 2/3 and (0, 0.5) -> 0.5; d_a + d_b = 4
    r = [[1, 0, 9], [0.5, 0.5, 9]]
    assert M.udr_pair(r, informative_b=[True, True, False]) == pytest.approx((1.25 + 2 / 3 + 0.5) / 4, abs=1e-15)


def _factors(k=4, values=6):
    """Continuous-valued factors on a full grid, centred: different factors are exactly uncorrelated (also in
    rank), so that a one-to-one match between two models has exactly zero similarity elsewhere."""
    return grid((values,) * k) - (values - 1) / 2


def _permuted(v, seed, noise=0.0):
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], v.shape[1])
    return (v * signs)[:, rng.permutation(v.shape[1])] + noise * rng.normal(size=v.shape)


def _rotated_pairs(v, angle):
    """Latents (0, 1) and (2, 3) each rotated by ``angle``: every latent mixes two factors."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return np.hstack([v[:, :2] @ rot.T, v[:, 2:] @ rot.T])


def test_permuted_and_sign_flipped_codes_agree_exactly():
    v = _factors()
    models = [_permuted(v, s) for s in range(3)]
    spearman = M.udr(models, correlation="spearman")
    np.testing.assert_allclose(spearman.scores, 1.0, atol=1e-12)
    # the Lasso shrinks a one-to-one match of standardised latents to 1 - alpha, and max^2 / sum = 1 - alpha
    lasso = M.udr(models, correlation="lasso", alpha=0.1)
    np.testing.assert_allclose(lasso.scores, 0.9, atol=1e-6)


def test_udr_ranks_disentangled_models_above_mixed_ones():
    v = _factors()
    good = [_permuted(v, s, noise=0.02) for s in range(4)]
    mixed = [_permuted(_rotated_pairs(v, np.pi / 9), 10), _permuted(_rotated_pairs(v, np.pi / 4), 11)]
    for correlation in ("spearman", "lasso"):
        res = M.udr(good + mixed, correlation=correlation)
        assert set(res.ranking[:4]) == {0, 1, 2, 3}
        assert list(res.ranking[4:]) == [4, 5], (correlation, res.scores)  # the less mixed one ranks higher
        assert res.scores[:4].min() > 0.85 and res.scores[5] < 0.75


def test_uninformative_latents_are_filtered_by_kl_or_activity():
    v = _factors(k=2, values=30)
    rng = np.random.default_rng(5)
    # two informative latents plus two noise latents that a VAE would mark as collapsed (KL ~ 0)
    models = [np.hstack([_permuted(v, s), rng.normal(size=(len(v), 2))]) for s in range(3)]
    kl = [np.array([2.0, 2.0, 0.0, 0.0])] * 3
    assert np.allclose(M.udr(models, kl=kl, correlation="spearman").scores, 1.0)
    unfiltered = M.udr(models, correlation="spearman")  # noise of variance 1 counts as active
    assert unfiltered.scores.max() < 0.9
    collapsed = [np.hstack([_permuted(v, s), 1e-3 * rng.normal(size=(len(v), 2))]) for s in range(3)]
    res = M.udr(collapsed, correlation="spearman")  # tiny variance: inactive by the activity criterion
    assert [m.tolist() for m in res.informative] == [[True, True, False, False]] * 3
    np.testing.assert_allclose(res.scores, 1.0)
    with pytest.raises(ValueError, match="at least 2 models"):
        M.udr([models[0]])
    with pytest.raises(ValueError, match="same number of rows"):
        M.udr([models[0], models[1][:-1]])
    with pytest.raises(ValueError, match="correlation must be one of"):
        M.udr(models, correlation="pearson")
    with pytest.raises(ValueError, match="kl\\[0\\] has 3 entries"):
        M.udr(models, kl=[np.ones(3)] * 3)


def test_evaluate_reports_downstream_and_fairness(tmp_path):
    from probrep.experiments.evaluate import downstream_plot, evaluate, headline

    def factors_as_codes(images):  # an oracle "encoder": reads the factors back from the SCM's draw order
        return oracle[: len(images)].astype(float)

    from probrep.data import DSprites

    ds = DSprites()
    oracle = ds.sample_scm(ds.scm(), 300, seed=0)[0][:, 1:]
    result = evaluate(factors_as_codes, ["downstream", "fairness"], num_points=300, progress=False, dataset=ds,
                      n_jobs=1)  # fmt: skip
    down = result.scores["downstream"]
    assert down["sizes"] == [10, 100] and down["skipped"] == [1000, 10_000]
    assert down["gbt"]["accuracy"]["100"] > 0.5  # 40 orientation and 32 position classes from 100 labels
    table = headline(result.scores)
    assert "downstream_gbt_efficiency" not in table  # undefined: nothing above 100 labels ran
    assert all(isinstance(v, float) for v in table.values()) and "downstream_logistic_accuracy_100" in table
    # 100 test rows split into up to 40 groups per sensitive factor: the plug-in TV is far from 0 even for a
    # fair classifier (see fairness' docstring), so only its range is checked here
    assert 0 < table["fairness"] < 1
    assert downstream_plot(down, tmp_path / "down.png").exists()
