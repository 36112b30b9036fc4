"""Issue 25's rough edges: the report's fill command fills what a section lacks (a race's folds included)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import make_image_folder
from test_sweep import write_exp


def test_the_fill_command_names_the_seeds_and_folds_a_race_left_missing():
    from bench.report.groups import fill_commands
    rows = pd.DataFrame({"experiment": ["elpv"] * 2, "dataset": ["elpv-1234"] * 2,
                         "config_json": [json.dumps({"dataset": "/data/elpv"})] * 2})
    [command] = fill_commands(rows, [("0", "3"), ("1", "4"), ("1", "3")], "results")
    assert command == "make sweep EXP=elpv DATASET=/data/elpv SEEDS=0,1 FOLDS=3,4 RESULTS=results"


def test_a_sweep_takes_the_seeds_and_folds_the_fill_command_names(tmp_path, capsys):
    """The file lists seed 0 and no folds (fold 0 only); the race ran folds 0-4: SEEDS/FOLDS reach them."""
    from bench.cli import main
    data = make_image_folder(tmp_path / "data", per_class=10)
    exp = write_exp(tmp_path / "elpv.yaml", data, archs=("resnet18",), seeds=(0,))
    protocol_folds = ["--set", "n_folds=5"]
    assert main(["sweep", str(exp), "--dry-run", "--json", *protocol_folds, "--results-dir", str(tmp_path / "r")]) == 0
    assert [json.loads(line)["config"]["fold"] for line in capsys.readouterr().out.splitlines()] == [0]
    assert main(["sweep", str(exp), "--dry-run", "--json", "--seeds", "0,1", "--folds", "3,4", *protocol_folds,
                 "--results-dir", str(tmp_path / "r")]) == 0
    runs = [json.loads(line)["config"] for line in capsys.readouterr().out.splitlines()]
    assert [(r["seed"], r["fold"]) for r in runs] == [(0, 3), (0, 4), (1, 3), (1, 4)]


def test_timm_weights_are_found_in_the_hub_cache_by_path(tmp_path, monkeypatch):
    from bench.train.catalog import hub_cached
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert not hub_cached("timm/convnext_atto.d2_in1k") and not hub_cached(None)
    snap = tmp_path / "hub" / "models--timm--convnext_atto.d2_in1k" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"weights")
    assert hub_cached("timm/convnext_atto.d2_in1k")


@pytest.mark.slow
def test_a_warm_bench_list_imports_no_model_library(tmp_path):
    """`bench list` answered in 0.1 s before it looked at weight caches through torchvision and timm (3-5 s, 13-16 s
    under load); with the catalog warm it reads it and looks for files. Its time is benchmarks/bench_list.py's."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "BENCH_CACHE": str(tmp_path / "cache")}
    cold = subprocess.run([sys.executable, "-m", "bench", "list"], env=env, capture_output=True, text=True)
    warm = subprocess.run([sys.executable, "-X", "importtime", "-m", "bench", "list"], env=env, capture_output=True,
                          text=True)
    assert cold.returncode == warm.returncode == 0 and cold.stdout == warm.stdout
    imported = {line.split("|")[-1].strip() for line in warm.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"torch", "torchvision", "timm", "fastai", "pytorchcv", "geffnet"}
