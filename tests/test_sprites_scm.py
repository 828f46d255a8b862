"""The dSprites data-generating SCM: marginals, confounding strength, interventional test sets."""

import math

import numpy as np
import pytest

from probrep.data import DSprites

N = 20_000


def test_default_factors_are_independent_and_uniform():
    ds = DSprites()
    classes, images = ds.sample_scm(ds.scm(), N, seed=0)
    assert images.shape == (N, 1, 64, 64) and classes.shape == (N, 6)
    for j, size in enumerate(ds.factor_sizes):
        counts = np.bincount(classes[:, j], minlength=size)
        assert len(counts) == size
        # Pearson chi-square with size-1 dof: mean size-1, sd sqrt(2(size-1)); allow 5 sd
        chi2 = ((counts - N / size) ** 2 / (N / size)).sum()
        assert chi2 < (size - 1) + 5 * math.sqrt(2 * max(size - 1, 1)), ds.factor_names[j]
    corr = np.corrcoef(classes[:, 1:].T)
    assert np.abs(corr[np.triu_indices(5, 1)]).max() < 5 / math.sqrt(N)
    np.testing.assert_array_equal(images, ds.render(classes))


@pytest.mark.parametrize("c", [0.0, 0.5, 0.9])
def test_confounding_ties_scale_to_shape_with_the_stated_probability(c):
    ds = DSprites()
    classes, _ = ds.sample_scm(ds.scm(confounding=c), N, seed=1)
    tied = (classes[:, 2] // 2 == classes[:, 1]).mean()
    expected = c + (1 - c) * 2 / 6  # confounded draws always match; uniform ones with probability 2/6
    assert abs(tied - expected) < 5 * math.sqrt(expected * (1 - expected) / N)


def test_interventional_test_sets():
    ds = DSprites()
    scm = ds.scm(confounding=0.9).do({"shape": 2, "posX": "min(posX + 8, 31)"})
    classes, _ = ds.sample_scm(scm, 5000, seed=2)
    assert (classes[:, 1] == 2).all()
    assert classes[:, 4].min() == 8 and classes[:, 4].max() == 31
    with pytest.raises(ValueError, match="factor 'posX' must hold integer classes"):
        ds.sample_scm(ds.scm().do({"posX": "posX + 8"}), 2000, seed=0)
    with pytest.raises(ValueError, match="confounding"):
        ds.scm(confounding=1.5)
