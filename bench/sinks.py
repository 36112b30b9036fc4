"""Where a run's rows go: appended to files under the results folder (`FileSink`, what `bench run` and the local
sweep use), or kept and handed back to a driver that appends them (`RowSpool`, a Ray task on a node that does not
have the results folder; the driver calls `replay`). Paths given to `write` are relative to the results folder.
"""
from __future__ import annotations

import json
from pathlib import Path

from .logs import append_rows


class FileSink:
    """Appends rows to files under `root`, the results folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def write(self, rel: str | Path, rows: list[dict], fields: list[str]) -> None:
        append_rows(self.root / rel, rows, fields)


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
    """Append spooled writes under `root`, in order; a path that would leave `root` is refused."""
    for rel, rows, fields in writes:
        p = Path(rel)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"refusing to write outside the results folder: {rel}")
        append_rows(Path(root) / p, rows, fields)
