"""The worker pool: runs isolated from each other in one long-lived server, crashes and a killed server contained,
BENCH_DEBUG tracebacks, preparation failures recorded with their message, and the sweep package free of import
cycles."""
from __future__ import annotations

import ast
import csv
import os
import signal
import threading
from pathlib import Path

import pytest

from conftest import make_image_folder, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def rows(results: Path) -> list[dict]:
    with open(results / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def epochs(results: Path, row: dict) -> list[dict]:
    with open(results / row["epoch_log"], newline="") as f:
        return [{k: v for k, v in r.items() if "seconds" not in k and k not in ("attempt", "timestamp")}
                for r in csv.DictReader(f)]


def job_for(cfg) -> dict:
    from bench.sweep.plan import plan
    return plan([cfg]).jobs[0]


NUMBERS = ("final_accuracy", "final_valid_loss", "final_top_k", "best_accuracy", "threads", "n_train", "n_valid")


@pytest.mark.slow
def test_a_run_gives_the_same_numbers_first_or_after_another_run_in_one_worker(tmp_path):
    from bench.sweep.pool import Pool
    data = make_image_folder(tmp_path / "data")
    first, later = tmp_path / "first", tmp_path / "later"
    x = tiny_config(data, first, seed=3)
    other = tiny_config(data, later, seed=4, arch="xresnet18", batch_size=4, threads=1)
    pool = Pool()
    try:
        pool.submit("x", job_for(x))
        assert pool.wait("x") == 0
        server = pool.proc.pid
        # another run before it, in the same server, that leaves different settings behind if state leaked:
        # another arch, seed and batch size, and one torch thread instead of the default
        pool.submit("other", job_for(other))
        assert pool.wait("other") == 0
        pool.submit("x", job_for(x.replace(results_dir=str(later))))
        assert pool.wait("x") == 0
        assert pool.proc.pid == server  # one worker served all three
    finally:
        pool.close()
    a, b = rows(first)[0], [r for r in rows(later) if r["seed"] == "3"][0]
    assert a["status"] == b["status"] == "ok" and a["run_id"] == b["run_id"]
    assert rows(later)[0]["threads"] == "1" and {k: a[k] for k in NUMBERS} == {k: b[k] for k in NUMBERS}
    assert epochs(first, a) == epochs(later, b) and len(epochs(first, a)) == 2


INJECT = """
import os, signal
import bench.train.learner as learner
_build = learner.build_model
def build_model(cfg, *a, **k):
    if cfg.seed == 0:
        os.kill(os.getpid(), signal.SIGSEGV)
    return _build(cfg, *a, **k)
learner.build_model = build_model
"""


@pytest.mark.slow
def test_a_segfault_ends_its_run_alone_and_the_same_server_runs_the_next(tmp_path, monkeypatch):
    from bench.sweep.executors import run_local
    from bench.sweep.plan import plan
    from bench.sweep.pool import shared_pool
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(INJECT)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "inject"), str(ROOT)]))
    data, results = make_image_folder(tmp_path / "data"), tmp_path / "results"
    p = plan([tiny_config(data, results, seed=s) for s in (0, 1)])
    outs, servers = [], set()

    def report(out):
        outs.append(out)
        servers.add(shared_pool().proc.pid)
    run_local(p.jobs, report, workers=1)
    by_seed = {r["seed"]: r for r in rows(results)}
    assert by_seed["0"]["status"] == "failed" and "SIGSEGV" in by_seed["0"]["error"]
    assert by_seed["1"]["status"] == "ok" and len(servers) == 1 and len(outs) == 2


@pytest.mark.slow
def test_a_killed_server_loses_no_run_and_is_started_again(tmp_path):
    from bench.sweep.executors import run_local
    from bench.sweep.plan import plan
    from bench.sweep.pool import shared_pool
    data, results = make_image_folder(tmp_path / "data"), tmp_path / "results"
    p = plan([tiny_config(data, results, seed=s) for s in (0, 1)])
    pool, killed = shared_pool(), []

    def kill_server_mid_run():
        while not killed:
            if pool.proc is not None and any(pid for pid in list(pool.in_flight.values())):
                killed.append(pool.proc.pid)
                os.kill(pool.proc.pid, signal.SIGKILL)
            threading.Event().wait(0.05)
    threading.Thread(target=kill_server_mid_run, daemon=True).start()
    outs = []
    run_local(p.jobs, outs.append, workers=1)
    # the orphaned run finished and recorded itself; the next run got a new server
    assert killed and [o["status"] for o in outs] == ["ok", "ok"] and pool.proc.pid != killed[0]
    assert sorted((r["seed"], r["status"]) for r in rows(results)) == [("0", "ok"), ("1", "ok")]


@pytest.mark.slow
def test_the_server_launched_before_planning_serves_the_runs(tmp_path, monkeypatch):
    """`bench sweep` and `bench race` launch the server before they plan, so that its imports overlap the plan's;
    planning then changes this process's environment (here a dataset note remembered in BENCH_TOLD; in a fresh
    driver also the KMP_* torch's import sets): the runs must still go to the server already launched."""
    import shutil
    from bench.sweep.executors import run_local, start_early
    from bench.sweep.plan import plan
    from bench.sweep.pool import shared_pool
    monkeypatch.setenv("BENCH_TOLD", "")
    data, results = make_image_folder(tmp_path / "data"), tmp_path / "results"
    shutil.copy(data / "class_0" / "img_000.png", data / "class_0" / "copy.png")  # an exact duplicate: a note
    start_early("local")
    launched = shared_pool().proc.pid
    p = plan([tiny_config(data, results, seed=s) for s in (0, 1)])
    assert os.environ["BENCH_TOLD"]  # the note was said while the server imported
    servers = []
    run_local(p.jobs, lambda out: servers.append((out["status"], shared_pool().proc.pid)), workers=1)
    assert servers == [("ok", launched), ("ok", launched)]


@pytest.mark.slow
def test_a_preparation_failure_records_its_message_and_bench_debug_shows_the_traceback(tmp_path, monkeypatch,
                                                                                      capfd):
    from bench.sweep.executors import run_local
    monkeypatch.setenv("BENCH_DEBUG", "1")  # raised RecursionError in the worker, recorded as "WorkerDied"
    data, results = make_image_folder(tmp_path / "data"), tmp_path / "results"
    job = {**job_for(tiny_config(data, results)), "run_id": "0123456789ab"}  # not what this node resolves
    outs = []
    run_local([job], outs.append, workers=1)
    assert [o["status"] for o in outs] == ["failed"]
    (row,) = rows(results)
    assert row["error"].startswith("RuntimeError: run id is") and "0123456789ab" in row["error"]
    err = capfd.readouterr().err
    assert "Traceback" in err and "RecursionError" not in err


def sweep_imports() -> dict[str, set[str]]:
    """Which bench.sweep modules each bench.sweep module imports, at module level or inside functions."""
    graph = {}
    for path in (ROOT / "bench" / "sweep").glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                deps.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update(a.name for a in node.names)
        graph[path.stem] = deps
    return graph


def test_the_sweep_package_has_no_import_cycle():
    graph, state = sweep_imports(), {}

    def visit(mod, path):
        state[mod] = "open"
        for dep in graph.get(mod, ()):
            assert state.get(dep) != "open", " -> ".join(path + [dep])
            if dep not in state:
                visit(dep, path + [dep])
        state[mod] = "closed"
    for mod in graph:
        if mod not in state:
            visit(mod, [mod])


def test_a_sweep_and_a_race_of_one_file_plan_the_same_runs_on_either_executor(tmp_path):
    import yaml
    from bench.cli import build_parser
    from bench.sweep.commands import _executor_kw
    from bench.sweep.experiment import load_experiment
    from bench.sweep.plan import plan
    exp = tmp_path / "q.yaml"
    exp.write_text(yaml.safe_dump({"dataset": str(make_image_folder(tmp_path / "data")), "profile": "quick",
                                   "protocol": {"batch_size": 8}, "archs": ["resnet18", "xresnet18"],
                                   "seeds": [0, 1], "folds": [0]}))
    results = str(tmp_path / "r")
    ids = {}
    for argv in (["sweep", str(exp)], ["sweep", str(exp), "--executor", "ray"], ["race", str(exp)]):
        kw = _executor_kw(build_parser().parse_args(argv + ["--results-dir", results]))
        loaded = load_experiment(exp, results_dir=results, **({"folds": [0], "all_folds": True}
                                                               if argv[0] == "race" else {}))
        p = plan(loaded.configs, write=False, threads=kw.get("cpus_per_task"))
        assert {j["config"]["threads"] for j in p.jobs} == {1}  # the policy: one torch thread per run
        ids[" ".join(argv[2:]) or argv[0]] = sorted(p.ids)
    assert len(ids) == 3 and len(set(map(tuple, ids.values()))) == 1 and len(ids["sweep"]) == 4
