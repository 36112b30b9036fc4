"""Where sweep runs execute: on this machine's worker pool, or on Ray actors (local Ray or a cluster).

Every run is a child process forked from a pool server that imported the libraries once (`bench.sweep.pool`); a
run that died without recording itself becomes a failed row. Locally (`run_local`) each child claims its run and
appends its rows itself, and the pool runs one run per `THREADS_PER_RUN` cores at once. On Ray (`run_ray`) the
nodes need not share a disk: one long-lived actor per slot keeps a pool on its node, the driver claims each run and
is the only writer of the results folder; the actor resolves the dataset on its node, trains with `cpus_per_task`
torch threads, writes nothing there and returns the rows. Ray has no retries: a failed run is a result.
"""
from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..config import ConfigError
from ..console import one_line
from ..sinks import RowSpool, replay
from .eta import PlanEstimate
from .plan import THREADS_PER_RUN, label, run_seconds
from .pool import Pool, default_slots, job_env, job_threads, shared_pool
from .raycluster import connect
from .worker import EXIT_BUSY, EXIT_DONE, EXIT_OK, claim, is_done, record_failure, rows_for

Outcome = dict  # run_id, status (ok | failed | done | busy), error, row (the index row when one was written), seconds,
#                 cpu_seconds (the run's process, when known)
LOST = "WorkerDied: the pool's server process ended while the run was in flight"


def describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (killed: out of memory, or killed by hand)" if -code == signal.SIGKILL else ""
        return f"WorkerDied: worker process ended by signal {name}{hint}"
    return f"WorkerDied: worker process exited with code {code} without recording the run"


def local_outcome(job: dict, code: int | None, before: int, t0: float) -> Outcome:
    """What became of a run whose child ended with `code` (None: lost with its server), from the rows it wrote."""
    results, run_id = job["config"]["results_dir"], job["run_id"]
    out: Outcome = dict(run_id=run_id, error="", row=None, seconds=round(time.monotonic() - t0, 1))
    if code in (EXIT_BUSY, EXIT_DONE):
        return {**out, "status": "busy" if code == EXIT_BUSY else "done"}
    if code is None:  # its child may still be running, orphaned: it holds the claim until it has recorded the run
        claim(job, wait=True).release()
    new = rows_for(results, run_id)[before:]
    if new:
        row = new[-1]
        return {**out, "status": row.get("status") or "failed", "error": row.get("error", ""), "row": row}
    if code == EXIT_OK:  # cannot happen unless the index was moved away mid-run; say so rather than guess
        return {**out, "status": "failed", "error": "worker reported success but no row reached the index"}
    row = record_failure(job, LOST if code is None else describe_exit(code))
    return {**out, "status": "failed", "error": row["error"], "row": row}


def start_early(executor: str) -> None:
    """Launch the local pool's server before a driver plans, so that its imports (4.5 s) overlap the planning's
    (2.2 s on the quick file: libraries, dataset scan, split, identities)."""
    if executor == "local":
        shared_pool().launch()


def run_local(jobs: list[dict], report: Callable[[Outcome], None], workers: int | None = None) -> None:
    """`workers` runs at once (default: one per core / the runs' torch threads, `plan.with_threads`). A
    run claimed by a concurrent sweep is put off to the end, then waited for, so two sweeps on one results
    directory share the work instead of queueing behind each other. Ctrl-C: the runs record themselves as
    interrupted and are reported; nothing new starts."""
    if not jobs:
        return
    pool = shared_pool().ensure()
    # On a CUDA machine runs that may use CUDA go one per GPU, each pinned to its own (CUDA_VISIBLE_DEVICES)
    gpus = list(range(pool.gpus)) if any(j["config"]["device"] in ("auto", "cuda") for j in jobs) else []
    slots = workers or len(gpus) or default_slots(max(job_threads(j) for j in jobs))
    queue, later, running, stopping = list(jobs), [], {}, False
    while running or (not stopping and (queue or later)):
        try:
            while not stopping and len(running) < slots and (queue or later):
                job, wait = (queue.pop(0), False) if queue else (later.pop(0), True)
                gpu = gpus.pop(0) if gpus else None
                running[job["run_id"]] = (job, len(rows_for(job["config"]["results_dir"], job["run_id"])),
                                          time.monotonic(), gpu)
                env = {"OMP_NUM_THREADS": str(job_threads(job)),
                       **({"CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else {})}
                pool.submit(job["run_id"], {**job, "wait": wait}, env=env)
            for key, code in pool.finished():
                job, before, t0, gpu = running.pop(key)
                if gpu is not None:
                    gpus.append(gpu)
                out = {**local_outcome(job, code, before, t0), "cpu_seconds": pool.cpu_seconds.pop(key, None)}
                if out["status"] == "busy":
                    later.append(job)
                else:
                    report(out)
        except KeyboardInterrupt:  # reaches the runs too (one process group): collect what they record
            stopping = True


class Runner:
    """A Ray actor: one slot on one node, with its own pool there, alive for the whole sweep. Each run spools its
    rows to a scratch file instead of writing the results folder, and runs in the actor's working directory (so a
    dataset path is resolved on this node); `run` returns the outcome with `writes`, the rows for the driver."""

    def __init__(self, env: dict[str, str]):
        os.environ.update(env)  # nodes do not inherit the driver's environment
        self.pool = Pool()

    def run(self, job: dict, threads: int) -> Outcome:
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bench-task-") as scratch:
            spool = Path(scratch) / "rows.jsonl"
            self.pool.submit("run", {**job, "spool": str(spool), "threads": threads},
                             env={"OMP_NUM_THREADS": str(threads)})
            code = self.pool.wait("run")
            writes = RowSpool.load(spool)
        out: Outcome = dict(run_id=job["run_id"], error="", row=None, seconds=round(time.monotonic() - t0, 1),
                            cpu_seconds=self.pool.cpu_seconds.pop("run", None))
        index = [r for rel, rows, _ in writes if rel == "runs.csv" for r in rows]
        if index:
            row = index[-1]
            return {**out, "status": row.get("status") or "failed", "error": row.get("error", ""), "row": row,
                    "writes": writes}
        spooled = RowSpool()
        error = "worker reported success but recorded no row" if code == EXIT_OK else \
            LOST if code is None else describe_exit(code)
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
            workers: int | None = None, cpus_per_task: int = THREADS_PER_RUN) -> None:
    """Every job on one of the sweep's `Runner` actors (`cpus_per_task` CPUs each, as many as the cluster holds);
    `address` joins an existing cluster, else a local Ray instance with `workers` CPUs is started and stopped here.
    The driver holds each run's claim while it runs and appends the rows it returns: nodes need no shared folder.
    A run claimed by a concurrent sweep is put off to the end, then waited for, as in `run_local`."""
    import ray  # deferred: a local sweep never loads Ray
    started = not ray.is_initialized()
    if started:
        connect(address, workers)  # a failed connection to a cluster: one ConfigError line with the fix
    pending: dict = {}  # Ray object ref -> (job, its claim, the actor running it)
    try:
        actor, slots = ray_actors(cpus_per_task)
        idle = [actor.remote(job_env()) for _ in range(min(slots, len(jobs)))]
        queue, later = list(jobs), []

        def start(job: dict, lock) -> None:
            if is_done(job):  # finished by another sweep meanwhile
                lock.release()
                report(dict(run_id=job["run_id"], status="done", error="", row=None, seconds=0))
            else:
                a = idle.pop()
                pending[a.run.remote(job, cpus_per_task)] = (job, lock, a)

        while queue or later or pending:
            claim_next(queue, later, idle, start)
            if not pending:  # holding no claim now, so waiting for the other sweep's cannot deadlock
                if later:
                    job = later.pop(0)
                    start(job, claim(job, wait=True))
                continue
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0 if later else None)
            for ref in ready:
                report(collect(ref, pending, idle, actor))
    finally:
        for _, lock, _ in pending.values():
            lock.release()
        if started:
            ray.shutdown()


def ray_actors(cpus_per_task: int):
    """The sweep's `Runner` actor class on this cluster (`cpus_per_task` CPUs, one GPU where the cluster has GPUs)
    and how many of them fit at once."""
    import ray  # deferred, as in run_ray
    res = ray.cluster_resources()
    gpus = 1 if res.get("GPU", 0) >= 1 else 0
    most = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
    if cpus_per_task > most:  # Ray would wait forever for a node that big
        raise ConfigError(f"--cpus-per-task {cpus_per_task}: no node of the Ray cluster has that many CPUs "
                          f"(the largest has {most:g})")
    actor = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus, max_restarts=0)(Runner)
    slots = int(res.get("CPU", 0) // cpus_per_task)
    return actor, max(1, min(slots, int(res["GPU"])) if gpus else slots)


def claim_next(queue: list[dict], later: list[dict], idle: list, start: Callable) -> None:
    """While an actor is idle, claim the queue's next jobs and `start` them; claims never wait here: a run claimed
    by another sweep is put off to `later`, and those are tried again each time round (not waited for)."""
    while idle and queue:
        job = queue.pop(0)
        lock = claim(job, wait=False)
        if lock is None:
            later.append(job)
        else:
            start(job, lock)
    for job in list(later):
        lock = claim(job, wait=False) if idle else None
        if lock is not None:
            later.remove(job)
            start(job, lock)


def collect(ref, pending: dict, idle: list, actor) -> Outcome:
    """A finished Ray run's outcome, its rows appended by the driver and its claim released; an actor that died
    (not the run) is replaced, and its run still gets one failed row."""
    import ray  # deferred, as in run_ray
    job, lock, a = pending.pop(ref)
    try:
        out = ray.get(ref)
        replay(out.pop("writes"), job["config"]["results_dir"])
        idle.append(a)
    except ray.exceptions.RayError as e:
        row = record_failure(job, one_line(e))
        out = dict(run_id=job["run_id"], status="failed", error=row["error"], row=row, seconds=0)
        idle.append(actor.remote(job_env()))
    finally:
        lock.release()
    return out


EXECUTORS = {"local": run_local, "ray": run_ray}


def execute(p, executor: str = "local", whole_runs: int | None = None, **executor_kw) -> dict[str, int]:
    """Run a plan's jobs with a progress bar (runs done / total, failures, ETA) and the plan's estimated time from
    its first run's first batches (`whole_runs`: the runs a race may take in all); returns counts by outcome."""
    from tqdm.auto import tqdm  # deferred: `bench --help` imports this module
    labels = {j["run_id"]: label(j) for j in p.jobs}
    counts = {"ok": 0, "failed": 0, "done": 0, "interrupted": 0}
    # disable=None: no bar when stderr is a file or pipe (tqdm would redraw it into the log); the lines stay
    bar = tqdm(total=p.total, initial=p.total - len(p.jobs), desc=f"sweep {p.name}", unit="run", file=sys.stderr,
               dynamic_ncols=True, disable=None)
    bar.set_postfix(failed=0)

    def say(line: str) -> None:  # above the bar, on stderr with the sweep's other lines (tqdm.write's default: stdout)
        bar.write(line, file=sys.stderr)

    def report(out: dict) -> None:
        counts[out["status"]] = counts.get(out["status"], 0) + 1
        name = f"{labels.get(out['run_id'], out['run_id'])} (run {out['run_id']})"
        if out["status"] == "ok":
            acc = out["row"].get("final_accuracy")
            acc_s = f"accuracy {float(acc):.4f}" if acc not in (None, "") else "no epochs"
            weights = out["row"].get("weights_used") or "?"  # the workers' own warnings are not shown
            cpu = f", CPU {out['cpu_seconds']:.0f} s" if out.get("cpu_seconds") else ""
            say(f"bench: ok     {name}: {acc_s}, {run_seconds(out)}{cpu}, weights {weights}")
        elif out["status"] == "failed":
            say(f"bench: FAILED {name}: {out['error']}")
        elif out["status"] == "interrupted":
            say(f"bench: interrupted {name} (a restarted sweep runs it again)")
        else:
            say(f"bench: {name} was finished by another sweep")
        bar.update(1)
        bar.set_postfix(failed=counts["failed"])

    slots = executor_kw.get("workers") or (default_slots(max(map(job_threads, p.jobs), default=1))
                                            if executor == "local" else None)
    try:
        with PlanEstimate(p.jobs, slots, say, labels, whole_runs):
            EXECUTORS[executor](p.jobs, report, **executor_kw)
    finally:
        bar.close()
    return counts
