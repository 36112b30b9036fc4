"""The command line: bad input is one clear line and exit 2; list and run work."""
from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cli import main
from bench.logs import read_rows

BAD = [
    (["run", "--arch", "resnet5O"], "unknown architecture 'resnet5O' (closest: resnet50"),
    (["run", "--dataset", "/no/such/folder"], "dataset: '/no/such/folder' is not an existing folder"),
    (["run", "--pct", "0"], "pct_images: 0.0 is out of range"),
    (["run", "--pct", "1.5"], "pct_images: 1.5 is out of range"),
    (["run", "--epochs", "-1"], "head_epochs: -1 is out of range"),
    (["run", "--size", "16"], "img_size: 16 is out of range (must be >= 32)"),
    (["run", "--size", "big"], "img_size: expected a whole number, got 'big'"),
    (["run", "--head-lr", "-0.1"], "head_lr: -0.1 is out of range (must be > 0)"),
    (["run", "--ft-lr-min", "nan"], "ft_lr_min: expected a number"),
    (["run", "--head", "linear"], "head: 'linear' is not one of custom, fastai"),
    (["run", "--pretrained", "maybe"], "pretrained: 'maybe' is not one of auto, true, false"),
    (["run", "--fold", "5"], "fold: 5 must be < n_folds (5)"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a[1:]) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    assert main(argv + ["--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: ") and message in err[0], err
    assert not (tmp_path / "runs.csv").exists(), "nothing is written for rejected input"


def test_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--arch", "nope", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_list_shows_registry_with_published_counts(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name, count in [("resnet50", "25,557,032"), ("seresnet50", "28,088,024"),
                        ("tf_efficientnet_b3_ns", "12,233,232"), ("xresnet50_sa", "")]:
        line = next(l for l in out.splitlines() if l.split()[0] == name)
        assert count in line
    assert "none published" in next(l for l in out.splitlines() if l.startswith("xresnet18 "))


@pytest.mark.slow
def test_run_from_cli(tiny_folder, results_dir, capsys):
    argv = ["run", "--arch", "resnet18", "--dataset", str(tiny_folder), "--results-dir", str(results_dir),
            "--size", "32", "--item-size", "32", "--bs", "8", "--epochs", "1", "--pct", "1", "--pretrained", "auto"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "resnet18: accuracy" in out.out
    rows = read_rows(results_dir / "runs.csv")
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    assert rows[0]["weights_used"] == "random"  # offline, no cache: auto falls back, visibly
    assert rows[0]["img_size"] == "32" and rows[0]["head_epochs"] == rows[0]["ft_epochs"] == "1"
    assert rows[0]["experiment"] == "" and rows[0]["dataset"].startswith("tiny-")
