"""Issue 25's rough edges: the report's fill command fills what a section lacks (a race's folds included)."""
from __future__ import annotations

import json

import pandas as pd

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
