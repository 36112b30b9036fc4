"""One sweep run in its own process: `python -m bench.sweep.worker '<job json>'`.

A crash here (exception, NaN loss, out of memory, segfault) cannot take the sweep down; the parent turns a death
without a row into a failed row (`bench.sweep.executors`). The worker, not the parent, holds the run's claim lock, so a
worker orphaned by a killed sweep still keeps a restarted sweep from running the same run id twice; the lock is an
flock, released by the kernel whatever way the process ends.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from filelock import FileLock, Timeout

EXIT_OK, EXIT_FAILED, EXIT_BUSY, EXIT_DONE = 0, 1, 3, 4


def claim_path(results_dir: str | Path, run_id: str) -> Path:
    return Path(results_dir) / "claims" / f"{run_id}.lock"


def rows_for(results_dir: str | Path, run_id: str) -> list[dict]:
    from ..logs import read_rows
    from ..train.record import index_path
    return [r for r in read_rows(index_path(results_dir)) if r.get("run_id") == run_id]


def is_done(results_dir: str | Path, run_id: str) -> bool:
    return any(r.get("status") == "ok" for r in rows_for(results_dir, run_id))


def record_failure(job: dict, error: str) -> dict:
    """A failed row for a job whose run ended before the protocol could record it."""
    from ..config import make_config
    from ..train.record import record_failure as record
    return record(make_config(**job["config"]), job["run_id"], job["fingerprint"], job["split_hash"],
                  job.get("dataset_name", job["config"]["dataset"]), error)


def main(argv: list[str]) -> int:
    from ..logs import quiet_libraries
    quiet_libraries()
    job = json.loads(argv[0])
    results, run_id = job["config"]["results_dir"], job["run_id"]
    path = claim_path(results, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=-1 if job.get("wait") else 0)
    try:
        lock.acquire()
    except Timeout:
        return EXIT_BUSY
    with lock:
        if is_done(results, run_id):  # finished by another sweep since this one planned
            return EXIT_DONE
        from ..config import make_config
        from ..train.prepare import prepare
        from ..train.protocol import run
        from ..train.record import one_line
        try:
            cfg = make_config(**job["config"])
            prepared = prepare(cfg)
            if prepared.run_id != run_id:
                raise RuntimeError(f"run id is {prepared.run_id} here but {run_id} when the sweep was planned "
                                   "(dataset or split changed during the sweep)")
        except Exception as e:
            traceback.print_exc()
            record_failure(job, one_line(e))
            return EXIT_FAILED
        try:
            run(cfg, prepared)  # records its own row, ok or failed
        except Exception:
            traceback.print_exc()
            return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
