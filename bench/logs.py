"""Result files: whole-line appends under a file lock, per-epoch logging from a fastai callback, provenance.

A killed writer never leaves a half-written line: each batch of rows is encoded first and handed to a single
`os.write` on an O_APPEND descriptor, under an exclusive lock so concurrent sweeps interleave whole lines only.
"""
from __future__ import annotations

import csv
import io
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from filelock import FileLock

from .console import console_mode, epoch_line


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
    from .config import ConfigError
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


# --- per-epoch log and console
EPOCH_FIELDS = ["run_id", "attempt", "phase", "epoch", "phase_epoch", "train_loss", "valid_loss", "accuracy",
                "top_k_accuracy", "lr", "mom", "seconds", "train_seconds"]
def epoch_callback(path: Path | None, run_id: str, attempt: str, k: int | None = None, total: int | None = None,
                   console: str | None = None, stream=None, sink=None):
    """A fastai callback that appends one row per epoch to `path` and shows progress (see `console_mode`) in place
    of fastai's ProgressCallback, which redraws its bar into log files. It also times the training batches of each
    epoch (validation excluded) for the run's `train_img_per_s`. Built lazily so importing logs does not import
    fastai. `k`: the top-k really used; `total`: epochs over both phases (both only label the console line).
    `sink`: rows go to `sink.write(path, ...)`, `path` relative to the sink's folder (bench.sinks)."""
    from fastai.callback.core import Callback
    from fastai.callback.progress import ProgressCallback
    from fastcore.basics import noop
    mode = console or console_mode(stream)

    class EpochLog(Callback):
        order = 70  # after Recorder (50) has the epoch's metrics
        run_phase, run_epoch = 1, 0  # set by the protocol; the epoch count runs on across both phases

        def __init__(self):
            self.rows: list[dict] = []
            self.train_seconds, self.train_images = 0.0, 0
            # seconds of each phase's epochs (training batches + validation), unrounded: a run's recorded times.
            # A tracker's start-up (before_fit) or its per-epoch logging (after this callback) falls outside.
            self.phase_seconds: dict[int, float] = {}
            self._bar = None

        def after_create(self):
            self.learn.remove_cbs([cb for cb in self.learn.cbs if isinstance(cb, ProgressCallback)])
            self.learn.logger = noop  # Recorder would print each epoch's raw list

        def before_epoch(self):
            self._t0, self._train_s = time.perf_counter(), 0.0

        def before_train(self):
            self._bar_start("train")
            self._sync()
            self._tt = time.perf_counter()

        def after_batch(self):
            if self.training:
                self.train_images += len(self.learn.yb[0]) if self.learn.yb else 0
            if self._bar is not None:
                self._bar.update(1)

        def after_train(self):
            self._sync()  # CUDA: count the queued work of the last batches as training time
            self._train_s = time.perf_counter() - self._tt
            self.train_seconds += self._train_s
            self._bar_stop()

        def before_validate(self):
            self._bar_start("valid")

        def after_validate(self):
            self._bar_stop()

        def after_epoch(self):
            self.run_epoch += 1
            seconds = time.perf_counter() - self._t0
            self.phase_seconds[self.run_phase] = self.phase_seconds.get(self.run_phase, 0.0) + seconds
            names = self.recorder.metric_names[1:-1]  # drop 'epoch' and 'time'
            vals = dict(zip(names, self.recorder.log[1:-1]))
            hyper = self.opt.hypers[-1]
            row = dict(run_id=run_id, attempt=attempt, phase=self.run_phase, epoch=self.run_epoch,
                       phase_epoch=self.learn.epoch + 1, train_loss=vals.get("train_loss"),
                       valid_loss=vals.get("valid_loss"), accuracy=vals.get("accuracy"),
                       top_k_accuracy=vals.get("top_k_accuracy"), lr=hyper.get("lr"), mom=hyper.get("mom"),
                       seconds=round(seconds, 3), train_seconds=round(self._train_s, 3))
            self.rows.append(row)
            if sink is not None:
                sink.write(path, [row], EPOCH_FIELDS)
            elif path is not None:
                append_rows(path, [row], EPOCH_FIELDS)
            if mode != "off":
                print(epoch_line({**row, "phase_epochs": self.n_epoch}, k, total), file=stream or sys.stderr,
                      flush=True)

        def after_fit(self):
            self._bar_stop()

        def _sync(self):
            import torch
            dev = next(self.learn.model.parameters()).device
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)

        def _bar_start(self, what: str):
            if mode == "bar":
                from tqdm.auto import tqdm
                self._bar = tqdm(total=len(self.dl), desc=f"epoch {self.run_epoch + 1} {what}", leave=False,
                                 file=stream or sys.stderr, unit="batch", dynamic_ncols=True)

        def _bar_stop(self):
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    return EpochLog()


# --- provenance
def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "fastai", "timm", "pytorchcv", "geffnet"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = ""
    return out


def git_sha() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if sha and dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def host() -> str:
    return socket.gethostname()
