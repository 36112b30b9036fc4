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
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from filelock import FileLock


@contextmanager
def locked(path: Path):
    with FileLock(str(path) + ".lock", timeout=600):
        yield


def _encode(rows: Iterable[dict], fields: list[str], header: bool) -> bytes:
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
                tmp.write_bytes(_encode(old, union, header=True))
                os.replace(tmp, path)
            fields = union
        data = _encode(rows, fields, header=existing is None)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


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


# --- per-epoch log
EPOCH_FIELDS = ["run_id", "attempt", "phase", "epoch", "phase_epoch", "train_loss", "valid_loss", "accuracy",
                "top_k_accuracy", "lr", "mom", "seconds"]


def epoch_callback(path: Path, run_id: str, attempt: str):
    """A fastai callback appending one row per epoch (built lazily so importing logs does not import fastai)."""
    from fastai.callback.core import Callback

    class EpochLog(Callback):
        order = 70  # after Recorder (50) has the epoch's metrics
        run_phase, run_epoch = 1, 0  # set by the protocol; the epoch count runs on across both phases

        def __init__(self):
            self.rows: list[dict] = []

        def before_epoch(self):
            self._t0 = time.perf_counter()

        def after_epoch(self):
            self.run_epoch += 1
            names = self.recorder.metric_names[1:-1]  # drop 'epoch' and 'time'
            vals = dict(zip(names, self.recorder.log[1:-1]))
            hyper = self.opt.hypers[-1]
            row = dict(run_id=run_id, attempt=attempt, phase=self.run_phase, epoch=self.run_epoch,
                       phase_epoch=self.learn.epoch + 1, train_loss=vals.get("train_loss"),
                       valid_loss=vals.get("valid_loss"), accuracy=vals.get("accuracy"),
                       top_k_accuracy=vals.get("top_k_accuracy"), lr=hyper.get("lr"), mom=hyper.get("mom"),
                       seconds=round(time.perf_counter() - self._t0, 3))
            self.rows.append(row)
            append_rows(path, [row], EPOCH_FIELDS)

    return EpochLog()


def quiet_libraries() -> None:
    """fastai/geffnet/timm import-time deprecation chatter hides the lines users need to read."""
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*torch.jit.*")


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
