"""Result files: whole-line appends under a file lock, atomic whole-file writes, and the locks themselves.

A killed writer never leaves a half-written line: each batch of rows is encoded first and handed to a single
`os.write` on an O_APPEND descriptor, under an exclusive lock so concurrent sweeps interleave whole lines only.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from filelock import FileLock

from .config import ConfigError


class TidyFileLock(FileLock):
    """A FileLock whose file is removed when its last hold is released, so no `*.lock` files pile up in results/
    (one per run's epoch log and claim, before). Make it with `tidy_lock`, which records the inode it locked.

    Why this keeps mutual exclusion: the file is unlinked while the lock is still held, and only if the path still
    names the inode this lock holds; then the lock is released. A process that opened the old file before the unlink
    and gets its flock afterwards finds it unlinked (no links left) and tries again on the path, where at most one
    new file can be created (filelock >= 4.3 makes that check; pyproject requires it), so two holders never hold
    two different files at one path. A holder's work is over before it unlinks, so a newcomer locking a fresh file
    meanwhile overlaps with nothing."""

    def release(self, force: bool = False) -> None:
        inode = self.held_inode.get("inode")
        if inode is not None and self.is_locked and (force or self.lock_counter == 1):
            try:
                st = os.lstat(self.lock_file)
                if (st.st_dev, st.st_ino) == inode:
                    os.unlink(self.lock_file)
            except OSError:  # gone already (removed by hand), or a read-only folder: the lock still works
                pass
        super().release(force)


def tidy_lock(path: str | Path, timeout: float = -1) -> TidyFileLock:
    """A TidyFileLock on `path` (the lock file itself); `timeout` as FileLock's (0: try once, -1: wait)."""
    held: dict = {}

    def remember(fd: int) -> None:  # filelock calls it with the descriptor it has just locked
        st = os.fstat(fd)
        held["inode"] = (st.st_dev, st.st_ino)

    lock = TidyFileLock(str(path), timeout=timeout, on_acquired=remember)
    lock.held_inode = held
    return lock


@contextmanager
def locked(path: Path):
    """`path` + ".lock" held for a whole-line append (removed afterwards)."""
    with tidy_lock(str(path) + ".lock", timeout=600):
        yield


def encode_rows(rows: Iterable[dict], fields: list[str], header: bool) -> bytes:
    """Rows as CSV bytes, exactly as they are appended to a results file."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    if header:
        w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue().encode()


def read_rows(path: Path) -> list[dict]:
    """All complete rows; a trailing line without newline (a writer killed mid-line elsewhere) is ignored."""
    if not Path(path).exists():
        return []
    text = Path(path).read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def append_rows(path: Path, rows: list[dict], fields: list[str]) -> None:
    """Append rows, writing the header if the file is new. If the file has an older header (other columns), it is
    rewritten once, atomically, with the union of columns so no provenance is dropped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        existing = _header(path)
        if existing is not None and existing != fields:
            union = existing + [f for f in fields if f not in existing]
            if union != existing:
                old = read_rows(path)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                tmp.write_bytes(encode_rows(old, union, header=True))
                os.replace(tmp, path)
            fields = union
        data = encode_rows(rows, fields, header=existing is None)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (a signal, a full disk, a pipe): go on until all of it is written, and
    raise rather than return with a line cut short."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(f"write made no progress ({len(view)} of {len(data)} bytes left)")
        view = view[n:]


def check_writable(folder: str | Path) -> Path:
    """New files can be made in `folder` (or, while it does not exist yet, in the nearest folder above it that
    does) and its CSVs can be appended to; else one ConfigError line. Called before any work, so a run or a
    measurement never ends in a write error; it leaves nothing behind, not even the folder."""
    folder = Path(folder)
    try:
        probe_dir = folder
        while not probe_dir.exists() and probe_dir != probe_dir.parent:
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise NotADirectoryError(20, "a file is in the way of the folder", str(probe_dir))
        fd, probe = tempfile.mkstemp(dir=probe_dir, prefix=".bench-write-check-")
        os.close(fd)
        os.remove(probe)
        for existing in folder.glob("*.csv") if folder.is_dir() else ():
            if not os.access(existing, os.W_OK):
                raise PermissionError(13, "file is read-only", str(existing))
    except OSError as e:
        raise ConfigError(f"results_dir: cannot write to {e.filename or folder} ({e.strerror or type(e).__name__}); "
                          f"pass a writable folder with --results-dir (make: RESULTS=...) or fix its permissions") \
            from None
    return folder


def atomic_write(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, encoding="utf-8") as f:
        return next(csv.reader([f.readline()]))
