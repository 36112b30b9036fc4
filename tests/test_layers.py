"""The house's one-way flow: data is read by train, never the other way round (bench/data imports no bench/train)."""
from __future__ import annotations

import ast
from pathlib import Path

import bench


def _imports(path: Path) -> set[str]:
    """Absolute names of the bench modules a file imports (relative imports resolved), at any depth."""
    package = ["bench", *path.parent.relative_to(Path(bench.__file__).parent).parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            names.add(".".join([*base, *(node.module.split(".") if node.module else [])]))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("bench")}


def test_data_does_not_import_train():
    data = Path(bench.__file__).parent / "data"
    upward = {f.name: sorted(n for n in _imports(f) if n.startswith("bench.train")) for f in data.glob("*.py")}
    assert not {k: v for k, v in upward.items() if v}
