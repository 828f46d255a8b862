"""The sampled scores' fast path (every draw made up front, each distinct factor vector encoded once, the votes'
statistics computed for all votes at once) gives exactly the numbers of the per-vote loop it replaced."""

import numpy as np
import pytest

from probrep import metrics as M
from probrep.data import DSprites


class Grid:
    """A small factor grid (60 points) whose 'image' of a factor vector is the vector plus a fixed pattern:
    the protocols draw each point many times over."""

    factor_sizes = (1, 3, 4, 5)

    def sample_factors(self, n, rng):
        rng = np.random.default_rng(rng)
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1)

    def render(self, classes):
        c = np.asarray(classes, dtype=np.float64)
        return np.concatenate([c, np.sin(c @ np.arange(1.0, 5.0))[:, None]], axis=1)


class CountingEncoder:
    """Codes: factor 1 cleanly, factor 2 mixed with factor 3, a nonlinear nuisance, the pattern; counts images."""

    def __init__(self):
        self.images = 0

    def __call__(self, images):
        x = np.asarray(images)
        self.images += len(x)
        return np.stack([x[:, 1], x[:, 2] + 0.3 * x[:, 3], np.cos(3.0 * x[:, 3]) + 0.1 * x[:, 2], x[:, 4]], axis=1)


def centre_of_mass(images):
    x = np.asarray(images)[:, 0]
    mass = x.sum((1, 2))
    cols = (x.sum(1) * np.arange(64)).sum(1) / mass
    rows = (x.sum(2) * np.arange(64)).sum(1) / mass
    return np.stack([cols, rows, mass, cols * rows / 64], 1)


def loop_factor_vae(dataset, encode, batch, n_train, n_eval, n_var, seed, threshold=0.05):
    """The definition, one vote at a time, drawing in the protocol's order (the code before the fast path)."""
    rng = np.random.default_rng(seed)
    sizes = np.asarray(dataset.factor_sizes)
    varying = np.flatnonzero(sizes > 1)
    global_var = encode(dataset.render(dataset.sample_factors(n_var, rng))).var(axis=0, ddof=1)
    active = np.flatnonzero((np.sqrt(global_var) >= threshold) & (global_var > 0))
    votes = []
    for n in (n_train, n_eval):
        ks = rng.choice(varying, size=n)
        groups = dataset.sample_factors(n * batch, rng).reshape(n, batch, -1)
        v = np.zeros((sizes.size, global_var.size), dtype=np.int64)
        for i in range(n):
            groups[i, :, ks[i]] = groups[i, 0, ks[i]]
            local = encode(dataset.render(groups[i])).var(axis=0, ddof=1)
            v[ks[i], active[np.argmin(local[active] / global_var[active])]] += 1
        votes.append(v)
    return global_var, votes


def loop_beta_vae_features(dataset, encode, batch, n, seed):
    """Features and labels of the BetaVAE protocol's first ``n`` training points, one point at a time."""
    rng = np.random.default_rng(seed)
    varying = np.flatnonzero(np.asarray(dataset.factor_sizes) > 1)
    ks = rng.choice(varying, size=n)
    first = dataset.sample_factors(n * batch, rng).reshape(n, batch, -1)
    second = dataset.sample_factors(n * batch, rng).reshape(n, batch, -1)
    feats = []
    for i in range(n):
        second[i, :, ks[i]] = first[i, :, ks[i]]
        feats.append(np.abs(encode(dataset.render(first[i])) - encode(dataset.render(second[i]))).mean(axis=0))
    return np.array(feats), ks


@pytest.mark.parametrize("cache", ["auto", None])
def test_factor_vae_votes_equal_the_per_vote_loop(cache):
    ds = Grid()
    kw = {"batch_size": 8, "num_train": 300, "num_eval": 200, "seed": 3, "progress": False, "chunk_size": 500}
    res = M.factor_vae_score(ds, CountingEncoder(), num_variance_estimate=400, cache=cache, **kw)
    global_var, (v_train, v_eval) = loop_factor_vae(ds, CountingEncoder(), 8, 300, 200, 400, seed=3)
    np.testing.assert_array_equal(res.global_variance, global_var)
    np.testing.assert_array_equal(res.votes_train, v_train)
    np.testing.assert_array_equal(res.votes_eval, v_eval)
    # the numbers the per-vote code gave for this seed before the fast path existed
    assert v_train.tolist() == [[0, 0, 0, 0], [110, 0, 0, 0], [0, 100, 2, 0], [0, 0, 88, 0]]
    assert res.score == 0.995 and res.train_accuracy == pytest.approx(298 / 300, abs=0)


def test_beta_vae_features_equal_the_per_point_loop(monkeypatch):
    from probrep.metrics import sampled

    ds, seen = Grid(), {}
    original = sampled._beta_features

    def keep(lookup, first, second):
        out = original(lookup, first, second)
        seen.setdefault("train", out)
        return out

    monkeypatch.setattr(sampled, "_beta_features", keep)
    res = M.beta_vae_score(ds, CountingEncoder(), batch_size=8, num_train=300, num_eval=200, seed=3, progress=False)
    feats, _ = loop_beta_vae_features(ds, CountingEncoder(), 8, 300, seed=3)
    np.testing.assert_array_equal(seen["train"], feats)
    assert (res.score, res.train_accuracy) == (0.995, pytest.approx(298 / 300, abs=0))


def test_one_cache_shared_by_both_scores_encodes_each_grid_point_once_and_changes_nothing():
    ds, enc = Grid(), CountingEncoder()
    cache = M.CodeCache()
    kw = {"batch_size": 8, "num_train": 300, "num_eval": 200, "seed": 3, "progress": False}
    fv = M.factor_vae_score(ds, enc, num_variance_estimate=400, cache=cache, **kw)
    bv = M.beta_vae_score(ds, enc, cache=cache, **kw)
    # 400 + 500 * 8 + 2 * 500 * 8 = 12,400 draws of a 60-point grid: each point encoded once
    assert enc.images == cache.encoded == len(cache) == 60
    plain = CountingEncoder()
    fv0 = M.factor_vae_score(ds, plain, num_variance_estimate=400, cache=None, **kw)
    bv0 = M.beta_vae_score(ds, plain, cache=None, **kw)
    assert plain.images == 12_400
    np.testing.assert_array_equal(fv.votes_eval, fv0.votes_eval)
    assert (fv.score, bv.score, bv.train_accuracy) == (fv0.score, bv0.score, bv0.train_accuracy)
    with pytest.raises(ValueError, match="another encode/dataset"):
        M.beta_vae_score(ds, CountingEncoder(), cache=cache, **kw)
    with pytest.raises(TypeError, match="cache must be"):
        M.beta_vae_score(ds, enc, cache={}, **kw)


def test_dsprites_numbers_are_those_of_the_per_vote_code():
    """Constructed codes of real dSprites images, at small sizes: the scores and votes the per-vote code gave
    (recorded from it for this seed) and the loop above, with and without a shared cache."""
    ds, cache = DSprites(), M.CodeCache()
    kw = {"batch_size": 16, "num_train": 200, "num_eval": 100, "seed": 1, "progress": False, "chunk_size": 1000}
    fv = M.factor_vae_score(ds, centre_of_mass, num_variance_estimate=500, cache=cache, **kw)
    assert fv.votes_train.tolist() == [[0, 0, 0, 0], [11, 1, 24, 9], [0, 1, 34, 3], [21, 8, 8, 13], [33, 0, 0, 0],
                                       [0, 34, 0, 0]]  # fmt: skip
    assert fv.votes_eval.tolist() == [[0, 0, 0, 0], [5, 2, 11, 11], [0, 0, 17, 1], [2, 3, 5, 4], [21, 0, 0, 0],
                                      [0, 18, 0, 0]]  # fmt: skip
    assert (fv.score, fv.train_accuracy) == (0.6, 0.57)
    # by hand from the votes: dims 0-3 go to posX, posY, scale, orientation (the train votes' column maxima), so
    # shape finds no dimension (0 of 29), scale 17 of 18, orientation 4 of 14, posX 21 of 21, posY 18 of 18
    np.testing.assert_allclose(fv.factor_accuracy, [np.nan, 0.0, 17 / 18, 4 / 14, 1.0, 1.0])
    weights = fv.votes_eval.sum(axis=1) / fv.votes_eval.sum()
    assert weights @ np.nan_to_num(fv.factor_accuracy) == pytest.approx(fv.score)
    _, (v_train, _) = loop_factor_vae(ds, centre_of_mass, 16, 200, 100, 500, seed=1)
    np.testing.assert_array_equal(fv.votes_train, v_train)
    bv = M.beta_vae_score(ds, centre_of_mass, cache=cache, **kw)
    assert (bv.score, bv.train_accuracy) == (0.72, 0.845)
