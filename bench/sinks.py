"""Where a run's rows go: appended to files under the results folder (`FileSink`, what `bench run` and the local
sweep use), or kept and handed back to a driver that appends them (`RowSpool`, a Ray task on a node that does not
have the results folder; the driver calls `replay`). Paths given to `write` are relative to the results folder.

A `.csv.gz` path is a whole file, not a log: its rows replace the file at once, gzipped (a run's per-image outcomes,
written once at its end). Rows travel the same way either way, so a Ray task's outcomes reach the driver as rows.
"""
from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

from .files import append_rows, encode_rows


def write_rows(path: Path, rows: list[dict], fields: list[str]) -> None:
    """Append `rows` to the CSV at `path`, or, for a `.gz` path, replace the whole file with them atomically."""
    path = Path(path)
    if path.suffix != ".gz":
        append_rows(path, rows, fields)
        return
    # mtime=0: the same rows give the same bytes (a run repeated gives an identical file)
    data = gzip.compress(encode_rows(rows, fields, header=True), mtime=0)
    replace_file(path, data)


def replace_file(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of one; a write that fails (a full disk, an exception)
    leaves neither a half file nor its temporary one. Only a process killed between the two steps leaves a hidden
    `.<name>.*.tmp` beside it, never a file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the other users of a shared folder
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FileSink:
    """Appends rows to files under `root`, the results folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def write(self, rel: str | Path, rows: list[dict], fields: list[str]) -> None:
        write_rows(self.root / rel, rows, fields)


class RowSpool:
    """Keeps writes instead of making them. With `path`, each write is also appended there as one JSON line, so the
    rows written before the process died (the epochs of a run that segfaulted) are not lost with it."""

    def __init__(self, path: str | Path | None = None):
        self.writes: list[list] = []
        self.path = Path(path) if path else None

    def write(self, rel: str | Path, rows: list[dict], fields: list[str]) -> None:
        item = [Path(rel).as_posix(), list(rows), list(fields)]
        self.writes.append(item)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(item, default=str) + "\n")

    @staticmethod
    def load(path: str | Path) -> list[list]:
        """The writes spooled to `path`; a last line cut short by a crash is left out."""
        if not Path(path).exists():
            return []
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        return [json.loads(line) for line in lines[:-1] if line]  # after the last newline: incomplete


def replay(writes: list[list], root: str | Path) -> None:
    """Write spooled writes under `root`, in order (appended, or a whole `.gz` file); a path that would leave `root`
    is refused."""
    for rel, rows, fields in writes:
        p = Path(rel)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"refusing to write outside the results folder: {rel}")
        write_rows(Path(root) / p, rows, fields)
