"""A sweep's or race's time before it has run: the first run's own estimate (bench.train.estimate, from its first
training batches) times the plan's runs, shown once, seconds after the first run starts.

The runs are quiet processes of the worker pool (BENCH_CONSOLE=off), so each leaves its estimate as a small file in
a folder the driver names in their environment (BENCH_ESTIMATES) and watches while the plan runs; the folder is
removed when the plan ends. On Ray nodes that do not share the driver's disk no file arrives and nothing is shown.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

from ..train.estimate import ESTIMATES_ENV, duration

POLL = 0.5  # seconds between looks at the folder
_told = [False]  # once per driver: a race's rounds are one plan


def plan_line(seconds: float, what: str, runs: int, slots: int | None, whole: int | None = None) -> str:
    """`bench: estimated 1 min 10 s per run (...); the plan's 15 runs, 2 at a time: about 9 min`."""
    n = whole or runs
    waves = -(-n // slots) if slots else n  # runs one after another on each slot
    where = f", {slots} at a time" if slots else " one after another"
    plan = (f"the race's at most {n} runs (its full factorial or --budget){where}: at most {duration(waves * seconds)}; a race "
            f"usually stops well before" if whole else f"the plan's {n} runs{where}: about {duration(waves * seconds)}")
    return f"bench: estimated {duration(seconds)} per run ({what}, from its first batches); {plan}"


class PlanEstimate:
    """`with PlanEstimate(jobs, slots, say):` gives the jobs the folder for their estimates and says `plan_line` for
    the first one that arrives (`whole`: the runs a race may take, when more than these jobs)."""

    def __init__(self, jobs: list[dict], slots: int | None, say: Callable[[str], None], labels: dict,
                 whole: int | None = None):
        self.jobs, self.slots, self.say, self.labels, self.whole = jobs, slots, say, labels, whole
        self.folder: Path | None = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "PlanEstimate":
        if _told[0] or not self.jobs:
            return self
        self.folder = Path(tempfile.mkdtemp(prefix="bench-estimates-"))
        for job in self.jobs:
            job["env"] = {**job.get("env", {}), ESTIMATES_ENV: str(self.folder)}
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        while not self.stop.wait(POLL):
            for file in sorted(self.folder.glob("*.json")):
                try:
                    got = json.loads(file.read_text())
                except (OSError, ValueError):
                    continue  # written atomically, so only an unreadable folder gets here
                _told[0] = True
                what = self.labels.get(got.get("run_id"), got.get("run_id", "?"))
                self.say(plan_line(float(got["seconds"]), what, len(self.jobs), self.slots, self.whole))
                return

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
