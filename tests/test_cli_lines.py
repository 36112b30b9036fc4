"""One helper for "failed after being recorded" (`bench run` and `bench speed`), and parameter counts that say which
head they count."""
from __future__ import annotations

import pytest

from bench.config import ConfigError


def test_recorded_failure_is_one_line_and_exit_1(capsys):
    from bench.console import recorded_or_exit

    def boom():
        raise RuntimeError("out of memory\nsecond line of the traceback text")
    assert recorded_or_exit("speed resnet18", "results/speed.csv", boom) == (None, 1)
    assert capsys.readouterr().err == ("bench: speed resnet18 failed: RuntimeError: out of memory "
                                       "(recorded in results/speed.csv)\n")
    assert recorded_or_exit("run x", "r.csv", lambda: {"ok": 1}) == ({"ok": 1}, 0)
    with pytest.raises(ConfigError):  # bad input is exit 2 in main(), not a recorded failure
        recorded_or_exit("run x", "r.csv", lambda: (_ for _ in ()).throw(ConfigError("bad")))
    assert capsys.readouterr().err == ""


def test_speed_line_counts_the_library_model_as_list_does_and_labels_both():
    from bench.train.speed import format_row
    row = dict(arch="seresnet10", img_size=32, batch_size=2, precision="fp32", memory_format="contiguous",
               compile=False, device="cpu", threads=1, train_img_s=10.0, infer_img_s=20.0, params=6_012_345,
               params_1k=5_463_332, gmacs="", mem_method="cpu_rss_hwm_delta", peak_mem_mb=100.0)
    line = format_row(row)
    assert "5.5 M params (library's 1000-class model, as `bench list`; 6.0 M as timed, with bench's head)" in line


def test_list_header_names_the_head_it_counts(capsys):
    from bench.cli import main
    assert main(["list"]) == 0
    assert "params (library 1k)" in capsys.readouterr().out.splitlines()[0]
