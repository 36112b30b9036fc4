"""One sweep run in its own process: a child forked by the pool's server (`bench.sweep.forkserver`), or a fresh
`python -m bench.sweep.worker '<job json>'` (one run by hand, with BENCH_DEBUG=1 for tracebacks).

A crash here (exception, NaN loss, out of memory, segfault) cannot take the sweep down; the parent turns a death
without a row into a failed row (`bench.sweep.executors`). The worker, not the parent, holds the run's claim lock, so a
worker orphaned by a killed sweep still keeps a restarted sweep from running the same run id twice; the lock is an
flock, released by the kernel whatever way the process ends.

A job with `spool` (a Ray actor's run, `bench.sweep.executors.Runner`) runs on a node that may not have the results
folder: the driver holds the claim, the worker writes nothing under results_dir and spools its rows to that file
for the driver to append, and `threads` sets torch's thread count to the task's CPUs.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from filelock import FileLock, Timeout

from ..config import make_config
from ..console import one_line, quiet_libraries
from ..identity import current_run_id
from ..files import read_rows, tidy_lock
from ..sinks import RowSpool
from .plan import satisfied

EXIT_OK, EXIT_FAILED, EXIT_BUSY, EXIT_DONE, EXIT_INTERRUPTED = 0, 1, 3, 4, 130


def claim_path(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "claims" / f"{run_id}.lock"


def rows_for(results_dir: str | Path, run_id: str) -> list[dict]:
    from ..train.record import index_path  # deferred: torch; the sweep's driver imports this module
    return [r for r in read_rows(index_path(results_dir)) if current_run_id(r) == run_id]


def is_done(job: dict) -> bool:
    """Finished since the sweep planned: an ok row that is the run asked for (a random-init fallback of a run that
    asked for weights, now available, is not; `plan.satisfied`)."""
    return satisfied(rows_for(job["config"]["results_dir"], job["run_id"]), make_config(**job["config"]))


def show_traceback() -> None:
    """The failed row and the sweep's line say what went wrong; the traceback is for BENCH_DEBUG=1."""
    if os.environ.get("BENCH_DEBUG", "") not in ("", "0"):
        traceback.print_exc(file=sys.stderr)


def claim(job: dict, wait: bool) -> FileLock | None:
    """The run's claim lock, held (blocking until free when `wait`), or None when another process holds it."""
    path = claim_path(job["config"]["results_dir"], job["run_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = tidy_lock(path, timeout=-1 if wait else 0)  # its file is removed on release (bench.files.TidyFileLock)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


def record_failure(job: dict, error: str, sink=None) -> dict:
    """A failed row for a job whose run ended before the protocol could record it (appended, or through `sink`)."""
    from ..train.record import record_failure as record  # deferred: torch (see rows_for)
    return record(make_config(**job["config"]), job["run_id"], job["fingerprint"], job["split_hash"],
                  job.get("dataset_name", job["config"]["dataset"]), error, sink=sink, ident=job.get("identity"))


def main(argv: list[str]) -> int:
    quiet_libraries()
    return run_job(json.loads(argv[0]))


def run_job(job: dict) -> int:
    """Claim, check and run one job in this process; the exit code says what became of it (EXIT_*)."""
    if job.get("spool"):  # a Ray task: the driver holds the claim and is the only writer of results_dir
        return execute(job, RowSpool(job["spool"]))
    lock = claim(job, wait=bool(job.get("wait")))
    if lock is None:
        return EXIT_BUSY
    try:
        if is_done(job):  # finished by another sweep since this one planned
            return EXIT_DONE
        return execute(job)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the run recorded itself as interrupted
        return EXIT_INTERRUPTED
    except Exception as e:  # e.g. the index unreadable: say so in the run's row rather than as a bare exit code
        show_traceback()
        record_failure(job, one_line(e))
        return EXIT_FAILED
    finally:
        lock.release()


def execute(job: dict, sink=None) -> int:
    """Resolve and train the job; its rows go to results_dir, or through `sink` (nothing written under
    results_dir then: the dataset is resolved and the split computed on this node, and the run id check below
    proves they are the ones the sweep planned)."""
    # deferred: torch and fastai, which only the run's own process needs
    from ..train.prepare import Resolver
    from ..train.protocol import run
    if job.get("threads"):
        import torch  # deferred: the sweep's driver imports this module
        torch.set_num_threads(int(job["threads"]))
    try:
        cfg = make_config(**job["config"])
        prepared = Resolver(write=sink is None).prepare(cfg)
        if prepared.run_id != job["run_id"]:
            planned = job.get("identity") or {}
            differ = sorted(k for k in set(planned) | set(prepared.ident) if planned.get(k) != prepared.ident.get(k))
            raise RuntimeError(f"run id is {prepared.run_id} here but {job['run_id']} when the sweep was planned: "
                               + ", ".join(f"{k} {planned.get(k)} -> {prepared.ident.get(k)}" for k in differ)
                               + " (the dataset changed during the sweep, or this node differs from the planner's)")
    except Exception as e:
        show_traceback()
        record_failure(job, one_line(e), sink)
        return EXIT_FAILED
    try:
        run(cfg, prepared, sink=sink)  # records its own row, ok or failed
    except Exception:
        show_traceback()
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
