import os

# Tests run on the CPU with few threads: deterministic and polite on a 2-core CI machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pyro  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

# The device tests compute on: CPU unless PROBREP_TEST_DEVICE names another (``make gpu-check`` sets "cuda").
TEST_DEVICE = os.environ.get("PROBREP_TEST_DEVICE", "cpu")


@pytest.fixture
def device() -> torch.device:
    """The torch device a test computes on (``PROBREP_TEST_DEVICE``, default "cpu"); skips when it is absent."""
    wanted = torch.device(TEST_DEVICE)
    if wanted.type == "cuda" and not torch.cuda.is_available():
        pytest.skip(f"PROBREP_TEST_DEVICE={TEST_DEVICE} but CUDA is not available")
    return wanted


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Each test starts with an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for modules of small tensors: on a busy 2-core machine two threads mostly wait for
    each other. Opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
