"""No hidden global state: library calls leave the caller's random generators (Python, numpy, torch) as they
were, and importing the SCM language does not load scikit-learn."""

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from probrep import divergences as dv
from probrep.causal import SCM

EQUATIONS = {"Z": "Normal(0, 1)", "X": "2*Z + Normal(0, 0.5)", "Y": "X - Z + Laplace(0, 1)"}


def _global_states():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _assert_unchanged(before):
    py, np_state, torch_state = before
    assert random.getstate() == py, "python's random state changed"
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:], (
        "numpy's global random state changed"
    )
    assert torch.equal(torch.get_rng_state(), torch_state), "torch's global random state changed"


@pytest.fixture
def seeded_globals():
    """Set the global generators to a state a call must not touch (and would be unlikely to restore by chance)."""
    random.seed(12345)
    np.random.seed(12345)
    torch.manual_seed(12345)
    return _global_states()


@pytest.mark.parametrize("backend", ["numpyro", "pyro", "numpy"])
def test_scm_sample_leaves_global_random_state_alone(backend, seeded_globals):
    scm = SCM.from_equations(EQUATIONS)
    kwargs = {"device": "cpu"} if backend == "pyro" else {}
    first = scm.sample(200, seed=7, backend=backend, **kwargs)
    _assert_unchanged(seeded_globals)
    # and the seed alone decides the draw, whatever the global state
    torch.manual_seed(999)
    again = scm.sample(200, seed=7, backend=backend, **kwargs)
    assert all(np.array_equal(np.asarray(first[k]), np.asarray(again[k])) for k in first)


@pytest.mark.parametrize("evidence", [{"Z": 0.3, "X": 1.1, "Y": 2.0}, {"Y": 2.0}], ids=["exact", "nuts"])
def test_counterfactual_leaves_global_random_state_alone(evidence, seeded_globals):
    scm = SCM.from_equations(EQUATIONS)
    out = scm.counterfactual(evidence, do={"X": -0.5}, n=20, seed=3, num_warmup=50)
    assert out["counterfactual"]["Y"].shape == (20,)
    _assert_unchanged(seeded_globals)


def test_mmd_permutation_test_leaves_global_random_state_alone(seeded_globals):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 2, generator=g), 0.5 + torch.randn(50, 2, generator=g)
    result = dv.mmd_permutation_test(x, y, num_permutations=30, seed=1)
    assert 0.0 < result.p_value <= 1.0
    _assert_unchanged(seeded_globals)


def test_importing_the_scm_language_does_not_load_scikit_learn():
    code = (
        "import sys; import probrep.causal; import probrep.metrics; "
        "loaded = sorted(m for m in sys.modules if m == 'sklearn' or m.startswith('sklearn.')); "
        "print(len(loaded)); sys.exit(1 if loaded else 0)"
    )
    root = Path(__file__).resolve().parents[1]  # this checkout's probrep, as the tests import it
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"import probrep.causal loaded scikit-learn ({done.stdout.strip()} modules)"


def test_an_experiment_leaves_the_callers_generators_and_param_store_alone(seeded_globals, tmp_path):
    import pyro

    from probrep.experiments.vae_dsprites import train_vae_on_dsprites

    mine = pyro.param("my_own_parameter", torch.tensor(3.0))
    train_vae_on_dsprites(tmp_path, model="vae", latent_dim=2, arch="mlp", batch_size=4, steps=2, device="cpu",
                          progress=False)  # fmt: skip
    _assert_unchanged(seeded_globals)
    assert pyro.get_param_store().get_param("my_own_parameter") is mine


def test_the_air_and_gqn_runs_leave_the_callers_generators_alone(seeded_globals, tmp_path):
    from probrep.experiments.air import train_air
    from probrep.experiments.gqn import train_gqn

    tiny_air = {"z_what_dim": 3, "rnn_hidden": 8, "encoder_hidden": 8, "decoder_hidden": 8, "predict_hidden": 8,
                "baseline_hidden": 8}  # fmt: skip
    train_air(tmp_path / "air", tier="small", n_train=32, n_test=8, batch_size=8, steps=2, eval_every=2,
              model_kwargs=tiny_air, device="cpu", progress=False)  # fmt: skip
    _assert_unchanged(seeded_globals)
    train_gqn(tmp_path / "gqn", steps=2, batch_size=2, train_scenes=4, test_scenes=4, draw_steps=1, device="cpu",
              progress=False)  # fmt: skip
    _assert_unchanged(seeded_globals)


def test_no_import_changes_a_process_wide_jax_setting():
    code = (
        "import jax; before = (jax.config.jax_enable_x64, jax.config.jax_platforms); "
        "import probrep.inference.mcmc.sampling, probrep.inference.mcmc.kernels, probrep.data.posteriordb, "
        "probrep.causal.programs, probrep.inference.score_matching.objectives_jax, probrep.cli; "
        "assert (jax.config.jax_enable_x64, jax.config.jax_platforms) == before, 'a module changed a JAX setting'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
