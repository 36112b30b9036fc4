"""Joining Ray for a sweep: a local instance, or an existing cluster at `--address`, with one line saying how to fix
a connection that fails.

Ray 2.60 turns token authentication on by default: `ray start --head` runs with it whenever a token exists
(`~/.ray/auth_token`, which any earlier local `ray.init()` writes), and then refuses every client without that
token. A driver given an explicit address never switches token mode on by itself (only `address="auto"` does), so
`bench sweep --address HEAD:PORT` needs `RAY_AUTH_MODE=token` and the cluster's token (`RAY_AUTH_TOKEN`,
`RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`) in its environment, as every node needs them when it is started.
Without them Ray retries for ~20 s, prints a warning a second and ends in a 30-line traceback; an address where
nothing listens costs it ~80 s. Here the address is checked first (a TCP connect, seconds) and Ray's own output
during the connection is kept back, so a failure is one ConfigError line (exit 2) naming the fix.

What the tasks need is the node's environment, not the driver's: the token is read by each node's `ray start`
(Ray's workers inherit it from there), and the run's own settings (BENCH_*, MLFLOW_*, caches) travel with each job
(`executors.job_env`).
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..config import ConfigError

TOKEN_HELP = ("export RAY_AUTH_MODE=token and the cluster's token: RAY_AUTH_TOKEN=<the output of `ray get-auth-token` "
              "on the head>, or copy the head's ~/.ray/auth_token to this machine (README, \"Sweeps on a Ray "
              "cluster\")")
# What Ray prints or raises when the cluster refuses the client's token (none sent, or a different one)
REFUSED = ("InvalidAuthToken", "Unauthenticated", "AuthenticationError", "authentication token")


def connect(address: str | None, workers: int | None = None) -> None:
    """`ray.init` for a sweep: a local Ray with `workers` CPUs when `address` is None, else the cluster there.
    Every way a connection to a cluster fails is one ConfigError line with the fix."""
    import ray
    # log_to_driver=False: each task's outcome comes back as its return value and is printed as one line;
    # forwarding the workers' own output only added empty "(run_remote pid=...)" lines. Worker output stays in
    # Ray's session logs (/tmp/ray/session_latest/logs), and every failure's error is in its row.
    kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address is None:
        ray.init(num_cpus=workers, **kw)
        return
    preflight(address)
    token_mode = token_mode_on()
    with captured_stderr() as said:
        try:
            ray.init(address=address, **kw)
            error = None
        except Exception as e:  # noqa: BLE001 (ConnectionError, AuthenticationError, RuntimeError...: all one line)
            error = e
    if error is None:
        sys.stderr.write(said[0])  # nothing went wrong: whatever Ray had to say is shown after all
        return
    text = f"{said[0]}\n{type(error).__name__}: {error}"
    if any(mark in text for mark in REFUSED):
        why = ("refused this machine's token (not the cluster's)" if token_mode else
               "requires token authentication (Ray's default) and this driver sent no token")
        raise ConfigError(f"--address {address}: the Ray cluster {why}; {TOKEN_HELP}") from None
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ConfigError(f"--address {address}: could not join the Ray cluster ({type(error).__name__}: {first}); "
                      f"check that its Ray version is this one ({ray.__version__}) and see its logs "
                      f"(/tmp/ray/session_latest/logs on the head)") from None


def preflight(address: str | None) -> None:
    """The checks that take no connection: something listens at the address, and a token is at hand when
    RAY_AUTH_MODE=token asks for one. Each failure is one ConfigError line."""
    if address is None:
        return
    check_reachable(address)
    if token_mode_on() and not token_available():
        raise ConfigError(f"--address {address}: RAY_AUTH_MODE=token but this machine has no Ray token (none in "
                          f"RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); {TOKEN_HELP}")


def token_mode_on() -> bool:
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"


def split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of HOST:PORT or ray://HOST:PORT; None for `auto` (Ray finds a cluster on this machine)."""
    if address.strip().lower() == "auto":
        return None
    rest = address.strip().removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r}: expected HOST:PORT of a Ray head (e.g. 10.0.0.5:6379, the "
                          f"--port of its `ray start --head`), ray://HOST:PORT for a Ray client server, or auto")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Something accepts TCP connections at the address, else one line (Ray itself would retry for ~80 s)."""
    where = split_address(address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(f"--address {address}: nothing answers there ({e.strerror or type(e).__name__}); start "
                          f"the head with `ray start --head --port {where[1]}` on {where[0]}, or correct --address "
                          f"(it is the head's HOST:PORT)") from None


def token_available() -> bool:
    """A Ray token is where Ray looks for one: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


@contextmanager
def captured_stderr():
    """Everything written to file descriptor 2 (Ray's C++ core logs there directly, past sys.stderr) goes to a
    temporary file for the duration; yields a list that holds that text once the block has ended."""
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield said
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            said.append(tmp.read().decode(errors="replace"))
