"""`bench speed`: a row with positive numbers for every registry name, fvcore counts MACs, CLI errors, the
precision fix. No timing assertions: speed goals are benchmark figures (docs/benchmarks.md), not test outcomes."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from bench.train.archs import REGISTRY
from bench.files import read_rows
from bench.train.speed import SPEED_FIELDS, measure, speed_path
from bench.train.timing import count_gmacs


@pytest.mark.parametrize("arch", sorted(REGISTRY) + ["timm:resnet10t"])
def test_every_arch_writes_a_positive_row(arch, results_dir):
    # 32 px batch 2 (BatchNorm needs > 1 value per channel in training), 1 step: builds are the cost
    row = measure(arch, img_size=32, batch_size=2, steps=1, warmup=0, device="cpu", results_dir=results_dir,
                  macs=False)
    rows = read_rows(speed_path(results_dir))
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["arch"] == arch
    for key in ("train_img_s", "infer_img_s", "params", "params_1k"):
        assert float(rows[0][key]) > 0, key
    assert rows[0]["mem_method"] == "cpu_rss_hwm_delta"  # the figure itself: test_peak_memory_sees_an_allocation
    assert row["params"] > 0 and rows[0]["device"] == "cpu" and rows[0]["torch"]


def test_row_records_options_and_gmacs(results_dir):
    row = measure("resnet18", img_size=32, batch_size=2, steps=1, warmup=1, precision="bf16", channels_last=True,
                  device="cpu", results_dir=results_dir)
    (r,) = read_rows(speed_path(results_dir))
    assert list(r) == SPEED_FIELDS
    assert (r["precision"], r["channels_last"], r["memory_format"], r["compile"], r["warmup_steps"]) == \
        ("bf16", "true", "channels_last", "False", "1")
    # resnet18 is 1.82 GMACs at 224 px; at 32 px the convs scale with (32/224)^2 -> about 0.04, plus the head
    assert 0.02 < row["gmacs"] < 0.1


def test_peak_memory_sees_an_allocation():
    """A 128 MB tensor made and filled between start() and stop() shows as at least 120 MB. Measured in a fresh
    process: after hundreds of tests this process's allocator may serve the tensor from pages already resident."""
    code = ("import torch; from bench.train.timing import PeakMemory; mem = PeakMemory(torch.device('cpu')); "
            "mem.baseline(); mem.start(); x = torch.ones(32 * 2**20); print(mem.method, mem.stop())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    method, peak = out.stdout.split()[-2:]
    assert method == "cpu_rss_hwm_delta" and float(peak) >= 120, out.stderr[-2000:]


def test_fvcore_counts_one_multiply_add_as_one():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    macs = 8 * 3 * 3 * 3 * 16 * 16  # out channels * in channels * k * k * output pixels
    assert count_gmacs(conv, 16) * 1e9 == pytest.approx(macs)


def test_bf16_on_cpu_really_autocasts():
    """fastai's MixedPrecision autocasts on 'cuda' only; the harness's must autocast on the model's device."""
    from fastai.callback.core import Callback
    from bench.config import make_config
    from bench.train.learner import build_model, make_learner
    from bench.train.timing import N_CLASSES, synthetic_dls
    seen = []

    class Spy(Callback):
        order = 5  # before MixedPrecision (10) casts the prediction back to fp32

        def after_pred(self):
            seen.append((torch.is_autocast_enabled("cpu"), self.pred.dtype))

    cfg = make_config(arch="resnet18", img_size=32, batch_size=2, precision="bf16", pretrained="false")
    learn = make_learner(cfg, synthetic_dls(2, 32, 1, 1, torch.device("cpu")), build_model(cfg, N_CLASSES),
                         cbs=[Spy()])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-4)
    assert seen and all(on and dt == torch.bfloat16 for on, dt in seen)


@pytest.mark.parametrize("args, msg", [
    (["--arch", "resnet1800"], "unknown architecture"),
    (["--arch", "resnet18", "--precision", "fp8"], "precision"),
    (["--arch", "resnet18", "--size", "abc"], "img_size"),
    (["--arch", "resnet18", "--steps", "0"], "steps"),
    (["--arch", "resnet18", "--device", "cuda:0"] if not torch.cuda.is_available() else
     ["--arch", "resnet18", "--device", "tpu"], "device"),
])
def test_bad_input_is_one_line_exit_2(args, msg, capsys, results_dir):
    from bench.cli import main
    assert main(["speed", *args, "--results-dir", str(results_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1
    assert not speed_path(results_dir).exists()


def test_cli_appends_and_prints(capsys, results_dir):
    from bench.cli import main
    argv = ["speed", "--arch", "resnet18", "--size", "32", "--bs", "2", "--steps", "1", "--warmup", "0",
            "--device", "cpu", "--results-dir", str(results_dir)]
    assert main(argv) == 0 and main(argv) == 0
    out = capsys.readouterr().out
    assert "img/s" in out and len(out.splitlines()) == 2, "one line per measurement, no fastai epoch bar or table"
    assert len(read_rows(speed_path(results_dir))) == 2
