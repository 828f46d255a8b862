"""The torch samplers keep no hidden global state: they leave the caller's random generators as they were, hold
no tensors between calls, and the user-facing module imports them without loading JAX."""

import importlib
import os
import pkgutil
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import probrep.inference.torch_samplers as torch_samplers
from probrep.inference.torch_samplers import hmc, langevin

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]


def energy(x: torch.Tensor) -> torch.Tensor:
    x = x.flatten(1)
    return 0.5 * (x**2).sum(-1) + 0.1 * (x**4).sum(-1)


def test_samplers_leave_the_global_generators_alone():
    """A run draws only from its own seeded torch.Generator: torch's, numpy's and Python's global generators are in
    the same state after MALA, ULA and HMC runs (with warm-up, the step-size search and mass-matrix adaptation)
    as before, and the draws do not depend on them."""
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    x0 = torch.zeros(4, 3, dtype=torch.float64)
    first = langevin(energy, x0, 60, seed=1, progress=False)
    langevin(energy, x0, 60, adjust=False, seed=1, progress=False)
    hmc(energy, x0, 40, num_leapfrog=3, seed=1, progress=False)
    after = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    assert torch.equal(before[0], after[0])
    assert all(np.array_equal(a, b) for a, b in zip(before[1], after[1]))
    assert before[2] == after[2]
    torch.manual_seed(7)
    assert torch.equal(langevin(energy, x0, 60, seed=1, progress=False).samples, first.samples)


def _tensors_in(value, depth: int = 0) -> int:
    """How many tensors ``value`` holds, looking into containers a module might cache in."""
    if torch.is_tensor(value):
        return 1
    if depth > 2:
        return 0
    if isinstance(value, dict):
        return sum(_tensors_in(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return sum(_tensors_in(v, depth + 1) for v in value)
    return 0


def test_no_module_holds_tensors_after_a_run():
    """Nothing is cached at module level (the backward seed of ones is made per run): after runs of several
    shapes and dtypes, no module of the package holds a tensor."""
    for shape, dtype in (((3, 2), torch.float64), ((5, 1, 2, 2), torch.float32)):
        langevin(energy, torch.zeros(shape, dtype=dtype), 30, progress=False)
        hmc(energy, torch.zeros(shape, dtype=dtype), 30, num_leapfrog=2, progress=False)
    names = [info.name for info in pkgutil.iter_modules(torch_samplers.__path__, torch_samplers.__name__ + ".")]
    assert len(names) >= 8
    for name in [torch_samplers.__name__, *names]:
        module = importlib.import_module(name)
        held = {key: _tensors_in(value) for key, value in vars(module).items()}
        assert not any(held.values()), (name, {k: n for k, n in held.items() if n})


def test_the_torch_samplers_import_without_jax():
    """``from probrep.inference.langevin import langevin`` loads neither JAX nor NumPyro; ``MALA`` loads them on
    first use."""
    script = (
        "import sys\n"
        "from probrep.inference.langevin import hmc, langevin, pyro_potential\n"
        "print(sorted(m for m in ('jax', 'numpyro') if m in sys.modules))\n"
        "from probrep.inference.langevin import MALA\n"
        "print(MALA.__module__, 'jax' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["[]", "probrep.inference.mcmc.kernels True"]
