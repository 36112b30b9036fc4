"""The race log, `results/races/<experiment>.csv`: one row per round, rewritten whole after every round, and the rule
for replaying it when a race restarts.

A restarted race replays the logged rounds exactly: their eliminations and decisions are the log's, and a candidate
the log records as failed stays out (its run is not asked for again) unless `--retry-failed`, which replays the rounds
before the first failure and races on from there. A log made under another rule (test, α, looks) or another instance
order is not replayed: the restart is refused, so one log never mixes two rules.
"""
from __future__ import annotations

from pathlib import Path

from ..config import ConfigError

LOG_FIELDS = ["race", "round", "instance", "n_instances", "survivors", "eliminated", "failed", "best", "test",
              "statistic", "p_value", "alpha", "level", "decision", "runs_used", "full_factorial_runs", "rule",
              "timestamp"]


def names(cell: str | None) -> list[str]:
    return [x for x in (cell or "").split(";") if x]


def write_log(path: Path, rows: list[dict]) -> None:
    """The whole log, replaced atomically: a killed race never leaves half a row."""
    from ..logs import atomic_write, encode_rows
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, encode_rows(rows, LOG_FIELDS, header=True))


def read_log(path: Path) -> list[dict]:
    from ..logs import read_rows
    return read_rows(path) if path.is_file() else []


def replayable(path: Path | None, name: str, instances: list[str], rule: str, retry_failed: bool,
               echo) -> list[dict]:
    """The logged rounds a restarted race takes as they are (see the module's doc); [] for a new race."""
    rows = read_log(path) if path is not None else []
    if not rows:
        return []
    if "rule" not in rows[0]:  # written before races stated their rule: nothing to hold the replay to
        echo(f"bench: race {name}: {path} was written by an older bench (no rule column); racing afresh")
        return []
    if rows[0]["rule"] != rule:
        raise ConfigError(f"{path}: race {name} was run under \"{rows[0]['rule']}\"; this command asks for "
                          f"\"{rule}\". Restart it with the same --test/--alpha/--min-instances and instances, or "
                          f"move the log away to start a new race")
    for i, row in enumerate(rows):
        if i >= len(instances) or row.get("instance") != instances[i] or row.get("round") != str(i + 1):
            raise ConfigError(f"{path}: round {row.get('round')} raced {row.get('instance')!r}, not "
                              f"{instances[i] if i < len(instances) else 'an instance of this experiment'}: the "
                              f"seeds or folds changed. Use the logged ones, or move the log away to start anew")
    if retry_failed:
        first = next((i for i, row in enumerate(rows) if names(row.get("failed"))), len(rows))
        rows = rows[:first]
    return rows
