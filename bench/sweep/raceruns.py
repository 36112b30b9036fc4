"""The race's runs: `Score` (what one run gives the race) and `evaluate_runs`, which runs a round's configs as an
ordinary sweep (the sweep's plan and executor) and reads each run's metric, per-image outcomes and cost back."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..config import RunConfig
from ..identity import current_run_id
from ..files import read_rows
from . import plan as planner
from .executors import execute

METRIC = "final_accuracy"  # the last epoch's validation accuracy: what the report ranks by


@dataclass(frozen=True)
class Score:
    value: float
    n_valid: int = 0          # validation images (0: unknown)
    run_id: str = ""          # "" (synthetic): the race names the run itself
    correct: Any = None       # 0/1 per validation image, a Series indexed by image; None: not recorded
    train_s: float = math.nan
    params: float = math.nan
    n_train: float = math.nan


Evaluate = Callable[[list[RunConfig]], list["Score | float | None"]]  # configs -> each run's metric, None if failed


def score_of(row: dict, results_dir: str, run_id: str) -> Score | None:
    """A run's Score from its ok index row: metric, validation size, per-image correctness (when recorded), cost."""
    from ..report.outcomes import correct_by_item, read_outcomes  # deferred: pandas
    v = row.get(METRIC)
    if v in (None, ""):
        return None
    frame = read_outcomes(results_dir, row)
    correct = correct_by_item(frame).astype(int) if frame is not None and not frame.empty else None

    def num(key: str) -> float:
        try:
            return float(row.get(key) or "nan")
        except ValueError:
            return math.nan
    return Score(float(v), int(num("n_valid")) if num("n_valid") == num("n_valid") else 0, run_id,
                 correct, num("total_seconds"), num("params_total"), num("n_train"))


def evaluate_runs(name: str, executor: str = "local", retry_failed: bool = False, **executor_kw) -> Evaluate:
    """Runs a round's configs as an ordinary sweep (plan + execute: finished runs of the same identity are reused)
    and reads each run's Score from its latest ok row; a run that failed gives None. A run that failed before (in
    this race or a sweep) is not tried again unless `retry_failed`: a restarted race must see what its log saw."""
    from ..train.record import index_path  # deferred: torch

    def evaluate(configs: list[RunConfig]) -> list[Score | None]:
        p = planner.plan(configs, name, skip_failed=not retry_failed, threads=executor_kw.get("cpus_per_task"))
        if p.jobs:
            counts = execute(p, executor, **executor_kw)
            if counts.get("interrupted"):
                raise KeyboardInterrupt  # stopped by the user, not a failure: the race resumes from here
        latest: dict[str, dict] = {}
        for row in read_rows(index_path(configs[0].results_dir)):
            if row.get("status") == "ok":
                latest[current_run_id(row)] = row
        return [score_of(latest[i], configs[0].results_dir, i) if i in latest else None for i in p.ids]

    return evaluate
