"""The worker pool: one long-lived server process (`bench.sweep.forkserver`) that imported the libraries once and
forks a fresh child per run; as many runs at once as the runs' torch threads fit in this machine's cores.

`Pool` is the parent's side: `submit` a job under a key, `finished` reports (key, exit code) as children end. A
server that dies (it never trains, but it can be killed) is started again by the next `submit`; the runs it had in
flight are reported with code None, and their children, still running as orphans, finish and record themselves.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys

# Environment a run depends on (offline mode, caches, MLflow's server and credentials); forwarded explicitly because
# Ray workers on other machines do not inherit the driver's environment. It goes to the run's environment, never
# onto a command line.
_FORWARD_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "TORCH_HOME")

def job_threads(job: dict) -> int:
    """The run's torch threads: the planner fixed them (`plan.with_threads`, the sweeps' and races' thread policy)."""
    return int(job["config"].get("threads") or 1)


def job_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(("BENCH_", "MLFLOW_")) or k in _FORWARD_ENV}


def cores() -> int:
    return len(os.sched_getaffinity(0))


def default_slots(threads: int = 1) -> int:
    """Runs at once on this machine: one per `threads` cores."""
    return max(1, cores() // max(1, threads))


class ServerDied(RuntimeError):
    pass


class Pool:
    """A forkserver of this process's environment and working directory (see `bench.sweep.forkserver`)."""

    def __init__(self, env: dict[str, str] | None = None):
        # BENCH_CONSOLE=off: no per-epoch or warning lines from the runs; the sweep prints one line per finished run
        self.env = {**os.environ, **(env or {}), "BENCH_CONSOLE": "off"}
        self.proc: subprocess.Popen | None = None
        self.in_flight: dict[str, int | None] = {}  # key -> pid of its child (None until the server says)
        self.cpu_seconds: dict[str, float] = {}     # key -> CPU seconds of its last finished child
        self.gpus = 0                                # CUDA devices the server sees
        self.ready = False                           # the server said it imported the libraries
        self._buf = b""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> "Pool":
        """Start the server without waiting for its imports, so that they overlap the driver's planning (the
        libraries' import and the dataset's scan each take seconds); `ensure` waits for it."""
        if not self.alive:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.sweep.forkserver"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=self.env)
            self._buf, self.ready = b"", False
        return self

    def ensure(self) -> "Pool":
        """A started server that has imported the libraries (it says `ready` first)."""
        self.launch()
        if not self.ready:
            try:
                msg = self._read(None)
            except ServerDied:
                msg = []
            if not msg or not msg[0].get("ready"):
                raise ServerDied(f"the pool's server process did not start (exit code {self.proc.wait()})")
            self.gpus, self.ready = int(msg[0].get("gpus", 0)), True
        return self

    def submit(self, key: str, job: dict, env: dict[str, str] | None = None) -> None:
        self.ensure()
        line = json.dumps({"key": key, "job": {k: v for k, v in job.items() if k != "env"},
                           "env": {**job.get("env", {}), **(env or {})}, "cwd": os.getcwd()})
        self.in_flight[key] = None
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:  # died since `alive` said otherwise: `finished` reports the run with code None
            pass

    def finished(self, timeout: float | None = None) -> list[tuple[str, int | None]]:
        """Runs that ended within `timeout` seconds (None: wait for one), as (key, exit code). A dead server ends
        every run in flight with code None."""
        try:
            msgs = self._read(timeout)
        except ServerDied:
            lost = [(key, None) for key in self.in_flight]
            self.in_flight.clear()
            self.close()
            return lost
        done = []
        for msg in msgs:
            if "code" in msg:
                self.in_flight.pop(msg["key"], None)
                self.cpu_seconds[msg["key"]] = msg.get("cpu_s", 0.0)
                done.append((msg["key"], msg["code"]))
            elif "pid" in msg:
                self.in_flight[msg["key"]] = msg["pid"]
        return done

    def wait(self, key: str) -> int | None:
        """Block until the run submitted under `key` ends; its exit code (None: lost with the server)."""
        while True:
            for k, code in self.finished():
                if k == key:
                    return code

    def _read(self, timeout: float | None) -> list[dict]:
        """The complete lines the server wrote within `timeout` (at least one when `timeout` is None)."""
        out = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            ready, _, _ = select.select([out], [], [], timeout)
            if not ready:
                return []
            data = os.read(out, 1 << 16)
            if not data:
                raise ServerDied("the pool's server process ended")
            self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        return [json.loads(line) for line in lines if line]

    def close(self) -> None:
        """End of input: the server exits, leaving children that still run to finish on their own. One still
        importing (launched for a sweep that had nothing to run, or stopped by an error) has no child: it is killed
        rather than waited for."""
        if self.proc is not None:
            if not self.ready:
                self.proc.kill()
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            self.proc.wait()
            self.proc = None


_shared: dict[tuple, Pool] = {}
# Set in this process while a driver plans, so not a reason to start another server than the one launched before
# planning: importing torch sets the KMP_* (Intel OpenMP's fork settings; the server sets them itself when it imports
# torch), and BENCH_TOLD holds the dataset notes already said (bench.data.dataset.tell_once; each job carries it)
_SET_WHILE_PLANNING = ("BENCH_TOLD", "KMP_INIT_AT_FORK", "KMP_DUPLICATE_LIB_OK")


def shared_pool() -> Pool:
    """This process's pool, kept between sweeps (a race's rounds) while the environment and working directory stay
    the same: the libraries are imported once per driver, not once per round."""
    env = sorted((k, v) for k, v in os.environ.items() if k not in _SET_WHILE_PLANNING)
    key = (sys.executable, os.getcwd(), tuple(env))
    if key not in _shared:
        for old in _shared.values():
            old.close()
        _shared.clear()
        _shared[key] = Pool()
    return _shared[key]


@atexit.register
def _close_shared() -> None:
    for p in _shared.values():
        p.close()
