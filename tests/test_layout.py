"""The house keeps its shape: layering contracts, no import cycles, short files, light imports, and a docstring
that says what each module is for."""

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "probrep"
ROOT = PACKAGE.parent


def test_layering_contracts_are_kept():
    # the same contracts `make lint` checks (pyproject.toml, [tool.importlinter]); in a subprocess, because
    # import-linter reconfigures logging (it disables every existing logger)
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:]


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), on direct imports within probrep."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if not w.startswith("probrep"):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles_between_modules():
    assert _cycles(grimp.build_graph("probrep", cache_dir=None)) == []


def test_the_cycle_finder_finds_a_cycle():
    class Graph:
        modules = {"probrep.a", "probrep.b", "probrep.c"}
        edges = {"probrep.a": {"probrep.b"}, "probrep.b": {"probrep.a"}, "probrep.c": {"probrep.a"}}

        def find_modules_directly_imported_by(self, m):
            return self.edges.get(m, set())

    assert _cycles(Graph()) == [["probrep.a", "probrep.b"]]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_is_short_and_says_what_it_is_for(path):
    lines = path.read_text().count("\n")
    assert lines <= 500, f"{path.relative_to(ROOT)} has {lines} lines: split it along its ideas"
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring and len(docstring) > 20, f"{path.relative_to(ROOT)} has no module docstring"


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_light_imports():
    assert not {"torch", "jax", "pyro", "sklearn"} & _loaded_after("import probrep")
    assert "sklearn" not in _loaded_after("import probrep.causal")
    assert "sklearn" not in _loaded_after("from probrep.causal import irs")
    assert "jax" not in _loaded_after("from probrep.inference.langevin import langevin")
    assert "jax" not in _loaded_after("import probrep.inference.mcmc.adaptation")
    assert not {"pyro", "jax"} & _loaded_after("import probrep.inference")
    assert "torch" not in _loaded_after("import probrep.cli")  # `probrep --help` answers at once


LAZY_PACKAGES = ["probrep.metrics", "probrep.inference", "probrep.inference.mcmc", "probrep.causal"]
# the exports that are modules: the subpackages of probrep.inference, and probrep.causal's metrics
MODULE_EXPORTS = {
    "probrep.inference": {"svi", "mcmc", "langevin", "torch_samplers", "score_matching", "divergences"},
    "probrep.causal": {"metrics"},
}


@pytest.mark.parametrize("package", [*LAZY_PACKAGES, "probrep.inference.langevin"])
def test_no_submodule_hides_a_lazy_export(package):
    """Importing a submodule makes it an attribute of its package, found before the lazy ``__getattr__``: an export
    named like a submodule would turn into that module once anything imported it (mcmc.sample once did)."""
    import importlib
    import pkgutil

    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        importlib.import_module(f"{package}.{info.name}")
    for name in getattr(module, "__all__", ()):
        is_module = hasattr(getattr(module, name), "__file__")
        expected = name in MODULE_EXPORTS.get(package, set())
        assert is_module == expected, f"{package}.{name} is {'a' if is_module else 'not a'} module"


def test_the_public_import_paths_keep_working():
    """The paths users have imported from (issue 21's list); moved names are re-exported or deprecated aliases."""
    import warnings

    code = """
from probrep.data import DSprites, MultiObjects, posteriordb, Rooms, load_rooms
from probrep.models import VAE, BetaTCVAE, FactorVAE, AIR, GQN
from probrep.models.ebm import MLPEnergy, ConvEnergy, NoiseConditionalScore
from probrep.inference import svi, mcmc, score_matching, divergences
from probrep.inference.langevin import MALA, ULA, langevin, hmc
from probrep.causal import SCM, Mechanism, irs, metrics
assert callable(mcmc.sample) and callable(irs) and callable(metrics.irs) and callable(divergences.mmd2)
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    from probrep.inference.score_matching import fit_score_model
    from probrep.models import ebm

    with pytest.warns(DeprecationWarning, match="moved to probrep.inference.score_matching"):
        assert ebm.fit_score_model is fit_score_model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from probrep.models.ebm import MLPEnergy  # noqa: F401  (no warning for what still lives there)
