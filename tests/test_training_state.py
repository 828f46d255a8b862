"""No hidden global state: training leaves the caller's random generators and Pyro param store as they were
(the fitted parameters join the store), and the seed alone decides a run."""

import random

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from probrep.divergences import estimate_divergence, train_fgan
from probrep.inference import svi
from probrep.inference.score_matching import fit_score_model
from probrep.models import VAE
from probrep.models.ebm import MLPEnergy


def _global_state():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _assert_same(before, after):
    assert before[0] == after[0], "python's random state changed"
    for a, b in zip(before[1], after[1]):
        assert np.array_equal(a, b), "numpy's global random state changed"
    assert torch.equal(before[2], after[2]), "torch's global random state changed"


@pytest.fixture
def odd_global_state():
    """Global generators in a state no library would seed them to, so that any reseeding shows."""
    random.seed(12345)
    np.random.seed(54321)
    torch.manual_seed(98765)
    torch.rand(7)


def _images(n=32):
    return (torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.7).float()


def test_svi_fit_leaves_the_global_generators_alone_and_the_seed_decides(odd_global_state):
    kw = dict(steps=3, batch_size=16, device="cpu", seed=2, progress=False)
    vae_a = (torch.manual_seed(1), VAE((1, 16, 16), 3, arch="mlp"))[1]
    vae_b = (torch.manual_seed(1), VAE((1, 16, 16), 3, arch="mlp"))[1]  # the same initial parameters
    torch.rand(3)
    before = _global_state()
    a = svi.fit(vae_a, _images(), **kw)
    _assert_same(before, _global_state())
    torch.rand(11)  # another caller state: the seed alone must decide the run
    b = svi.fit(vae_b, _images(), **kw)
    assert a.losses.tolist() == b.losses.tolist()
    for (name, p), q in zip(vae_a.named_parameters(), vae_b.parameters()):
        assert torch.equal(p, q), name


def test_score_matching_and_critics_leave_the_global_generators_alone(odd_global_state):
    data = torch.randn(256, 2, generator=torch.Generator().manual_seed(3))
    energy = MLPEnergy(2, hidden=(8,))
    before = _global_state()
    fit_score_model(energy, data, objective="sliced", steps=3, batch_size=64, device="cpu", progress=False)
    _assert_same(before, _global_state())
    estimate_divergence(data, data + 1.0, "kl", hidden=(8,), steps=3, batch_size=64, device="cpu", progress=False)
    _assert_same(before, _global_state())
    generator = torch.nn.Linear(2, 2)
    before = _global_state()
    train_fgan(data, generator, 2, critic_hidden=(8,), steps=3, batch_size=64, device="cpu", progress=False)
    _assert_same(before, _global_state())


def _model(x):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=x)


def _guide(x):
    pyro.sample("mu", dist.Normal(pyro.param("q_loc", torch.tensor(0.0)), 0.1))


def test_the_users_param_store_survives_and_earlier_runs_do_not_leak_in():
    x = torch.randn(50, generator=torch.Generator().manual_seed(0)) + 3.0
    mine = pyro.param("mine", torch.tensor([1.0, 2.0]))
    kw = dict(guide=_guide, batch_size=50, lr=0.1, device="cpu", progress=False)
    fit = svi.fit(_model, x, steps=100, **kw)
    assert pyro.param("mine") is mine  # the user's parameter is still there, untouched
    trained = pyro.param("q_loc").item()  # the fitted one joins the store
    assert trained == fit.params["q_loc"].item() and abs(trained - x.mean().item()) < 0.3
    # a fresh fit starts from the guide's initial value, not from the earlier run's
    assert svi.fit(_model, x, steps=0, **kw).params["q_loc"].item() == 0.0
    assert pyro.param("mine") is mine
    # clear_param_store=False continues from the caller's store instead
    pyro.get_param_store()["q_loc"] = torch.tensor(2.5)
    assert svi.fit(_model, x, steps=0, clear_param_store=False, **kw).params["q_loc"].item() == 2.5


def test_a_failed_fit_leaves_the_store_as_it_was():
    x = torch.randn(20)
    pyro.param("mine", torch.tensor(1.0))

    def stop(info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        svi.fit(_model, x, guide=_guide, steps=5, batch_size=20, device="cpu", progress=False, callbacks=[stop])
    assert set(pyro.get_param_store().keys()) == {"mine"}
