"""Symmetry-based disentanglement (issue 18): linear equivariance of the codes under each factor's unit step, on
constructed codes whose answer is exact: identity, rotated, circle codes of a cyclic factor (1), codes that ignore
a factor (0), pure noise (about 0)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from probrep import metrics as M

SIZES = (3, 5, 8, 6)


def grid(sizes=SIZES):
    return np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)


def test_identity_codes_are_perfectly_equivariant_and_separated():
    f = grid()
    res = M.symmetry(f, f.astype(float))
    np.testing.assert_array_equal(res.equivariance, 1.0)
    assert res.score == 1.0
    # pairs: every row whose factor k is below its maximum: N (C_k - 1) / C_k
    n = len(f)
    np.testing.assert_array_equal(res.num_pairs, [n * (c - 1) // c for c in SIZES])
    np.testing.assert_allclose(res.moved_dims, 1.0)
    np.testing.assert_allclose(res.axis_alignment, 1.0)
    np.testing.assert_allclose(res.overlap, np.eye(4), atol=1e-15)
    assert res.separation == 1.0
    # the fitted maps: identity plus a unit translation along the factor's own axis
    np.testing.assert_allclose(res.A, np.broadcast_to(np.eye(4), (4, 4, 4)), atol=1e-9)
    np.testing.assert_allclose(res.b, np.eye(4), atol=1e-9)


def test_rotated_codes_stay_equivariant_but_not_axis_aligned():
    f = grid()
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(7, 7)))
    z = np.hstack([f, np.zeros((len(f), 3))]) @ q.T  # embedded in 7 dimensions and rotated
    res = M.symmetry(f, z)
    np.testing.assert_allclose(res.equivariance, 1.0, atol=1e-9)
    # subspaces stay orthogonal under an orthogonal change of basis ...
    np.testing.assert_allclose(res.overlap, np.eye(4), atol=1e-9)
    assert res.separation == pytest.approx(1.0)
    np.testing.assert_allclose(res.moved_dims, 1.0)
    # ... but each step now moves the direction q[:, k], spread over axes: its largest squared component
    np.testing.assert_allclose(res.axis_alignment, (q[:, :4] ** 2).max(axis=0), rtol=1e-9)
    assert res.axis_alignment.max() < 0.9


def test_a_cyclic_factor_on_a_circle_is_a_rotation():
    f = grid()
    angle = 2 * np.pi * f[:, 2] / 8
    z = np.column_stack([f[:, [0, 1, 3]], np.cos(angle), np.sin(angle)])
    res = M.symmetry(f, z, cyclic={2: 8})
    np.testing.assert_allclose(res.equivariance, 1.0, atol=1e-9)
    assert res.num_pairs[2] == len(f)  # every row has a successor, the wrap included
    assert res.moved_dims[2] == pytest.approx(2.0)  # a rotation moves a plane
    c, s = np.cos(2 * np.pi / 8), np.sin(2 * np.pi / 8)
    np.testing.assert_allclose(res.A[2][3:, 3:], [[c, -s], [s, c]], atol=1e-9)
    # the class number as a code is not equivariant at the wrap (7 -> 0 jumps back): below 1 once declared cyclic
    linear = M.symmetry(f, f.astype(float), cyclic=[2])
    assert linear.equivariance[2] < 0.5 and np.all(linear.equivariance[[0, 1, 3]] == 1.0)


def test_a_period_shorter_than_the_classes_identifies_the_last_with_the_first():
    # dSprites' orientation: 40 classes over [0, 2 pi] inclusive, class 39 is class 0's angle; period 39
    f = grid((2, 40))
    angle = 2 * np.pi * f[:, 1] / 39
    z = np.column_stack([f[:, 0], np.cos(angle), np.sin(angle)])
    res = M.symmetry(f, z, which=[1], cyclic={1: 39})
    assert res.equivariance[0] == pytest.approx(1.0, abs=1e-9)
    assert res.num_pairs[0] == 2 * 39  # classes 0..38 are sources; 38 steps to 0


def test_codes_that_ignore_a_factor_score_zero_for_it():
    f = grid()
    res = M.symmetry(f, f[:, [0, 1, 3]].astype(float))
    assert res.equivariance[2] == 0.0 and res.action[2] == 0.0
    assert res.predictability[2] == 1.0  # trivially: the identity map predicts an unmoved code
    np.testing.assert_array_equal(res.equivariance[[0, 1, 3]], 1.0)


def test_pure_noise_scores_near_zero():
    f = grid()
    z = np.random.default_rng(1).normal(size=(len(f), 6))
    res = M.symmetry(f, z)
    # held-out predictions of independent noise explain nothing: R^2 about -(D + 1) / half the pairs <= 0
    assert np.all(res.equivariance <= 0.02)
    assert np.all(np.abs(res.predictability) < 0.1)
    # every step moves every direction alike: displacement moments nearly proportional to the identity
    assert res.separation < 0.05


def test_partial_grids_and_noise_in_between():
    f = grid()
    z = f + 0.05 * np.random.default_rng(2).normal(size=f.shape)
    res = M.symmetry(f, z)
    assert np.all((res.equivariance > 0.9) & (res.equivariance < 1.0))
    keep = np.random.default_rng(3).random(len(f)) < 0.5  # half the rows: pairs only where both ends remain
    part = M.symmetry(f[keep], f[keep].astype(float), seed=4)
    np.testing.assert_allclose(part.equivariance, 1.0)
    assert np.all(part.num_pairs < res.num_pairs)


def test_symmetry_says_what_is_wrong():
    f = grid()
    z = f.astype(float)
    with pytest.raises(ValueError, match="same number of rows"):
        M.symmetry(f, z[:-1])
    with pytest.raises(ValueError, match="factor grid"):
        M.symmetry(np.arange(10)[:, None] * 2, np.ones((10, 2)))  # no two rows one step apart
    with pytest.raises(ValueError, match="out of range"):
        M.symmetry(f, z, which=[7])
    with pytest.raises(ValueError, match="period of cyclic column 2"):
        M.symmetry(f, z, cyclic={2: 1})


def centre_of_mass(images) -> np.ndarray:
    """Column and row centre of mass and area of each image: a position encoder that ignores orientation."""
    x = np.asarray(images)[:, 0]
    mass = x.sum((1, 2))
    cols = (x.sum(1) * np.arange(64)).sum(1) / mass
    rows = (x.sum(2) * np.arange(64)).sum(1) / mass
    return np.stack([cols, rows, mass], 1)


def test_evaluate_reports_symmetry_on_dsprites():
    from probrep.experiments.evaluate import evaluate, headline

    scores = evaluate(centre_of_mass, ["symmetry"], num_points=800, progress=False).scores["symmetry"]
    eq = scores["equivariance"]
    # a position step moves the sprite by a near-constant number of pixels: the centre of mass translates
    assert eq["posX"] > 0.9 and eq["posY"] > 0.9
    # a turn moves the centre of mass of a heart a little and nonlinearly, that of a square or ellipse not at all
    assert eq["orientation"] < 0.5
    assert scores["moved_dims"]["posX"] == pytest.approx(1.0, abs=0.05)
    assert headline({"symmetry": scores})["symmetry"] == pytest.approx(np.mean(list(eq.values())))
