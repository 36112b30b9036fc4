"""MLflow tracking against a real `mlflow server` on 127.0.0.1 (and its local default store), read back with
MLflow's own client; a dead server costs one warning line and nothing else."""
from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import make_image_folder

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--pretrained", "false", "--size", "32", "--item-size", "32", "--bs", "8", "--pct", "1", "--head-epochs", "2",
        "--ft-epochs", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real tracking server (sqlite backend, proxied artifacts) on a free port, up until the module ends."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(root / "server.log", "w")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                             "--artifacts-destination", str(root / "artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:])
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.mark.slow
def test_run_is_tracked_in_a_real_mlflow_server(server, tmp_path, monkeypatch):
    import mlflow  # a test dependency (the [mlflow] extra): missing, it fails rather than skips
    from bench.cli import main
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "bench-test-server")
    data, results = make_image_folder(tmp_path / "data"), tmp_path / "results"
    assert main(["run", "--dataset", str(data), *TINY, "--results-dir", str(results), "--track", "mlflow"]) == 0
    (row,) = read_csv(results / "runs.csv")
    epochs = read_csv(results / row["epoch_log"])
    assert row["status"] == "ok" and len(epochs) == 3

    client = mlflow.MlflowClient(server)
    exp = client.get_experiment_by_name("bench-test-server")
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.run_id = '{row['run_id']}'")
    assert run.info.status == "FINISHED"
    # params: the resolved config, every field
    config = {k: "" if v is None else str(v) for k, v in json.loads(row["config_json"]).items()}
    assert run.data.params == config and run.data.params["track"] == "mlflow"
    # one point per epoch of both phases, step = the run's epoch, the values of the epoch CSV
    for key in ("accuracy", "valid_loss", "train_loss", "lr"):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2, 3]
        assert [m.value for m in history] == pytest.approx([float(e[key]) for e in epochs])
    assert [m.value for m in client.get_metric_history(run.info.run_id, "phase")] == [1, 1, 2]
    # tags: what the run really used, as in its row
    for key in ("dataset_fingerprint", "split_hash", "weights_used", "git_sha", "status", "run_id"):
        assert run.data.tags[key] == row[key], key
    assert run.data.tags["weights_used"] == "random" and run.data.tags["status"] == "ok"
    # the epoch CSV as an artifact, byte for byte, through the server's artifact proxy
    local = client.download_artifacts(run.info.run_id, f"epochs/{row['run_id']}.csv", str(tmp_path / "dl"))
    assert Path(local).read_text() == (results / row["epoch_log"]).read_text()


@pytest.mark.slow
def test_server_down_is_one_warning_line_and_the_run_is_kept(tmp_path):
    data, results = make_image_folder(tmp_path / "data"), tmp_path / "results"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}", "BENCH_CONSOLE": "lines",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--dataset", str(data), *TINY, "--results-dir",
                           str(results), "--track", "mlflow"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and warnings[0].startswith("bench: warning: MLflow tracking stopped"), proc.stderr
    assert "Connection refused" in warnings[0]
    assert "Traceback" not in proc.stderr and "mlflow" not in proc.stdout.lower()
    assert all(line.startswith("bench: ") for line in proc.stderr.splitlines()), proc.stderr
    (row,) = read_csv(results / "runs.csv")
    assert row["status"] == "ok" and len(read_csv(results / row["epoch_log"])) == 3


@pytest.mark.slow
def test_sweep_tracks_to_the_local_store_under_the_results_folder(tmp_path, monkeypatch):
    import mlflow
    import yaml
    from bench.cli import main
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    exp = tmp_path / "tracked.yaml"
    exp.write_text(yaml.safe_dump({"dataset": str(make_image_folder(tmp_path / "data")), "profile": "quick",
                                   "protocol": {"img_size": 32, "item_size": 32, "batch_size": 8, "head_epochs": 1,
                                                "ft_epochs": 1, "pretrained": "false", "n_folds": 3},
                                   "archs": ["resnet18"]}))
    results = tmp_path / "results"
    assert main(["sweep", str(exp), "--results-dir", str(results), "--track", "mlflow"]) == 0
    (row,) = read_csv(results / "runs.csv")
    client = mlflow.MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])  # the sweep's name
    assert run.data.tags["run_id"] == row["run_id"] and run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "accuracy")) == 2
    assert (results / "mlartifacts").is_dir() and Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(
        results / "mlartifacts")


def test_ray_tracking_without_a_server_is_one_error_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import yaml
    from bench.cli import main
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp = tmp_path / "e.yaml"
    exp.write_text(yaml.safe_dump({"dataset": str(make_image_folder(tmp_path / "data")), "archs": ["resnet18"]}))
    results = tmp_path / "results"
    assert main(["sweep", str(exp), "--executor", "ray", "--results-dir", str(results), "--track", "mlflow"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: track: mlflow") and "MLFLOW_TRACKING_URI" in err[0]
    assert not results.exists()
