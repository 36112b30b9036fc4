"""Lock files do not pile up in results/ and results/claims/, and removing them keeps mutual exclusion."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.files import append_rows, locked, read_rows, tidy_lock

ROOT = Path(__file__).resolve().parents[1]


def test_appends_leave_no_lock_files(tmp_path):
    for i in range(3):
        append_rows(tmp_path / "runs.csv", [{"a": i}], ["a"])
        append_rows(tmp_path / "x" / "epochs" / f"run{i}.csv", [{"a": i}], ["a"])
    assert [r["a"] for r in read_rows(tmp_path / "runs.csv")] == ["0", "1", "2"]
    assert sorted(p.name for p in tmp_path.rglob("*.lock")) == []


def test_a_released_claim_leaves_no_file_and_a_held_one_excludes(tmp_path):
    from bench.sweep.worker import claim, claim_path
    job = {"config": {"results_dir": str(tmp_path)}, "run_id": "abc"}
    lock = claim(job, wait=False)
    assert lock is not None and claim_path(tmp_path, "abc").exists()
    assert claim(job, wait=False) is None  # held: a second claimant is refused (another lock object)
    lock.release()
    assert not claim_path(tmp_path, "abc").exists()
    again = claim(job, wait=False)
    assert again is not None
    again.release()
    assert list((tmp_path / "claims").iterdir()) == []


def test_nested_holds_remove_the_file_on_the_last_release(tmp_path):
    lock = tidy_lock(tmp_path / "n.lock", timeout=0)
    with lock:
        with lock:
            pass
        assert (tmp_path / "n.lock").exists(), "still held by the outer hold"
    assert not (tmp_path / "n.lock").exists()


def test_a_lock_file_left_by_a_killed_holder_is_taken_and_removed(tmp_path):
    stale = tmp_path / "claims" / "r.lock"
    stale.parent.mkdir()
    stale.write_text("")  # kill -9 releases the flock but leaves the file
    lock = tidy_lock(stale, timeout=0)
    lock.acquire()
    lock.release()
    assert not stale.exists()


def test_a_file_replaced_by_hand_is_not_removed(tmp_path):
    path = tmp_path / "h.lock"
    lock = tidy_lock(path, timeout=0)
    lock.acquire()
    path.unlink()
    path.write_text("someone else's")  # not the inode this lock holds
    lock.release()
    assert path.read_text() == "someone else's"


COUNTER = """
import sys, time
from pathlib import Path
from bench.files import locked, tidy_lock
from filelock import Timeout
counter, n, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for i in range(n):
    if mode == "wait":
        with locked(counter):
            counter.write_text(str(int(counter.read_text()) + 1))
    else:  # the claims' way: try once, else come back later
        while True:
            lock = tidy_lock(str(counter) + ".lock", timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue
            try:
                counter.write_text(str(int(counter.read_text()) + 1))
            finally:
                lock.release()
            break
"""


def test_removing_lock_files_keeps_mutual_exclusion(tmp_path):
    """Six processes (three waiting, three trying) increment one counter 200 times each under the same lock path,
    whose file is removed and re-created at every release: a lost update would show as a smaller total."""
    counter = tmp_path / "counter"
    counter.write_text("0")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", COUNTER, str(counter), "200", mode], env=env)
             for mode in ("wait", "try") * 3]
    assert [p.wait(timeout=600) for p in procs] == [0] * 6
    assert counter.read_text() == str(6 * 200)
    assert not Path(str(counter) + ".lock").exists()
