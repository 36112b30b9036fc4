"""The README's Ray cluster recipe against a real `ray start --head` on 127.0.0.1 (a random free port, token
authentication on, as Ray 2.60 runs it by default once a token exists): a driver without the token gets one line
with the fix and exit 2; with RAY_AUTH_MODE=token and the token, the sweep runs there."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_image_folder

TINY = {"img_size": 32, "item_size": 32, "batch_size": 8, "head_epochs": 1, "ft_epochs": 1, "pretrained": "false",
        "n_folds": 3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """`ray get-auth-token --generate` then `RAY_AUTH_MODE=token ray start --head --port P --block`, in a HOME of
    its own (the token file is ~/.ray/auth_token there); the whole process group is ended afterwards."""
    root = tmp_path_factory.mktemp("ray-head")
    home = root / "home"
    home.mkdir()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token"}
    subprocess.run([ray_bin, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = open(root / "head.log", "w")
    proc = subprocess.Popen([ray_bin, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--num-cpus", "1", "--include-dashboard", "false",
                             "--temp-dir", str(root / "ray")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail("ray start --head did not come up:\n" + (root / "head.log").read_text()[-3000:])
            time.sleep(0.5)
    time.sleep(3)  # the GCS listens before the head's raylet has registered
    yield f"127.0.0.1:{port}", home
    os.killpg(proc.pid, signal.SIGTERM)  # our own process group: the head and the Ray processes it started
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # gcs_server may ignore SIGTERM for a while
    except ProcessLookupError:
        pass
    log.close()


def driver_env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **extra}


@pytest.mark.slow
def test_cluster_with_token_auth(head, tmp_path):
    import yaml
    address, head_home = head
    exp = tmp_path / "cluster.yaml"
    exp.write_text(yaml.safe_dump({"dataset": str(make_image_folder(tmp_path / "data")), "profile": "quick",
                                   "protocol": TINY, "archs": ["resnet18"], "seeds": [0]}))
    args = ["sweep", str(exp), "--executor", "ray", "--address", address, "--results-dir", "results"]

    # the README's old recipe: no token on the driver -> one line with the fix, exit 2, no traceback
    other_home = tmp_path / "driver-home"
    other_home.mkdir()
    r = bench(args, driver_env(other_home), tmp_path)
    assert r.returncode == 2, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("bench: error:")]
    assert len(errors) == 1 and "requires token authentication" in errors[0] and "RAY_AUTH_MODE=token" in errors[0]
    assert "Traceback" not in r.stderr and "InvalidAuthToken" not in r.stderr, r.stderr[-3000:]
    assert not (tmp_path / "results" / "runs.csv").exists()

    # token mode asked for, but no token on this machine: refused before connecting
    r = bench(args, driver_env(other_home, RAY_AUTH_MODE="token"), tmp_path)
    assert r.returncode == 2 and "has no Ray token" in r.stderr and len(r.stderr.strip().splitlines()) == 1

    # the recipe as documented: RAY_AUTH_MODE=token and the head's token -> the sweep runs on the cluster
    token = (head_home / ".ray" / "auth_token").read_text().strip()
    r = bench(args, driver_env(other_home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token), tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 ok, 0 failed" in r.stderr


def test_nothing_listening_is_one_line_at_once(tmp_path):
    exp = tmp_path / "e.yaml"
    exp.write_text("archs: [resnet18]\n")
    port = free_port()  # free: nothing listens there
    t0 = time.monotonic()
    r = bench(["sweep", str(exp), "--executor", "ray", "--address", f"127.0.0.1:{port}", "--results-dir", "res"],
              driver_env(tmp_path), tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert f"--address 127.0.0.1:{port}: nothing answers there" in r.stderr
    assert f"ray start --head --port {port}" in r.stderr
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("address", ["10.0.0.5", "host:port", "ray://:10001", "h:70000"])
def test_malformed_address_is_one_line(address):
    from bench.config import ConfigError
    from bench.sweep.raycluster import preflight
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        preflight(address)


def test_token_lookup_follows_ray(tmp_path, monkeypatch):
    from bench.sweep.raycluster import token_available
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(k, raising=False)
    assert not token_available()
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("abc")
    assert token_available()
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    assert not token_available()
    monkeypatch.setenv("RAY_AUTH_TOKEN", "xyz")
    assert token_available()
