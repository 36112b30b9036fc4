"""The command line: bad input is one clear line and exit 2; list and run work."""
from __future__ import annotations

import subprocess
import sys

import pytest

from bench.cli import main
from bench.files import read_rows


def torch_cuda() -> bool:
    import torch
    return torch.cuda.is_available()

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
    (["run", "--head", "linear"], "head: 'linear' is not one of fastai, manual"),
    (["run", "--head", "custom"], "head: 'custom' is now called 'manual'"),
    (["run", "--activation", "mish"], "activation=mish: only the xresnet family"),
    (["show", "resnet18", "--classes", "x"], "classes: expected a whole number"),
    (["show", "nope"], "arch: unknown architecture 'nope'"),
    (["run", "--pretrained", "maybe"], "pretrained: 'maybe' is not one of auto, true, false"),
    (["run", "--fold", "5"], "fold: 5 must be < n_folds (5)"),
    (["run", "--epochs", "0"], "at least one epoch"),
    (["run", "--head-epochs", "0", "--ft-epochs", "0"], "at least one epoch"),
    (["run", "--seed", "-1"], "seed: -1 is out of range (must be >= 0)"),
    (["run", "--split-seed", "4294967296"], "split_seed: 4294967296 is out of range (must be <= 4294967295)"),
    (["run", "--device", "gpu"], "device: 'gpu' is not one of auto, cpu, cuda, cuda:N"),
    (["run", "--device", "cuda:x"], "device: 'cuda:x' is not one of"),
    (["run", "--weights", "/missing/weights.pth"], "weights: /missing/weights.pth does not exist"),
    (["run", "--pretrained", "true"], "pretrained: no cached weights for resnet18 and download.pytorch.org is "
                                      "unreachable"),
    (["run", "--arch", "xresnet18", "--pretrained", "true"], "pretrained: fastai publishes no ImageNet weights"),
    (["run", "--profile", "quick", "--epochs", "0"], "at least one epoch"),  # was a TypeError (profile twice)
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a[1:]) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    results = tmp_path / "results"
    assert main(argv + ["--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: ") and message in err[0], err
    assert not results.exists(), "nothing is written for rejected input: no row, no file"


@pytest.mark.skipif(torch_cuda(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_before_any_work(capsys, tmp_path):
    assert main(["run", "--device", "cuda", "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench: error: device: 'cuda' requested but no CUDA device is available (use --device cpu)"]
    assert not (tmp_path / "results").exists()


def test_unwritable_results_folder_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("a file where a folder should be")
    assert main(["run", "--results-dir", str(tmp_path / "file" / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: results_dir: cannot write to "), err


def test_speed_checks_the_results_folder_before_measuring(capsys, tmp_path):
    (tmp_path / "file").write_text("a file where a folder should be")
    assert main(["speed", "--arch", "resnet18", "--results-dir", str(tmp_path / "file" / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: results_dir: cannot write to "), err


def test_fewer_training_images_than_a_batch_is_refused(tiny_folder, capsys, tmp_path):
    """fastai drops the incomplete last batch: 24 training images at batch 64 would train on nothing."""
    results = tmp_path / "results"
    argv = ["run", "--dataset", str(tiny_folder), "--results-dir", str(results), "--pct", "1", "--bs", "64"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "24 training image(s)" in err[0] and "one batch of 64" in err[0], err
    assert "--bs 24" in err[0]
    assert not (results / "runs.csv").exists()


def _config(argv):
    from bench.cli import build_parser, config_from_args
    return config_from_args(build_parser("run").parse_args(["run", *argv]))


def test_profile_with_a_named_dataset(tmp_path, monkeypatch):
    """--profile on a named dataset (the default digits included) was `make_config() got multiple values`."""
    assert _config(["--profile", "blog"]).img_size == 224  # digits' own profile is quick (32 px)
    assert _config([]).img_size == 32
    (tmp_path / "datasets.yaml").write_text("pets: {source: digits, size: 96, profile: quick}\n")
    monkeypatch.setenv("BENCH_DATASETS", str(tmp_path / "datasets.yaml"))
    cfg = _config(["--dataset", "pets", "--profile", "blog"])
    assert (cfg.img_size, cfg.head_epochs) == (96, 10)  # the dataset's size, the blog profile's epochs


def test_specific_epochs_win_over_the_shortcut():
    """make bench EPOCHS=5 HEAD_EPOCHS=2: whatever the order on the command line."""
    for argv in (["--epochs", "5", "--head-epochs", "2"], ["--head-epochs", "2", "--epochs", "5"]):
        cfg = _config(argv)
        assert (cfg.head_epochs, cfg.ft_epochs) == (2, 5)


def test_a_nan_loss_is_a_failed_row(tiny_folder, capsys, tmp_path):
    results = tmp_path / "results"
    argv = ["run", "--dataset", str(tiny_folder), "--results-dir", str(results), "--pretrained", "false",
            "--size", "32", "--item-size", "32", "--bs", "8", "--pct", "1", "--head-epochs", "1", "--ft-epochs", "0",
            "--head-lr", "1e30"]  # diverges at once
    assert main(argv) == 1
    assert "train loss is nan in epoch 1" in capsys.readouterr().err
    (row,) = read_rows(results / "runs.csv")
    assert row["status"] == "failed" and "diverged" in row["error"]


def test_a_nan_in_any_epoch_fails_the_check():
    from bench.train.record import NonFiniteLoss, check_trained
    good = {"epoch": 1, "phase": 1, "train_loss": 0.7, "valid_loss": 0.6}
    check_trained([good, {**good, "epoch": 2}], train_images=16)
    with pytest.raises(NonFiniteLoss, match=r"train loss is nan in epoch 1 \(phase 1\)"):
        check_trained([{**good, "train_loss": float("nan")}, {**good, "epoch": 2}], train_images=16)
    with pytest.raises(NonFiniteLoss, match=r"valid loss is inf in epoch 2"):
        check_trained([good, {**good, "epoch": 2, "phase": 2, "valid_loss": float("inf")}], train_images=16)
    with pytest.raises(NonFiniteLoss, match=r"no training batch ran"):
        check_trained([good], train_images=0)


def test_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--arch", "nope", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_list_shows_registry_with_published_counts(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {l.split()[0]: l for l in out.splitlines()}
    for name, count in [("resnet50", "25,557,032"), ("seresnet50", "28,088,024"),
                        ("tf_efficientnet_b3_ns", "12,233,232"), ("xresnet50", "25,576,264"),
                        ("xresnet50_sa", f"{25_576_264 + 256 * 256 + 1:,}")]:  # + SimpleSelfAttention(256)
        assert count in lines[name].split(), lines[name]
    assert "not cached" in lines["xresnet50_sa"]  # xrn50_940 loads around the (random) attention layer
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
