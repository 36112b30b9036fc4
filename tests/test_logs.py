"""Result files survive a writer killed at any moment, concurrent writers, and older headers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from bench.files import append_rows, read_rows

FIELDS = ["run_id", "payload", "n"]

WRITER = textwrap.dedent("""
    import sys
    from bench.files import append_rows
    path, tag = sys.argv[1], sys.argv[2]
    i = 0
    while True:
        # big rows make a torn write likely if appends were not whole-line
        append_rows(path, [{"run_id": tag, "payload": "x" * 20000, "n": i}], ["run_id", "payload", "n"])
        i += 1
""")


def _start(path, tag):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag])


def _wait_rows(path, n, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if len(read_rows(path)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("writers made no progress")


def test_killed_concurrent_writers_leave_whole_lines(tmp_path):
    path = tmp_path / "runs.csv"
    procs = [_start(path, "a"), _start(path, "b")]
    _wait_rows(path, 20)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    assert raw.count(b"run_id,payload,n") == 1, "exactly one header"
    rows = read_rows(path)
    assert len(rows) == raw.count(b"\n") - 1
    for tag in "ab":
        ns = [int(r["n"]) for r in rows if r["run_id"] == tag]
        assert ns == list(range(len(ns))), "each writer's rows complete and in order"
    assert all(r["payload"] == "x" * 20000 for r in rows)


def test_partial_trailing_line_is_ignored(tmp_path):
    path = tmp_path / "runs.csv"
    append_rows(path, [{"run_id": "a", "payload": "p", "n": 1}], FIELDS)
    with open(path, "a") as f:
        f.write("b,half")  # what a non-atomic writer killed mid-line would leave
    assert [r["run_id"] for r in read_rows(path)] == ["a"]


def test_new_columns_rewrite_header_keeping_old_rows(tmp_path):
    path = tmp_path / "runs.csv"
    append_rows(path, [{"run_id": "old", "payload": "p", "n": 1}], FIELDS)
    append_rows(path, [{"run_id": "new", "payload": "q", "n": 2, "extra": "e"}], FIELDS + ["extra"])
    rows = read_rows(path)
    assert [r["run_id"] for r in rows] == ["old", "new"]
    assert rows[0]["extra"] == "" and rows[1]["extra"] == "e"
    # a writer with the older, narrower field list still appends under the wider header
    append_rows(path, [{"run_id": "older", "payload": "r", "n": 3}], FIELDS)
    assert read_rows(path)[-1] == {"run_id": "older", "payload": "r", "n": "3", "extra": ""}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_short_writes_are_continued(tmp_path, monkeypatch):
    """os.write may take only part of a buffer (signals, nearly full disks): the rest must follow, not be lost."""
    real_write, calls = os.write, []

    def short_write(fd, data):
        calls.append(len(data))
        return real_write(fd, bytes(data[:1000]))

    monkeypatch.setattr(os, "write", short_write)
    path = tmp_path / "runs.csv"
    append_rows(path, [{"run_id": "a", "payload": "x" * 5000, "n": 1}], FIELDS)
    assert len(calls) > 1
    assert read_rows(path) == [{"run_id": "a", "payload": "x" * 5000, "n": "1"}]


def test_a_write_that_makes_no_progress_raises(tmp_path, monkeypatch):
    import pytest
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    with pytest.raises(OSError, match="no progress"):
        append_rows(tmp_path / "runs.csv", [{"run_id": "a", "payload": "p", "n": 1}], FIELDS)


def test_unwritable_results_folder_is_one_config_error(tmp_path):
    import pytest
    from bench.config import ConfigError
    from bench.files import check_writable
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"results_dir: cannot write to .*a_file.*--results-dir"):
        check_writable(tmp_path / "a_file" / "results")
    check_writable(tmp_path / "new" / "results")
    assert os.listdir(tmp_path) == ["a_file"], "the check leaves nothing behind, not even the folder"
