"""`bench check`: the dataset's facts and baseline, the measured time per run and the settings that fit a budget;
and the run's own estimate line."""
from __future__ import annotations

import pytest

from bench.config import ConfigError, make_config
from bench.train.budget import fit_budget, item_for, parse_budget
from bench.train.estimate import RunCost, duration
from conftest import make_image_folder, tiny_config


def _unbalanced(root, sizes=(30, 10, 5)):
    """Three classes of 30, 10 and 5 images; the first also holds a corrupt file and an exact copy of an image."""
    for c, n in enumerate(sizes):
        make_image_folder(root / f"tmp{c}", n_classes=1, per_class=n, seed=c)
        (root / f"tmp{c}" / "class_0").rename(root / f"c{c}")
        (root / f"tmp{c}").rmdir()
    (root / "c0" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "c0" / "copy.png").write_bytes((root / "c0" / "img_000.png").read_bytes())
    return root


def test_parse_budget():
    assert [parse_budget(t) for t in ("10min", "90s", "1.5h", "10", "2 minutes")] == [600, 90, 5400, 600, 120]
    for bad in ("soon", "-3min", "0", "10 parsecs"):
        with pytest.raises(ConfigError, match="--budget"):
            parse_budget(bad)


def test_duration_words():
    assert [duration(s) for s in (45, 200, 26 * 60, 3 * 3600 + 300)] == ["45 s", "3 min 20 s", "26 min", "3 h 05 min"]


def test_budget_shrinks_the_batch_size_first_then_the_epochs():
    cfg = make_config(arch="resnet18")  # blog: 224 px, 512 px items, 10+10 epochs
    cost = RunCost(frozen=8.0, unfrozen=10.0, valid=3.0, train_batches=8, valid_batches=3, setup=5)
    assert cost.run(10, 10) == pytest.approx(5 + 10 * (64 + 9) + 10 * (80 + 9))  # the issue's ~26 min run
    fit = fit_budget(cfg, cost, 600, short_side=300)
    assert (fit.head_epochs, fit.ft_epochs, fit.pct_images) == (10, 10, 0)  # the protocol's epochs kept
    assert fit.img_size < 224 and fit.seconds <= 600 and fit.item_size == item_for(fit.img_size, 512, 300)
    tight = fit_budget(cfg, cost, 60, short_side=300)  # not even 64 px fits 10+10 epochs: fewer epochs
    assert tight.img_size == 64 and tight.head_epochs + tight.ft_epochs < 20 and tight.seconds <= 60
    assert "--size 64" in tight.flags() and "SIZE=64" in tight.make_vars()


def test_item_size_follows_the_batch_and_the_images():
    assert item_for(64, 512, 300) == 96        # the user settled on 64 / 96 by trial
    assert item_for(128, 512, 100) == 128      # never below the batch size
    assert item_for(224, 256, 1000) == 256     # never above the configured item size


def test_facts_baseline_and_nothing_written(tmp_path, monkeypatch):
    from bench.train.check import facts, split_facts, summary
    root = _unbalanced(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    cfg = make_config(arch="resnet18", dataset=str(root), pct_images=1.0, batch_size=4, pretrained="false")
    check, ds = facts(cfg)
    prepared = split_facts(check, ds, cfg)
    assert prepared is not None and not check.split_error
    assert list(check.counts) == [31, 10, 5] and check.imbalance == pytest.approx(31 / 5)
    valid = prepared.items[prepared.items["is_valid"]]
    label, share = check.majority
    assert label == "c0" and share == pytest.approx((valid["label"] == "c0").mean())
    text = "\n".join(summary(check))
    assert "c0/broken.png" in text and "c0/img_000.png: same bytes as c0/copy.png" in text
    assert f"always predicting it scores {share:.1%}" in text and "unbalanced" in text
    assert "24x24 (46)" in text
    assert not (tmp_path / "results").exists()


def test_a_dataset_that_cannot_be_split_says_why_after_its_counts(tmp_path, capsys):
    from bench.cli import main
    root = _unbalanced(tmp_path / "data", sizes=(12, 12, 1))
    assert main(["check", str(root), "--no-time", "--results-dir", str(tmp_path / "results")]) == 2
    out, err = capsys.readouterr()
    assert "c2" in out and "class 'c2' has 1 distinct image" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_check_times_batches_and_suggests_settings_for_a_budget(tmp_path, capsys):
    from bench.cli import main
    root = make_image_folder(tmp_path / "data", per_class=20, size=48)
    args = ["check", str(root), "--pretrained", "false", "--size", "32", "--item-size", "48", "--bs", "4",
            "--pct", "1", "--results-dir", str(tmp_path / "results")]
    assert main(args + ["--budget", "1s"]) == 0
    out = capsys.readouterr().out
    assert "a batch:" in out and "an epoch:" in out and "a run: about" in out
    assert "--budget 1 s:" in out and "make bench DATASET=" in out  # 1 s fits nothing as it is: a suggestion
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_a_run_says_its_estimated_time_from_its_first_batches(tiny_folder, results_dir, capsys):
    from bench.train.protocol import run
    run(tiny_config(tiny_folder, results_dir, batch_size=4))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("bench: estimated")]
    assert len(lines) == 1 and "per run (1+1 epochs of 6 training + 2 validation batches" in lines[0]


def test_the_plan_line_scales_the_first_runs_estimate():
    from bench.sweep.eta import plan_line
    line = plan_line(70, "resnet18 seed 0 fold 0", runs=15, slots=2)
    assert line.startswith("bench: estimated 70 s per run (resnet18 seed 0 fold 0")
    assert "the plan's 15 runs, 2 at a time: about 9 min 20 s" in line  # 8 waves of 70 s
    race = plan_line(60, "x", runs=6, slots=2, whole=150)
    assert "the race's at most 150 runs" in race and "at most 75 min" in race


def test_the_sweep_shows_the_first_estimate_a_quiet_worker_leaves(monkeypatch):
    import json
    import time
    from bench.sweep import eta
    monkeypatch.setattr(eta, "_told", [False])
    said, jobs = [], [{"run_id": f"r{i}", "env": {"BENCH_X": "1"}} for i in range(4)]
    with eta.PlanEstimate(jobs, 2, said.append, {"r1": "lite0 seed 1 fold 0"}) as watch:
        folder = jobs[0]["env"][eta.ESTIMATES_ENV]
        assert all(j["env"] == {"BENCH_X": "1", eta.ESTIMATES_ENV: folder} for j in jobs)
        (watch.folder / "r1.json").write_text(json.dumps({"run_id": "r1", "seconds": 30}))
        for _ in range(40):
            if said:
                break
            time.sleep(0.1)
    assert said == ["bench: estimated 30 s per run (lite0 seed 1 fold 0, from its first batches); the plan's 4 runs, "
                    "2 at a time: about 60 s"]
    assert not watch.folder.exists()
    with eta.PlanEstimate(jobs, 2, said.append, {}) as again:  # said once per driver (a race's rounds)
        assert again.folder is None


@pytest.mark.slow
def test_a_sweep_prints_the_plans_estimate_from_its_first_run(tmp_path, capsys, monkeypatch):
    from bench.cli import main
    from bench.sweep import eta
    from test_sweep import write_exp
    monkeypatch.setattr(eta, "_told", [False])
    data = make_image_folder(tmp_path / "data", per_class=12)
    exp = write_exp(tmp_path / "two.yaml", data, seeds=(0, 1))
    assert main(["sweep", str(exp), "--results-dir", str(tmp_path / "results"), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("bench: estimated") == 1 and "the plan's 2 runs, 1 at a time: about" in err


def test_progress_is_lines_off_a_terminal_and_nothing_in_a_quiet_worker(monkeypatch, capsys):
    from bench.console import progress
    monkeypatch.setenv("BENCH_CONSOLE", "lines")
    assert list(progress(range(3), 3, "bench: scanning x", every=0)) == [0, 1, 2]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("bench: scanning x: 1 of 3 (33%") and err[-1].startswith("bench: scanning x: 3 of 3 done")
    monkeypatch.setenv("BENCH_CONSOLE", "off")
    assert list(progress(range(3), 3, "bench: scanning x", every=0)) == [0, 1, 2]
    assert capsys.readouterr().err == ""
