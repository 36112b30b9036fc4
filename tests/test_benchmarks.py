"""The benchmarks behind the figures in docs/benchmarks.md still run against today's library: every name they import
from bench exists, and the pool benchmark (issue 18's evidence) runs end to end at its smallest size. Their figures
are not asserted (no timed tests): only that they are produced."""
from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


def bench_imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for each `from bench... import name` and (module, None) for each `import bench...`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):  # a syntax error fails here
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "bench":
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.split(".")[0] == "bench"]
    return out


def test_the_benchmarks_are_found():
    assert {p.name for p in BENCHMARKS} >= {"pool.py", "data_pipeline.py", "options.py", "overhead.py"}


def missing_names(path: Path) -> list[str]:
    missing = []
    for module, name in bench_imports(path):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError:
            missing.append(module)
            continue
        if name is not None and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{module}.{name}")
    return missing


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_a_benchmark_imports_only_what_bench_has(path):
    assert not missing_names(path), f"{path.name} imports names bench no longer has"


def test_the_import_check_sees_a_moved_name_or_module(tmp_path):
    """The check above fails for the kind of breakage it is for: a function or module moved elsewhere."""
    moved = tmp_path / "moved.py"
    moved.write_text("import bench.train.gone\n\ndef main():\n    from bench.data.loaders import make_dls, seed_all\n"
                     "    from bench.sweep import pool\n")
    assert missing_names(moved) == ["bench.train.gone", "bench.data.loaders.seed_all"]


@pytest.mark.slow
def test_the_pool_benchmark_runs_its_overhead_rounds_and_a_sweep(tmp_path, tiny_folder):
    exp = tmp_path / "tiny.yaml"
    exp.write_text(f"name: tiny\ndataset: {tiny_folder}\nprofile: quick\nprotocol:\n  pretrained: 'false'\n"
                   "  img_size: 32\n  item_size: 32\n  batch_size: 8\n  head_epochs: 1\n  ft_epochs: 1\n"
                   "seeds: [1, 2]\narchs:\n  - resnet18\n")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "pool.py"), "--archs", "resnet18",
                          "--rounds", "1", "--sweep", "--experiment", str(exp)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    for stage in ("start-up", "claim", "imports", "resolve", "first batch", "total"):
        assert re.search(rf"^resnet18\s+{stage}\s+[\d.]+ \([\d.]+-[\d.]+\)\s+[\d.]+ \(", out, re.M), stage
    assert re.search(r"^resnet18\s+saved/run\s+-?[\d.]+ \(paired, n=1\)", out, re.M)
    # both runs were trained and their CPU seconds read from the sweep's lines
    assert re.search(r"tiny sweep: exit code 0, .*; 2 rows; .*\(2 runs\)", out), out[-2000:]
