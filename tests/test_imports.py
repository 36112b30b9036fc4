"""bench's imports go one way: no circle, no module importing from a package above it or from a `cli` module, and a
function-local (deferred) import of bench's own code only where the module it names is heavy to import.

Read with `ast` from the source (top-level and function-local imports, relative and absolute), so nothing is
imported and a deferred import cannot hide a circle that only closes when the function runs.

Layers, lowest first: the shared modules at the top of bench/ (config, console, files, provenance, identity, sinks,
network) and the shared package bench/stats/; `bench.data`; `bench.train` and `bench.report`; `bench.sweep`;
`bench.cli`. A module may import its own package and the layers below it; `report` reads results files, never
training code (the race, in `sweep`, uses the report's verdict).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "bench"

# package -> the packages its modules may import from ("bench": the shared top-level modules)
MAY_IMPORT = {
    "bench": {"bench"},
    "bench.data": {"bench", "bench.data"},
    "bench.train": {"bench", "bench.data", "bench.train"},
    "bench.sweep": {"bench", "bench.data", "bench.train", "bench.report", "bench.sweep"},
    "bench.report": {"bench", "bench.data", "bench.report"},
}
TOP = {"bench.cli", "bench.__main__"}  # the entry points: they may import anything, and only __main__ imports cli

# third-party packages that take a noticeable time to import (a bench module importing one at its top is heavy)
HEAVY = {"torch", "torchvision", "fastai", "timm", "pytorchcv", "geffnet", "numpy", "pandas", "scipy", "sklearn",
         "matplotlib", "seaborn", "ray", "mlflow", "fvcore", "safetensors", "tqdm"}


def module_name(path: Path, root: Path) -> str:
    parts = ("bench",) + path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(name: str, modules: dict) -> bool:
    return modules[name].name == "__init__.py"


def package_of(name: str, modules: dict) -> str:
    return name if is_package(name, modules) else name.rpartition(".")[0]


def imports(name: str, tree: ast.AST, modules: dict):
    """(imported name, line, function-local?) for every import in the module; bench modules are resolved to the
    module file they load (`from . import plots` is `bench.report.plots`), other names are kept as written."""
    local_lines = {n.lineno for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    typing_only = {n.lineno for i in ast.walk(tree) if isinstance(i, ast.If) and "TYPE_CHECKING" in ast.unparse(i.test)
                   for n in ast.walk(i) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in typing_only:
            continue
        local = node.lineno in local_lines
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, local
        else:
            if node.level:
                base = package_of(name, modules).split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules else target), node.lineno, local


def scan(root: Path = ROOT) -> tuple[dict, list, dict]:
    """bench's modules ({name: path}), its import edges [(importer, imported, line, local)] and the third-party
    packages each module imports at its top ({name: {package}})."""
    modules = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    edges, third = [], {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target, line, local in imports(name, tree, modules):
            if target in modules:
                edges.append((name, target, line, local))
            elif not local:
                third.setdefault(name, set()).add(target.split(".")[0])
    return modules, edges, third


def cycles(edges: list) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module, or a module importing itself)."""
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):  # Tarjan; bench's graph is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer_of(name: str) -> str:
    """The layer a module is in: its package among MAY_IMPORT's, else the shared one ("bench": the modules at the
    top of bench/ and shared packages such as bench/stats/)."""
    parts = name.split(".")
    return ".".join(parts[:2]) if ".".join(parts[:2]) in MAY_IMPORT else "bench"


def climbs(modules: dict, edges: list) -> list[str]:
    """Imports against the layers: from a package above the importer's, or from any `cli` module."""
    out = []
    for a, b, line, _ in edges:
        where = f"{a}:{line} imports {b}"
        if b.rpartition(".")[2] == "cli" and a != "bench.__main__":
            out.append(f"{where} (a cli module)")
        elif a in TOP or b == "bench":
            continue
        elif b in TOP:
            out.append(f"{where} (an entry point)")
        elif layer_of(b) not in MAY_IMPORT[layer_of(a)]:
            out.append(f"{where} (a package above {layer_of(a)})")
    return out


def heavy_modules(modules: dict, edges: list, third: dict) -> set[str]:
    """bench modules whose import (their top-level imports, followed through bench) loads a HEAVY package."""
    heavy = {m for m, pkgs in third.items() if pkgs & HEAVY}
    top = [(a, b) for a, b, _, local in edges if not local]
    grew = True
    while grew:
        new = {a for a, b in top if b in heavy} - heavy
        heavy |= new
        grew = bool(new)
    return heavy


# Being rewritten by the lead (issues 23/24), who tidies their deferred imports himself; circles and climbs are
# checked in them as everywhere.
REWRITTEN: set[str] = set()


def needless_deferrals(modules: dict, edges: list, third: dict, skip=frozenset()) -> list[str]:
    """Function-local imports of bench modules that are light: nothing is saved by deferring them."""
    heavy = heavy_modules(modules, edges, third)
    return [f"{a}:{line} defers {b}" for a, b, line, local in edges
            if local and b not in heavy and b != a and not is_package(b, modules) and a not in skip]


def test_no_import_circle():
    _, edges, _ = scan()
    assert cycles(edges) == []


def test_no_import_climbs():
    modules, edges, _ = scan()
    assert climbs(modules, edges) == []


def test_deferred_imports_keep_start_up_light():
    assert needless_deferrals(*scan(), skip=REWRITTEN) == []


@pytest.mark.parametrize("source, expect", [
    # console -> train/record (deferred) -> logs -> console: the circle this test was written against
    ({"console.py": "def f():\n    from .train.record import one_line\n",
      "logs.py": "from .console import epoch_line\n",
      "train/__init__.py": "", "train/record.py": "from ..logs import append_rows\n"},
     {"cycles": [["bench.console", "bench.logs", "bench.train.record"]],
      "climbs": ["bench.console:2 imports bench.train.record (a package above bench)"]}),
    ({"cli.py": "", "train/__init__.py": "", "train/show.py": "def f():\n    from ..cli import config_from_args\n"},
     {"cycles": [], "climbs": ["bench.train.show:2 imports bench.cli (a cli module)"]}),
    ({"report/__init__.py": "", "train/__init__.py": "", "train/archs.py": "",
      "report/build.py": "import bench.train.archs\n"},
     {"cycles": [], "climbs": ["bench.report.build:1 imports bench.train.archs (a package above bench.report)"]}),
])
def test_checker_finds_circles_and_climbs(tmp_path, source, expect):
    """The checks fail on the import shapes they are meant to catch (the old code's circle and climbs)."""
    modules, edges, _ = scan(write_tree(tmp_path, source))
    assert {"cycles": cycles(edges), "climbs": climbs(modules, edges)} == expect


def write_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "bench"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_needless_deferral_is_found(tmp_path):
    modules, edges, third = scan(write_tree(tmp_path, {
        "config.py": "import os\n", "heavy.py": "import torch\n",
        "user.py": "def f():\n    from .config import x\n    from .heavy import y\n"}))
    assert [d.split(" defers ")[1] for d in needless_deferrals(modules, edges, third)] == ["bench.config"]


# report/outcomes.py reads what train/outcomes.py writes (issue 24's per-image outcomes): left to their owner
SHARED_NAMES = {"outcomes"}


def test_one_name_one_module():
    """No two of bench's modules share a file name (two `cli.py` or `stats.py` read as one in a traceback or a
    search), bar the packages' __init__ and the names listed above."""
    names: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        if path.name != "__init__.py" and path.stem not in SHARED_NAMES:
            names.setdefault(path.name, []).append(str(path.relative_to(ROOT.parent)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}
