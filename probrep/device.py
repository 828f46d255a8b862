"""One place that turns a device request into a torch device, and says which platform JAX uses.

Every entry point that computes takes ``device=`` and passes it through :func:`resolve_device`, so "auto",
error messages and the CUDA index check behave the same everywhere.
"""

from __future__ import annotations

import re

import torch

_CUDA_PATTERN = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N"`` (or a ``torch.device``) to a ``torch.device``.

    ``"auto"`` (and ``None``) picks ``cuda`` when a CUDA device is present, else ``cpu``. Asking for CUDA on a
    machine without it, or for a CUDA index that does not exist, raises ``ValueError`` naming the request.
    """
    if device is None:
        device = "auto"
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    request = device.strip().lower()
    if request == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if request == "cpu":
        return torch.device("cpu")
    match = _CUDA_PATTERN.match(request)
    if match is None:
        raise ValueError(f"unknown device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available on this machine "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); use device='cpu' or 'auto'"
        )
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device {device!r} requested but only {count} CUDA device(s) are visible")
    return torch.device("cuda", index)


def jax_platform() -> str:
    """The platform JAX computes on ("cpu", "gpu", "tpu"); respects ``JAX_PLATFORMS``. Imports JAX lazily."""
    import jax

    return jax.default_backend()


def _version(distribution: str) -> str:
    """The installed version of a distribution, read from its metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, str]:
    """A short report of what this machine offers, for ``probrep info`` and bug reports."""
    report = {name: _version(name) for name in ("probrep", "pyro-ppl", "numpyro", "jaxlib")}
    report |= {
        "torch": torch.__version__,
        "torch_device_auto": str(resolve_device("auto")),
        "cuda_devices": str(torch.cuda.device_count()),
    }
    try:
        import jax

        report["jax"] = jax.__version__
        report["jax_platform"] = jax_platform()
    except Exception as exc:  # JAX missing or broken must not hide the torch report
        report["jax"] = f"unavailable ({exc.__class__.__name__}: {exc})"
    return report
