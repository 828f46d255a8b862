"""The JAX objectives agree with the torch ones and with the same closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from probrep.inference import score_matching as sm
from probrep.inference.score_matching import objectives_jax as smj


def _weights(d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(d, 16)) / 2, rng.normal(size=16) / 3, rng.normal(size=(16, d)) / 4


def test_exact_agrees_with_torch_on_the_same_network():
    w1, b1, w2 = _weights(4)
    x = np.random.default_rng(1).normal(size=(20, 4))
    jax_score = lambda z: -z + jnp.tanh(z @ w1 + b1) @ w2  # noqa: E731
    tw1, tb1, tw2 = (torch.tensor(a) for a in (w1, b1, w2))
    torch_score = lambda z: -z + torch.tanh(z @ tw1 + tb1) @ tw2  # noqa: E731
    ours = np.asarray(smj.exact(jax_score, x, reduction="none"))
    theirs = sm.exact(torch_score, torch.tensor(x), reduction="none").detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-5)  # JAX computes in float32 by default


@pytest.mark.parametrize("variance_reduction", [False, True])
def test_sliced_averages_to_exact(variance_reduction):
    w1, b1, w2 = _weights(3, seed=2)
    score = lambda z: -z + jnp.tanh(z @ w1 + b1) @ w2  # noqa: E731
    x = jnp.asarray(np.random.default_rng(3).normal(size=(16, 3)))
    exact = float(smj.exact(score, x))
    draws = np.array([float(smj.sliced(score, x, jax.random.PRNGKey(i), variance_reduction=variance_reduction))
                      for i in range(300)])  # fmt: skip
    assert abs(draws.mean() - exact) < 3 * draws.std() / math.sqrt(len(draws))


def test_denoising_linear_score_value():
    x = jnp.asarray(np.random.default_rng(4).normal(size=(200_000, 1)), dtype=jnp.float32)
    values = np.asarray(smj.denoising(lambda z: -0.8 * z, x, 0.5, jax.random.PRNGKey(0), reduction="none"))
    assert abs(values.mean() - 1.6) < 3 * values.std() / math.sqrt(len(values))


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        smj.exact(lambda z: z, jnp.zeros(3))
    with pytest.raises(ValueError, match="projection"):
        smj.sliced(lambda z: z, jnp.zeros((2, 2)), jax.random.PRNGKey(0), projection="x")
