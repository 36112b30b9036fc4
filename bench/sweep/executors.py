"""Where sweep runs execute: one at a time on this machine, or as Ray tasks (local Ray or a cluster).

Both hand every run to `execute_one`, which starts `python -m bench.sweep.worker` and turns a worker that died without
recording its run into a failed row. Ray only places the tasks (one per worker, a GPU each when the cluster has
GPUs); it has no retries, because a failed run is a result, and no scheduling of our own is layered on top.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Callable

from .worker import EXIT_BUSY, EXIT_DONE, EXIT_OK, record_failure, rows_for

# Environment a run depends on (offline mode, caches); forwarded explicitly because Ray workers on other machines
# do not inherit the driver's environment.
_FORWARD_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "TORCH_HOME")

Outcome = dict  # run_id, status (ok | failed | done | busy), error, row (the index row when one was written), seconds


def job_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("BENCH_") or k in _FORWARD_ENV}


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
    code = subprocess.run([sys.executable, "-m", "bench.sweep.worker", json.dumps(job)],
                          cwd=cwd if cwd and os.path.isdir(cwd) else None, env=env).returncode
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


def run_ray(jobs: list[dict], report: Callable[[Outcome], None], address: str | None = None,
            workers: int | None = None) -> None:
    """Every job as a Ray task with max_retries=0; `address` joins an existing cluster (whose nodes must see the
    same results directory, e.g. over NFS, since tasks append to it under file locks), else a local Ray instance
    with `workers` CPUs is started and stopped here."""
    import ray
    started = not ray.is_initialized()
    if started:
        # log_to_driver=False: each task's outcome comes back as its return value and is printed as one line;
        # forwarding the workers' own output only added empty "(execute_one pid=...)" lines. Worker output stays in
        # Ray's session logs (/tmp/ray/session_latest/logs), and every failure's error is in its row.
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(execute_one)
        # Within one sweep every run id is unique, so a busy claim can only be another sweep's: wait for it.
        refs = {task.remote({**job, "wait": True}, os.getcwd()): job for job in jobs}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    report(ray.get(ref))
                except ray.exceptions.RayError as e:  # the task itself (not the run) died: still one row
                    job = refs[ref]
                    row = record_failure(job, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}")
                    report(dict(run_id=job["run_id"], status="failed", error=row["error"], row=row, seconds=0))
    finally:
        if started:
            ray.shutdown()


EXECUTORS = {"local": run_local, "ray": run_ray}
