"""Names a package exports but loads on first use, so that importing it stays light (JAX, NumPyro, Pyro and
scikit-learn load only when a name that needs them is touched). One mechanism for every lazy package."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``where[name]`` is ``"module"`` (the attribute is that
    module) or ``"module:attribute"``, with absolute module names. The value is looked up on every access and
    never cached in the package. No submodule may share a name with an export: importing a submodule sets it as
    the package's attribute, which Python finds before ``__getattr__`` (tests/test_layout.py checks this)."""

    def __getattr__(name: str) -> object:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if attribute else module

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
