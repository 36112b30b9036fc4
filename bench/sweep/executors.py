"""Where sweep runs execute: one at a time on this machine, or as Ray tasks (local Ray or a cluster).

Every run is a `python -m bench.sweep.worker` process; a worker that died without recording its run becomes a failed
row. Locally (`execute_one`) the worker claims the run and appends its rows itself. On Ray (`run_remote`) the nodes
need not share a disk: the driver claims each run and is the only writer of the results folder; each task resolves
the dataset on its node, trains with `cpus_per_task` torch threads, writes nothing there and returns its rows. Ray
only places the tasks (a GPU each when the cluster has GPUs); it has no retries, because a failed run is a result.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..config import ConfigError
from .worker import EXIT_BUSY, EXIT_DONE, EXIT_OK, claim, is_done, record_failure, rows_for

# Environment a run depends on (offline mode, caches, MLflow's server and credentials); forwarded explicitly because
# Ray workers on other machines do not inherit the driver's environment. It goes to the worker's environment, never
# onto its command line.
_FORWARD_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "TORCH_HOME")

Outcome = dict  # run_id, status (ok | failed | done | busy), error, row (the index row when one was written), seconds


def job_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(("BENCH_", "MLFLOW_")) or k in _FORWARD_ENV}


def worker_command(job: dict) -> list[str]:
    return [sys.executable, "-m", "bench.sweep.worker", json.dumps({k: v for k, v in job.items() if k != "env"})]


def describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (killed: out of memory, or killed by hand)" if -code == signal.SIGKILL else ""
        return f"WorkerDied: worker process ended by signal {name}{hint}"
    return f"WorkerDied: worker process exited with code {code} without recording the run"


def execute_one(job: dict, cwd: str | None = None) -> Outcome:
    """Run one job in a fresh worker process and report what became of it."""
    results, run_id = job["config"]["results_dir"], job["run_id"]
    before = len(rows_for(results, run_id))
    t0 = time.monotonic()
    # BENCH_CONSOLE=off: no per-epoch or warning lines from the worker; the sweep prints one line per finished run
    env = {**os.environ, **job.get("env", {}), "BENCH_CONSOLE": "off"}
    code = subprocess.run(worker_command(job), cwd=cwd if cwd and os.path.isdir(cwd) else None, env=env).returncode
    out: Outcome = dict(run_id=run_id, error="", row=None, seconds=round(time.monotonic() - t0, 1))
    if code in (EXIT_BUSY, EXIT_DONE):
        return {**out, "status": "busy" if code == EXIT_BUSY else "done"}
    new = rows_for(results, run_id)[before:]
    if new:
        row = new[-1]
        return {**out, "status": row.get("status") or "failed", "error": row.get("error", ""), "row": row}
    if code == EXIT_OK:  # cannot happen unless the index was moved away mid-run; say so rather than guess
        return {**out, "status": "failed", "error": "worker reported success but no row reached the index"}
    row = record_failure(job, describe_exit(code))
    return {**out, "status": "failed", "error": row["error"], "row": row}


def run_local(jobs: list[dict], report: Callable[[Outcome], None]) -> None:
    """One run at a time. A run claimed by a concurrent sweep is put off to the end, then waited for, so two sweeps
    on one results directory share the work instead of queueing behind each other."""
    deferred = []
    for job in jobs:
        out = execute_one(job, os.getcwd())
        if out["status"] == "busy":
            deferred.append(job)
        else:
            report(out)
    for job in deferred:
        report(execute_one({**job, "wait": True}, os.getcwd()))


def run_remote(job: dict, cpus: int = 1) -> Outcome:
    """A Ray task, on whichever node Ray picks: the run in a worker process that spools its rows to a scratch file
    instead of writing the results folder, run in the task's own working directory (so a dataset path is resolved
    on this node). Returns the outcome with `writes`, the rows for the driver to append."""
    from ..sinks import RowSpool
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-task-") as scratch:
        spool = Path(scratch) / "rows.jsonl"
        env = {**os.environ, **job.get("env", {}), "BENCH_CONSOLE": "off", "OMP_NUM_THREADS": str(cpus)}
        code = subprocess.run(worker_command({**job, "spool": str(spool), "threads": cpus}), env=env).returncode
        writes = RowSpool.load(spool)
    out: Outcome = dict(run_id=job["run_id"], error="", row=None, seconds=round(time.monotonic() - t0, 1))
    index = [r for rel, rows, _ in writes if rel == "runs.csv" for r in rows]
    if index:
        row = index[-1]
        return {**out, "status": row.get("status") or "failed", "error": row.get("error", ""), "row": row,
                "writes": writes}
    spooled = RowSpool()
    error = "worker reported success but recorded no row" if code == EXIT_OK else describe_exit(code)
    row = record_failure(job, error, sink=spooled)
    return {**out, "status": "failed", "error": row["error"], "row": row, "writes": writes + spooled.writes}


def check_ray_tracking(configs) -> None:
    """Ray workers do not write the driver's results folder, so MLflow tracking needs a server they can reach."""
    if any(c.track == "mlflow" for c in configs) and not os.environ.get("MLFLOW_TRACKING_URI"):
        raise ConfigError("track: mlflow with --executor ray needs MLFLOW_TRACKING_URI, a tracking server every "
                          "node can reach (e.g. `mlflow server --host 0.0.0.0 --port 5000` and "
                          "MLFLOW_TRACKING_URI=http://HOST:5000): the default store is a file in the driver's "
                          "results folder, which Ray workers do not write")


def run_ray(jobs: list[dict], report: Callable[[Outcome], None], address: str | None = None,
            workers: int | None = None, cpus_per_task: int = 1) -> None:
    """Every job as a Ray task (`run_remote`, max_retries=0, `cpus_per_task` CPUs); `address` joins an existing
    cluster, else a local Ray instance with `workers` CPUs is started and stopped here. The driver holds each run's
    claim while its task runs and appends the rows the task returns: nodes need no shared folder. A run claimed by
    a concurrent sweep is put off to the end, then waited for, as in `run_local`."""
    import ray
    from ..sinks import replay
    started = not ray.is_initialized()
    if started:
        from .raycluster import connect
        connect(address, workers)  # a failed connection to a cluster: one ConfigError line with the fix
    pending: dict = {}
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        most = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        if cpus_per_task > most:  # Ray would wait forever for a node that big
            raise ConfigError(f"--cpus-per-task {cpus_per_task}: no node of the Ray cluster has that many CPUs "
                              f"(the largest has {most:g})")
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus, max_retries=0)(run_remote)

        def submit(job: dict, wait: bool) -> bool:
            lock = claim(job, wait)
            if lock is None:
                return False
            if is_done(job):  # finished by another sweep meanwhile
                lock.release()
                report(dict(run_id=job["run_id"], status="done", error="", row=None, seconds=0))
            else:
                pending[task.remote(job, cpus_per_task)] = (job, lock)
            return True

        deferred = [job for job in jobs if not submit(job, wait=False)]
        while pending or deferred:
            deferred = [job for job in deferred if not submit(job, wait=False)]
            if not pending:  # holding no claim now, so waiting for the other sweep's cannot deadlock
                if deferred:
                    submit(deferred.pop(0), wait=True)
                continue
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0 if deferred else None)
            for ref in ready:
                job, lock = pending.pop(ref)
                try:
                    out = ray.get(ref)
                    replay(out.pop("writes"), job["config"]["results_dir"])
                except ray.exceptions.RayError as e:  # the task itself (not the run) died: still one row
                    row = record_failure(job, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}")
                    out = dict(run_id=job["run_id"], status="failed", error=row["error"], row=row, seconds=0)
                finally:
                    lock.release()
                report(out)
    finally:
        for _, lock in pending.values():
            lock.release()
        if started:
            ray.shutdown()


EXECUTORS = {"local": run_local, "ray": run_ray}
