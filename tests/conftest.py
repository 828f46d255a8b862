import os

# Tests run on the CPU with few threads: deterministic and polite on a 2-core CI machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pyro  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Each test starts with an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
