"""Experiment files, and sweeps that survive crashes, SIGKILL, concurrent sweeps and run on Ray."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.config import ConfigError
from bench.sweep.experiment import load_experiment
from conftest import make_image_folder

ROOT = Path(__file__).resolve().parents[1]
TINY = {"img_size": 32, "item_size": 32, "batch_size": 8, "head_epochs": 0, "ft_epochs": 1,
        "pretrained": "false", "n_folds": 3}


def write_exp(path: Path, dataset, archs=("resnet18",), seeds=(0,), **extra) -> Path:
    import yaml
    doc = {"dataset": str(dataset), "profile": "quick", "protocol": dict(TINY), "archs": list(archs),
           "seeds": list(seeds), **extra}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def index_rows(results: Path) -> list[dict]:
    """The index, checked line by line: a complete header and every line whole (a torn write fails here)."""
    text = (results / "runs.csv").read_text()
    assert text.endswith("\n")
    lines = list(csv.reader(text.splitlines()))
    assert all(len(line) == len(lines[0]) for line in lines[1:]), "a row with the wrong number of fields"
    return [dict(zip(lines[0], line)) for line in lines[1:]]


# --- experiment files (no training)
def test_expands_every_arch_seed_and_fold(tmp_path):
    exp = load_experiment(write_exp(tmp_path / "grid.yaml", "digits", archs=["resnet18", {"resnet34": {"bs": 62}}],
                                    seeds=[0, 1], folds=3), results_dir=str(tmp_path / "r"))
    cfgs = exp.configs
    assert exp.name == "grid" and len(cfgs) == 2 * 2 * 3
    assert {(c.arch, c.seed, c.fold) for c in cfgs} == {(a, s, f) for a in ("resnet18", "resnet34")
                                                       for s in (0, 1) for f in range(3)}
    assert all(c.n_folds == 3 and c.experiment == "grid" and c.results_dir == str(tmp_path / "r") for c in cfgs)
    assert {c.batch_size for c in cfgs if c.arch == "resnet34"} == {62}
    assert {c.batch_size for c in cfgs if c.arch == "resnet18"} == {8}
    # command-line settings win over the file, including per-arch overrides
    over = load_experiment(tmp_path / "grid.yaml", dataset="other", overrides={"batch_size": "16"})
    assert {c.batch_size for c in over.configs} == {16} and {c.dataset for c in over.configs} == {"other"}
    # a list of folds keeps the protocol's n_folds
    assert [c.fold for c in load_experiment(write_exp(tmp_path / "f.yaml", "digits", folds=[2])).configs] == [2]


@pytest.mark.parametrize("doc, key", [
    ("seed: [1]\narchs: [resnet18]", "'seed'"),                                   # misspelt top-level key
    ("archs: [resnet18]\nseeds: one", "seeds"),                                  # wrong type
    ("archs: [resnet18]\nprotocol: {bacth_size: 8}", "bacth_size"),              # misspelt protocol key
    ("archs: [resnet18]\nprotocol: {batch_size: big}", "batch_size"),            # wrong protocol type
    ("archs: [resnet18, {seresnet152: {batch_size: 6.5}}]", "batch_size"),       # wrong per-arch type
    ("archs: [resnet18, {seresnet152: {seed: 1}}]", "seed"),                     # set through its own key
    ("archs: [resnet181]", "resnet181"),                                         # unknown architecture
    ("archs: []", "archs"),
    ("archs: [resnet18]\nfolds: 1", "folds"),
    ("archs: [resnet18]\nfolds: [0, 7]", "fold"),                                # beyond n_folds
    ("archs: [resnet18]\nprofile: fast", "profile"),
    ("archs: [resnet18\n", "YAML"),
])
def test_bad_experiment_file_is_one_error_naming_file_and_key(tmp_path, doc, key):
    path = tmp_path / "bad.yaml"
    path.write_text(doc)
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    assert str(path) in str(e.value) and key in str(e.value)


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    from bench.cli import main
    path = tmp_path / "bad.yaml"
    path.write_text("archs: [resnet18]\nprotocol: {img_sise: 64}\n")
    assert main(["sweep", str(path), "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "img_sise" in err and "bad.yaml" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert main(["sweep", str(path), "--set", "nonsense"]) == 2
    assert not (tmp_path / "r").exists()  # nothing written before the input is valid


def test_shipped_experiments():
    import pandas as pd
    from bench.train.archs import REGISTRY
    blog = load_experiment(ROOT / "experiments" / "blog.yaml", dataset="/data/plants")
    article = pd.read_csv(ROOT / "bench" / "report" / "reference" / "blog_results.csv")  # the article's own runs
    assert {c.arch for c in blog.configs} == set(article.arch)
    assert all(c.dataset == "/data/plants" and c.img_size in set(article.img_size) and c.head_epochs == 10
               for c in blog.configs)
    race = load_experiment(ROOT / "experiments" / "race.yaml")  # the race validation's matrix
    assert len(race.labels) >= 6 and len(race.instances) == 25 and any(a.startswith("timm:") for a in race.labels)
    from bench.train.archs import get_arch
    quick = load_experiment(ROOT / "experiments" / "quick.yaml")
    runs = Counter(c.arch for c in quick.configs)
    families = [get_arch(a).family for a in runs]
    # one architecture per family, timm's included; resnext/seresnext left out to fit 5 minutes (docs/benchmarks.md);
    # 3 seeds each, so the report can tell a difference from seed noise
    assert len(families) == len(set(families)) and set(families) == \
        {s.family for s in REGISTRY.values()} - {"resnext", "seresnext"} | {"timm"}
    assert set(runs.values()) == {3}
    assert all(c.dataset == "digits" and c.img_size == 32 and c.pretrained == "false" for c in quick.configs)


# --- sweeps (train tiny models in worker processes)
SITECUSTOMIZE = """
import os, signal
import bench.train.learner as learner
_build = learner.build_model
def build_model(cfg, *a, **k):
    if cfg.seed == 0:
        os.kill(os.getpid(), signal.SIGSEGV)
    if cfg.seed == 1:
        raise RuntimeError("injected failure")
    return _build(cfg, *a, **k)
learner.build_model = build_model
"""


@pytest.mark.slow
def test_crashing_runs_become_failed_rows_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    # Faults are injected into the worker processes only, through a sitecustomize on their path.
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "inject"), str(ROOT)]))
    exp = write_exp(tmp_path / "crash.yaml", make_image_folder(tmp_path / "data"), seeds=[0, 1, 2])
    results = tmp_path / "results"
    assert main(["sweep", str(exp), "--results-dir", str(results)]) == 1
    rows = {r["seed"]: r for r in index_rows(results)}
    assert len(rows) == 3
    assert rows["0"]["status"] == "failed" and "SIGSEGV" in rows["0"]["error"]
    assert rows["1"]["status"] == "failed" and "injected failure" in rows["1"]["error"]
    assert rows["2"]["status"] == "ok" and float(rows["2"]["final_accuracy"]) >= 0
    assert rows["0"]["run_id"] != rows["1"]["run_id"] and all(rows[s]["experiment"] == "crash" for s in rows)
    capsys.readouterr()
    # failed runs are retried by a restart unless told otherwise; ok runs never are
    assert main(["sweep", str(exp), "--results-dir", str(results), "--dry-run"]) == 0
    listed = capsys.readouterr().out.split()
    assert rows["0"]["run_id"] in listed and rows["1"]["run_id"] in listed and rows["2"]["run_id"] not in listed
    assert main(["sweep", str(exp), "--results-dir", str(results), "--dry-run", "--skip-failed"]) == 0
    assert capsys.readouterr().out.strip() == ""


def _sweep_cmd(exp: Path, results: Path) -> list[str]:
    return [sys.executable, "-m", "bench", "sweep", str(exp), "--results-dir", str(results)]


@pytest.mark.slow
def test_sigkilled_sweep_restarts_to_every_run_exactly_once_even_with_two_sweeps(tmp_path):
    exp = write_exp(tmp_path / "kill.yaml", make_image_folder(tmp_path / "data"), seeds=[0, 1, 2])
    results = tmp_path / "results"
    first = subprocess.Popen(_sweep_cmd(exp, results), cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill the whole process group (sweep, pool server, runs) once a run has finished and another is under way.
    deadline = time.monotonic() + 300
    index = results / "runs.csv"
    while time.monotonic() < deadline and first.poll() is None:
        # a claim file exists only while its run is held (bench.files.TidyFileLock): one run recorded, another held
        claims = list((results / "claims").glob("*.lock")) if (results / "claims").exists() else []
        oks = sum(r["status"] == "ok" for r in index_rows(results)) if index.exists() else 0
        if claims and 1 <= oks < 3:
            break
        time.sleep(0.2)
    assert first.poll() is None, "the sweep ended before it could be killed"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = [r for r in index_rows(results) if r["status"] == "ok"]
    assert 1 <= len(done_before) < 3

    # Restart as two concurrent sweeps on the same results directory: they share the remaining runs.
    procs = [subprocess.Popen(_sweep_cmd(exp, results), cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    rows = index_rows(results)
    ok = Counter(r["run_id"] for r in rows if r["status"] == "ok")
    assert len(ok) == 3 and set(ok.values()) == {1}, ok
    assert {r["seed"] for r in rows if r["status"] == "ok"} == {"0", "1", "2"}
    assert all(r["run_id"] in ok for r in rows)
    # the runs finished before the kill were not run again
    assert {r["attempt"] for r in done_before} <= {r["attempt"] for r in rows if r["status"] == "ok"}


@pytest.mark.slow
def test_ray_sweep_with_two_workers(tmp_path):
    import ray  # noqa: F401  (a test dependency: a missing ray fails here rather than skipping)
    from bench.cli import main
    exp = write_exp(tmp_path / "ray.yaml", make_image_folder(tmp_path / "data"), seeds=[0, 1])
    results = tmp_path / "results"
    assert main(["sweep", str(exp), "--executor", "ray", "--workers", "2", "--results-dir", str(results)]) == 0
    rows = index_rows(results)
    assert sorted(r["seed"] for r in rows) == ["0", "1"] and {r["status"] for r in rows} == {"ok"}
    from bench.report.outcomes import read_outcomes  # the workers' per-image outcomes reached the driver's folder
    assert all(len(read_outcomes(results, r)) == int(r["n_valid"]) for r in rows)
    # the same sweep again, locally: everything is already done, nothing runs
    assert main(["sweep", str(exp), "--results-dir", str(results)]) == 0
    assert len(index_rows(results)) == 2


# --- dry runs, reserved settings, named datasets, interruptions, random-init fallbacks (no sweep processes)
def _dry_run_json(capsys, *args) -> list[dict]:
    import json
    from bench.cli import main
    capsys.readouterr()
    assert main(["sweep", *args, "--dry-run", "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_dry_run_json_lists_every_run_and_writes_nothing(tmp_path, capsys):
    from dataclasses import fields
    from bench.config import RunConfig, make_config
    from bench.train.prepare import Resolver
    exp = write_exp(tmp_path / "dry.yaml", make_image_folder(tmp_path / "data"), archs=["resnet18", "xresnet18"],
                    seeds=[0, 1])
    results = tmp_path / "fresh"
    runs = _dry_run_json(capsys, str(exp), "--results-dir", str(results))
    assert not results.exists()  # no results folder, scan report or split file
    assert len(runs) == 4 and {r["status"] for r in runs} == {"planned"} and all(r["will_run"] for r in runs)
    assert {(r["config"]["arch"], r["config"]["seed"]) for r in runs} == {(a, s) for a in ("resnet18", "xresnet18")
                                                                         for s in (0, 1)}
    assert all(set(r["config"]) == {f.name for f in fields(RunConfig)} for r in runs)
    assert all(r["config"]["img_size"] == 32 and r["config"]["n_folds"] == 3 for r in runs)
    # the ids a dry run shows are the ids the runs get once the split is saved, and a saved split is read back
    cfg = make_config(**runs[0]["config"])
    assert Resolver().prepare(cfg).run_id == runs[0]["run_id"]
    saved = sorted(p.name for p in results.rglob("*"))
    assert [r["run_id"] for r in _dry_run_json(capsys, str(exp), "--results-dir", str(results))] == \
        [r["run_id"] for r in runs]
    assert sorted(p.name for p in results.rglob("*")) == saved


@pytest.mark.parametrize("key, hint", [("seed", "seeds:"), ("fold", "folds:"), ("arch", "archs:"),
                                       ("profile", "profile:"), ("dataset", "--dataset"), ("experiment", "name:")])
def test_set_of_a_sweep_key_names_the_file_key_or_flag(tmp_path, capsys, key, hint):
    from bench.cli import main
    exp = write_exp(tmp_path / "s.yaml", "digits")
    assert main(["sweep", str(exp), "--set", f"{key}=3", "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"--set {key}" in err and hint in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_profile_inside_protocol_is_a_clear_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("archs: [resnet18]\nprotocol: {profile: quick}\n")
    with pytest.raises(ConfigError, match="'profile' cannot be set here; use the top-level `profile:` key"):
        load_experiment(path)


def test_sweeps_resolve_a_named_dataset_as_bench_run_does(tmp_path, monkeypatch):
    from bench.cli import build_parser, config_from_args
    (tmp_path / "datasets.yaml").write_text(f"mine:\n  source: {make_image_folder(tmp_path / 'data')}\n"
                                            "  size: 48\n  profile: quick\n")
    monkeypatch.setenv("BENCH_DATASETS", str(tmp_path / "datasets.yaml"))
    for dataset, profile in [("digits", None), ("mine", None), ("digits", "blog"), ("mine", "blog")]:
        path = tmp_path / "n.yaml"
        path.write_text(f"dataset: {dataset}\narchs: [resnet18]\n" + (f"profile: {profile}\n" if profile else ""))
        swept = load_experiment(path).configs[0]
        ran = config_from_args(build_parser("run").parse_args(
            ["run", "--dataset", dataset, "--seed", str(swept.seed)] + (["--profile", profile] if profile else [])))
        assert swept.replace(experiment="") == ran, (dataset, profile)
    assert load_experiment(tmp_path / "n.yaml", dataset="digits").configs[0].img_size == 224  # the file's blog
    path.write_text("dataset: digits\narchs: [resnet18]\n")
    quick = load_experiment(path).configs[0]  # digits without a profile: quick, as `bench run` (was 224 px, 10+10)
    assert (quick.img_size, quick.head_epochs, quick.pct_images) == (32, 1, 1.0)
    assert load_experiment(path, dataset="mine").configs[0].img_size == 48


def test_ctrl_c_is_recorded_as_interrupted_and_a_restart_runs_it_again(tmp_path, monkeypatch):
    import bench.train.protocol as protocol
    from bench.sweep.plan import plan
    from conftest import tiny_config

    def stop(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(protocol, "fit_two_phase", stop)
    cfg = tiny_config(make_image_folder(tmp_path / "data"), tmp_path / "results", threads=1)  # the plan's policy
    with pytest.raises(KeyboardInterrupt):
        protocol.run(cfg)
    rows = index_rows(tmp_path / "results")
    assert [r["status"] for r in rows] == ["interrupted"] and rows[0]["error"] == "KeyboardInterrupt"
    p = plan([cfg], skip_failed=True)  # not a failure: re-run even when failed runs are skipped
    assert [j["run_id"] for j in p.jobs] == [rows[0]["run_id"]] and p.failed == []
    assert p.runs[0]["status"] == "planned" and p.runs[0]["note"] == "interrupted before"


@pytest.mark.slow
def test_the_weights_really_loaded_are_the_run_identity(tmp_path, monkeypatch):
    """pretrained=auto with no weights to be had is the pretrained=false run (one id, one set of numbers); once the
    weights are cached, auto names another run, which the plan and the worker both see as not done."""
    import torch
    from bench.sweep.plan import plan
    from bench.sweep.worker import is_done
    from bench.train.archs import get_arch
    from bench.train.protocol import run
    from bench.train.weights import CACHES
    from conftest import tiny_config
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # a cache of this test's own
    # threads=1: the sweep's thread policy, so `run` here makes the run the plan names
    cfg = tiny_config(make_image_folder(tmp_path / "data"), tmp_path / "results", pretrained="auto", threads=1)
    with pytest.warns(UserWarning, match="random init"):
        row = run(cfg)
    assert row["status"] == "ok" and row["weights_used"] == "random"
    assert plan([cfg]).done == [row["run_id"]] == plan([cfg.replace(pretrained="false")]).done
    spec = get_arch("resnet18")
    path = CACHES[spec.source][0](spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(spec.build(False).state_dict(), path)
    p = plan([cfg])
    assert len(p.jobs) == 1 and p.jobs[0]["run_id"] != row["run_id"] and p.done == []
    assert p.jobs[0]["identity"]["weights"] == "torchvision:IMAGENET1K_V1"
    job = p.jobs[0]
    assert not is_done(job)
    again = run(cfg)
    assert again["weights_used"].endswith("(cache)") and again["run_id"] == job["run_id"] and is_done(job)
    assert plan([cfg]).done == [job["run_id"]] and plan([cfg.replace(pretrained="true")]).done == [job["run_id"]]
