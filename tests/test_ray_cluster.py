"""A sweep on a real two-node Ray cluster (ray.cluster_utils.Cluster, one CPU per node) whose worker processes run
in a folder without the results folder: every row comes back to the driver, which writes it once."""
from __future__ import annotations

import csv
import io
import os
from collections import Counter
from pathlib import Path

import pytest

from conftest import make_image_folder

TINY = {"img_size": 32, "item_size": 32, "batch_size": 8, "head_epochs": 1, "ft_epochs": 1, "pretrained": "false",
        "n_folds": 3}


def rows(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n")
    return list(csv.DictReader(io.StringIO(text)))


OTHER_CPU = "Simulated Xeon of another node"


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """Two Ray nodes started from `node/`, so that is their worker processes' working directory; the second says it
    has another CPU (BENCH_CPU_MODEL), as a node of another instance type would (issue 23: done is done anywhere)."""
    import ray
    from ray.cluster_utils import Cluster
    node = tmp_path / "node"
    node.mkdir()
    monkeypatch.chdir(node)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1, env_vars={"BENCH_CPU_MODEL": OTHER_CPU})
    c.wait_for_nodes()
    assert len(c.list_all_nodes()) == 2
    yield c, node
    ray.shutdown()
    c.shutdown()


@pytest.mark.slow
def test_two_node_sweep_rows_come_back_to_the_driver(cluster, tmp_path, monkeypatch):
    import yaml
    import bench.sinks
    from bench.cli import main
    c, node = cluster
    driver = tmp_path / "driver"
    driver.mkdir()
    monkeypatch.chdir(driver)  # the results folder is relative: driver/results, which the nodes' folder lacks
    exp = driver / "cluster.yaml"
    exp.write_text(yaml.safe_dump({"dataset": str(make_image_folder(tmp_path / "data")), "profile": "quick",
                                   "protocol": TINY, "archs": ["resnet18"], "seeds": [0, 1, 2]}))
    appended = []  # the driver's own appends (workers are other processes: their writes would not show here)
    real = bench.sinks.append_rows
    monkeypatch.setattr(bench.sinks, "append_rows",
                        lambda path, rs, fields: (appended.append((Path(path), len(rs), os.getpid())),
                                                  real(path, rs, fields))[1])
    assert main(["sweep", str(exp), "--executor", "ray", "--address", c.address, "--cpus-per-task", "1",
                 "--results-dir", "results"]) == 0

    index = rows(driver / "results" / "runs.csv")
    assert sorted(r["seed"] for r in index) == ["0", "1", "2"] and {r["status"] for r in index} == {"ok"}
    assert len({r["run_id"] for r in index}) == 3
    assert {r["threads"] for r in index} == {"1"}  # torch's threads follow --cpus-per-task
    # nodes of two CPU models ran one sweep: the run ids the driver planned, each row naming its own machine
    devices = {r["context"].split(" · ")[0] for r in index}
    assert len(devices) == 2 and any(d.startswith(OTHER_CPU) for d in devices)
    # every index row and every epoch row was appended by the driver, once
    runs_appends = sum(n for p, n, _ in appended if p.name == "runs.csv")
    assert runs_appends == len(index) == 3
    for r in index:
        epoch_file = driver / "results" / r["epoch_log"]
        epochs = rows(epoch_file)
        assert [e["epoch"] for e in epochs] == ["1", "2"] and {e["run_id"] for e in epochs} == {r["run_id"]}
        assert sum(n for p, n, _ in appended if p == Path("results") / r["epoch_log"]) == len(epochs)
    assert {pid for _, _, pid in appended} == {os.getpid()}
    # the nodes' working directory got nothing: no results folder, no claims, no split
    assert list(node.iterdir()) == []

    # a restart finds every run done (the driver's rows are the record), and runs nothing
    assert main(["sweep", str(exp), "--results-dir", "results"]) == 0
    assert Counter(r["run_id"] for r in rows(driver / "results" / "runs.csv")) == Counter(r["run_id"] for r in index)


def test_cpus_per_task_is_checked(tmp_path, capsys):
    from bench.cli import main
    exp = tmp_path / "e.yaml"
    exp.write_text("archs: [resnet18]\n")
    assert main(["sweep", str(exp), "--cpus-per-task", "2"]) == 2
    assert "apply to --executor ray only" in capsys.readouterr().err
    assert main(["sweep", str(exp), "--executor", "ray", "--workers", "1", "--cpus-per-task", "2"]) == 2
    assert "more than the 1 CPUs of --workers" in capsys.readouterr().err
    assert main(["sweep", str(exp), "--executor", "ray", "--cpus-per-task", "0"]) == 2
    assert "--cpus-per-task: 0 must be >= 1" in capsys.readouterr().err
