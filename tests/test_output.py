"""Output fit for logs and the fast-path choices being recorded: one line per epoch when not on a terminal, warnings
as one line, `bench list` checking names before printing, `bench run --help` describing every setting, and the
memory format that `channels_last=auto` picked written into the row."""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import fields

import pytest
import torch

from bench.cli import main
from bench.config import PROFILES, RunConfig
from bench.console import console_mode, epoch_line, quiet_libraries
from bench.files import read_rows
from bench.train.fastpath import layout_class, memory_format

EPOCH = re.compile(r"^bench: epoch (\d)/2 \(phase (\d) (frozen|unfrozen) 1/1\): train loss \d+\.\d{4}, valid loss "
                   r"\d+\.\d{4}, accuracy \d\.\d{4}, top-2 \d\.\d{4}, \d+\.\d s \(train \d+\.\d s\)$")


@pytest.mark.slow
def test_run_off_a_terminal_prints_lines_not_bars(tiny_folder, results_dir, capsys):
    argv = ["run", "--dataset", str(tiny_folder), "--results-dir", str(results_dir), "--size", "32",
            "--item-size", "32", "--bs", "8", "--epochs", "1", "--pct", "1", "--pretrained", "auto"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "\r" not in out + err and "\x1b" not in out + err, "no progress-bar redraws in a log"
    lines = err.splitlines()
    epochs = [m.groups() for m in map(EPOCH.match, lines) if m]
    assert epochs == [("1", "1", "frozen"), ("2", "2", "unfrozen")], lines
    # the auto fallback warns once, as one line, without Python's file:line and source echo
    warns = [line for line in lines if line.startswith("bench: warning: ")]
    assert len(warns) == 1 and "pretrained=auto" in warns[0] and "UserWarning" not in err
    estimates = [line for line in lines if line.startswith("bench: estimated ")]
    assert len(estimates) == 1 and "per run" in estimates[0]  # the time, known from the first batches (issue 25)
    assert len(lines) == 5, lines  # run header, warning, the estimate, two epochs: nothing else
    (row,) = read_rows(results_dir / "runs.csv")
    # 3 classes: top-5 is capped at 2, and the summary names the k really used
    assert row["top_k"] == "2" and "top-2 " in out and "top-5" not in out
    # train_img_per_s counts the training batches only: validation time is in `seconds`, not in `train_seconds`
    epoch_rows = read_rows(results_dir / row["epoch_log"])
    train_s = sum(float(r["train_seconds"]) for r in epoch_rows)
    assert all(float(r["train_seconds"]) < float(r["seconds"]) for r in epoch_rows)
    n_trained = int(row["n_train"]) * 2  # 24 training images, batch 8: no partial batch dropped, 2 epochs
    assert float(row["train_img_per_s"]) == pytest.approx(n_trained / train_s, rel=0.02)
    # the memory format auto chose on this machine is recorded next to the setting
    assert row["channels_last"] == "auto"
    assert row["memory_format"] == memory_format("auto", torch.device("cpu"), 32)
    assert row["precision"] == "fp32"


def test_console_mode_follows_the_stream(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.delenv("BENCH_CONSOLE", raising=False)
    assert console_mode(Tty()) == "bar" and console_mode(io.StringIO()) == "lines"
    monkeypatch.setenv("BENCH_CONSOLE", "off")  # what sweep workers get: the sweep prints one line per run
    assert console_mode(Tty()) == "off"


def test_epoch_line_names_phase_and_k():
    row = dict(epoch=3, phase=2, phase_epoch=1, phase_epochs=2, train_loss=0.5, valid_loss=None, accuracy=0.75,
               top_k_accuracy=1.0, seconds=12.34, train_seconds=10.0)
    assert epoch_line(row, k=3, total=4) == ("bench: epoch 3/4 (phase 2 unfrozen 1/2): train loss 0.5000, valid "
                                             "loss n/a, accuracy 0.7500, top-3 1.0000, 12.3 s (train 10.0 s)")


def test_warning_is_one_line_without_source(capsys):
    with warnings.catch_warnings():
        quiet_libraries()
        warnings.simplefilter("always")
        warnings.warn("first line\n   second line", UserWarning)
    err = capsys.readouterr().err
    assert err == "bench: warning: first line second line\n"


def test_list_rejects_unknown_timm_name_before_the_table(capsys):
    assert main(["list", "--timm", "resnet10t", "not_a_timm_model_xyz"]) == 2
    out, err = capsys.readouterr()
    assert out == "", "nothing printed before the error"
    assert err.startswith("bench: error: arch: 'not_a_timm_model_xyz' is not a timm model") and err.count("\n") == 1


def test_list_counts_come_from_the_cache_and_match(capsys, monkeypatch):
    import bench.train.archs as archs
    assert main(["list"]) == 0
    first = capsys.readouterr().out
    monkeypatch.setattr(archs, "count_params_1k", lambda spec: pytest.fail("rebuilt a model on a warm cache"))
    assert main(["list"]) == 0
    assert capsys.readouterr().out == first
    assert "25,557,032" in next(line for line in first.splitlines() if line.startswith("resnet50 "))


def _help_sections(capsys) -> dict[str, str]:
    """`bench run --help` as printed, split into its groups: title -> the group's lines."""
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    sections = {}
    for block in re.split(r"\n\s*\n", text):
        title, _, body = block.partition(":\n")
        sections[title.strip()] = body
    return sections


def test_run_help_describes_every_setting(capsys):
    sections = _help_sections(capsys)

    def squash(text) -> str:  # argparse wraps between words and after hyphens: compare without whitespace
        return re.sub(r"\s+", "", str(text))

    def entry(f) -> str:  # this field's help text, from its flag to the next flag
        body = sections[f.metadata["group"]]  # each field sits in its own group, as in RunConfig
        flag = "--" + f.name.replace("_", "-")
        start = re.search(r"^  " + re.escape(flag) + r" [A-Z_]+", body, re.M)
        assert start, f"{flag} not in the {f.metadata['group']!r} group"
        rest = body[start.end():]
        nxt = re.search(r"^  --[a-z]", rest, re.M)
        return squash(rest[:nxt.start()] if nxt else rest)

    for f in fields(RunConfig):
        assert f.metadata.get("help"), f"RunConfig.{f.name} has no help metadata"
        text = entry(f)
        assert squash(f.metadata["help"].rstrip(".")) in text, f.name
        if f.metadata.get("unit"):
            assert squash(f"in {f.metadata['unit']}") in text, f.name
        default = "auto" if f.name == "num_workers" else "none" if f.default in (None, "") else f.default
        assert squash(f"(default {str(default).lower() if isinstance(default, bool) else default}") in text, f.name
        for name, profile in PROFILES.items():  # a profile's own value is shown beside the default
            if f.name in profile:
                assert squash(f"{name}: {profile[f.name]}") in text, (f.name, name)
    assert len({f.metadata["group"] for f in fields(RunConfig)}) >= 4


@pytest.mark.parametrize("setting", ["true", "false", "auto"])
def test_memory_format_really_used_is_recorded(setting):
    """The model trains in the memory format the row says (checked on the weights inside the fit)."""
    from fastai.callback.core import Callback
    from bench.config import make_config
    from bench.train.learner import build_model, make_learner
    from bench.train.timing import N_CLASSES, synthetic_dls
    seen = []

    class Spy(Callback):
        order = 5

        def before_batch(self):
            w = next(p for p in self.learn.model.parameters() if p.ndim == 4)
            seen.append(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous())

    cfg = make_config(arch="resnet18", img_size=32, batch_size=2, channels_last=setting, pretrained="false",
                      device="cpu")
    learn = make_learner(cfg, synthetic_dls(2, 32, 1, 1, torch.device("cpu")), build_model(cfg, N_CLASSES),
                         cbs=[Spy()])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-4)
    expected = {"true": "channels_last", "false": "contiguous"}.get(setting) or memory_format("auto", "cpu", 32)
    assert learn.memory_format == expected
    assert seen and all(s == (expected == "channels_last") for s in seen)


@pytest.mark.slow
def test_sweep_log_is_one_line_per_run(tiny_folder, tmp_path, capfd):
    """Workers print nothing (no epoch lines, no warnings): the sweep says one line per finished run, no bar."""
    exp = tmp_path / "one.yaml"
    exp.write_text(f"name: one\ndataset: {tiny_folder}\nprotocol: {{img_size: 32, item_size: 32, batch_size: 8, "
                   "pct_images: 1.0, head_epochs: 1, ft_epochs: 1, pretrained: auto}\nseeds: [0]\narchs: [resnet18]\n")
    assert main(["sweep", str(exp), "--results-dir", str(tmp_path / "results")]) == 0
    out, err = capfd.readouterr()
    lines = err.splitlines()
    assert out == "" and "\r" not in err  # every line on stderr, as the sweep's start and end lines
    assert [line.split(":")[0] for line in lines] == ["bench"] * 4, lines  # start, time estimate, run, end
    assert sum(line.startswith("bench: estimated ") for line in lines) == 1, lines
    run_lines = [line for line in lines if line.startswith("bench: ok ")]
    assert len(run_lines) == 1 and "weights random" in run_lines[0], lines


def test_cuda_gets_workers_pinned_memory_and_channels_last():
    """Without a GPU here, the CUDA choices are checked as data: what auto resolves to on each device class."""
    from fastcore.basics import defaults
    from bench.data.loaders import loader_kwargs
    assert loader_kwargs(None, torch.device("cuda")) == dict(num_workers=min(16, defaults.cpus), pin_memory=True)
    assert loader_kwargs(None, torch.device("cpu")) == dict(num_workers=0, pin_memory=False)
    assert loader_kwargs(3, "cuda:1") == dict(num_workers=3, pin_memory=True)  # an explicit count is kept
    cap = torch.backends.cpu.get_cpu_capability()
    assert memory_format("auto", torch.device("cuda:0"), 32) == "channels_last"
    assert memory_format("false", torch.device("cuda:0"), 224) == "contiguous"
    # on an AVX-512 CPU from 128 px on (measured faster there), never on other CPUs (not measured faster)
    assert memory_format("auto", torch.device("cpu"), 64) == "contiguous"
    assert memory_format("auto", torch.device("cpu"), 224) == ("channels_last" if cap.startswith("AVX512") else
                                                               "contiguous")
    assert layout_class(torch.device("cpu")) == ("cpu-avx512" if cap.startswith("AVX512") else "cpu")
