"""The package's layers: every first-party import points down, nothing imports in a cycle.

The import graph is read from the source (``ast``), module-level and function-level imports alike,
so a lazy import cannot hide an upward edge. Layers (docs/architecture.md):

    0 errors, checks, ops, plotting, markup   1 graph   2 theory, search_spaces
    3 scorers, models, data, train, nasbench tables   4 search core, ranking
    5 optuna, ray, nasbench reports   6 cli, commands
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder of each package directory (the package-dir mapping of pyproject.toml).
SOURCES = {"nasplug": ROOT / "nasplug", "nasplug.scorers": ROOT / "scorers",
           "nasplug.search_spaces": ROOT / "search_spaces"}
#: Longest matching prefix wins.
LAYERS = {
    "nasplug.errors": 0, "nasplug.checks": 0, "nasplug.ops": 0, "nasplug.plotting": 0,
    "nasplug.markup": 0, "nasplug.processes": 0,
    "nasplug.graph": 1,
    "nasplug.theory": 2, "nasplug.search_spaces": 2,
    "nasplug.scorers": 3, "nasplug.models": 3, "nasplug.data": 3, "nasplug.train": 3, "nasplug.ddp": 3,
    "nasplug.nasbench": 3,
    "nasplug.search": 4, "nasplug.ranking": 4,
    "nasplug.optuna": 5, "nasplug.ray": 5, "nasplug.retrain": 5, "nasplug.nasbench.report": 5,
    "nasplug.cli": 6, "nasplug.commands": 6,
}
#: Same-layer edges that must not exist: models, data and training use the theory, never scorers.
FORBIDDEN = [("nasplug.models", "nasplug.scorers"), ("nasplug.data", "nasplug.scorers"),
             ("nasplug.train", "nasplug.scorers")]
#: Third-party libraries that are slow to import: only they may be imported inside functions.
HEAVY = {"torch", "optuna", "ray", "matplotlib", "pandas", "pyarrow", "nas_201_api", "sklearn", "tqdm",
         "cmaes", "scipy"}
#: The CLI builds its parser from every command module, so commands import lazily to keep
#: `nasplug --help` fast; nothing imports them, so no cycle can hide there.
LAZY_OK = ("nasplug.cli", "nasplug.commands")


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "nasplug" and parts and parts[0] in ("scorers", "search_spaces"):
                continue  # never present: those live in the top-level folders
            out[name] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The first-party module an imported name refers to (a module, or the package of a symbol)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported first-party module or third-party top name, line, at module level) of a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from pkg import sub` imports the module pkg.sub; `from pkg import name`, pkg itself
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        at_top = id(node) in top_level
        for name in names:
            if name.split(".")[0] == "nasplug":
                target = _resolve(name)
                if target is not None and target != module:
                    out.append((target, node.lineno, at_top))
            else:
                out.append((name.split(".")[0], node.lineno, at_top))
    return out


def layer(module: str) -> int:
    if module == "nasplug":
        return 1  # the package root re-exports layers 0-1 (test_package_root_imports_only_the_foundation)
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    assert best is not None, f"{module} has no layer: add it to LAYERS (and docs/architecture.md)"
    return LAYERS[best]


EDGES = [(m, t, line, top) for m, p in MODULES.items() for t, line, top in _imports(m, p) if t in MODULES]


def test_every_module_has_a_layer():
    for module in MODULES:
        if module != "nasplug":
            layer(module)


def test_imports_point_down_only():
    upward = [f"{m}:{line} imports {t} (layer {layer(m)} -> {layer(t)})"
              for m, t, line, _ in EDGES if m != "nasplug" and layer(t) > layer(m)]
    assert not upward, "\n".join(upward)


def test_package_root_imports_only_the_foundation():
    # `import nasplug` must stay light: its __init__ re-exports layers 0-1 only
    assert all(layer(t) <= 1 for m, t, _, _ in EDGES if m == "nasplug")


def test_forbidden_same_layer_edges():
    bad = [f"{m} imports {t}" for m, t, _, _ in EDGES for a, b in FORBIDDEN
           if (m == a or m.startswith(a + ".")) and (t == b or t.startswith(b + "."))]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = nx.DiGraph()
    graph.add_edges_from((m, t) for m, t, _, _ in EDGES if m != "nasplug" and t != "nasplug")
    # a subpackage's __init__ importing its own modules is not a cycle of concepts
    graph.remove_edges_from([(m, t) for m, t in list(graph.edges) if t.startswith(m + ".")])
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_lazy_imports_are_heavy_libraries_only():
    """First-party imports belong at module level (so cycles cannot hide); a function may import a
    heavy library, or a first-party module that imports one at its own top level."""
    heavy_modules = set()
    for m, p in MODULES.items():
        if any(not t.startswith("nasplug") and t in HEAVY and top for t, _, top in _imports(m, p)):
            heavy_modules.add(m)
    graph = nx.DiGraph([(m, t) for m, t, _, top in EDGES if top])
    graph.add_nodes_from(MODULES)
    heavy_modules |= {m for m in MODULES if any(h in nx.descendants(graph, m) for h in heavy_modules)}
    bad = [f"{m}:{line} imports {t} inside a function" for m, t, line, top in EDGES
           if not top and not m.startswith(LAZY_OK) and t not in heavy_modules]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", ["nasplug", "nasplug.scorers", "nasplug.search", "nasplug.theory",
                                    "nasplug.search_spaces", "nasplug.ranking", "nasplug.cli"])
def test_light_modules_do_not_import_heavy_libraries(module):
    code = (f"import sys, {module}; heavy = sorted(m for m in ('torch', 'optuna', 'ray', 'matplotlib') "
            "if m in sys.modules); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing {module} imports {out.stdout.strip()}"
