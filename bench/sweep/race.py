"""`bench race EXP`: which backbone, at a fraction of the full factorial's compute (F-Race, Birattari et al. 2002).

Candidates are the experiment's arch entries (with their per-arch settings); instances are its (seed, fold) pairs in a
fixed order (seeds outer, folds inner). Each round runs every surviving candidate on the next instance through the
sweep's plan and executor, so every evaluation is an ordinary run row: resumable after `kill -9`, and any finished run
of the same identity (an earlier sweep's or race's) is reused instead of trained again. From `min_instances` on, the
candidates significantly worse than the best, paired across the instances seen so far, are eliminated
(`racestats.compare`). The race stops when one candidate is left (winner), when the survivors are still tied after
the last instance (tie), or when the next round would pass the compute budget (budget).

The decisions go to `results/races/<experiment>.csv`, one row per round, rewritten whole after every round: a
restarted race replays the rounds from the recorded runs (deterministic) and writes the same log. Per round:
`instance` ("seed S fold F"), `n_instances` (instances so far), `survivors` and `eliminated` (';'-joined labels, after
and by this round; a failed run's candidate is eliminated too), `test` (friedman+conover | wilcoxon | ttest+holm, empty
before --min-instances), `statistic` and `p_value` (see racestats.Outcome), `decision` (continue | winner | tie |
budget | failed), `runs_used` (cumulative, reused runs included) and `full_factorial_runs`.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from ..config import ConfigError, RunConfig
from .experiment import Experiment
from .racestats import TESTS, compare

LOG_FIELDS = ["race", "round", "instance", "n_instances", "survivors", "eliminated", "test", "statistic", "p_value",
              "alpha", "decision", "runs_used", "full_factorial_runs", "timestamp"]
METRIC = "final_accuracy"  # the last epoch's validation accuracy: what the report ranks by

Evaluate = Callable[[list[RunConfig]], list[float | None]]  # configs -> the metric of each run, None if it failed


@dataclass
class RaceResult:
    name: str
    decision: str             # winner | tie | budget | failed (no candidate left: every one's runs failed)
    survivors: list[str]
    means: dict[str, float]   # each survivor's mean metric over the instances it ran
    rounds: list[dict] = field(default_factory=list)  # the log rows
    runs_used: int = 0
    full_runs: int = 0

    @property
    def compute_pct(self) -> float:
        return 100 * self.runs_used / self.full_runs if self.full_runs else math.nan


def log_path(results_dir: str | Path, name: str) -> Path:
    return Path(results_dir) / "races" / f"{name}.csv"


def race(exp: Experiment, evaluate: Evaluate, min_instances: int = 3, alpha: float = 0.05, test: str = "ttest",
         budget_pct: float = 100.0, log: Path | None = None, echo: Callable[[str], None] | None = None) -> RaceResult:
    """Race the experiment's arch entries over its instances; `evaluate` runs a round's configs (see
    `evaluate_runs`). Writes the log after every round when `log` is given."""
    check_settings(min_instances, alpha, test, budget_pct)
    echo = echo or (lambda line: None)
    survivors, scores = list(exp.labels), {label: [] for label in exp.labels}
    full = len(exp.labels) * len(exp.instances)
    budget = math.floor(full * budget_pct / 100 + 1e-9)
    if len(exp.labels) < 2:
        raise ConfigError(f"{exp.path}: archs: a race needs at least two candidates, got {len(exp.labels)}")
    if len(exp.instances) < min_instances:
        raise ConfigError(f"{exp.path}: {len(exp.instances)} instance(s) (seeds x folds), fewer than --min-instances "
                          f"{min_instances}: nothing could be eliminated. Add seeds or folds to the file, or pass "
                          f"--seeds / --folds")
    if budget < len(exp.labels) * min_instances:
        raise ConfigError(f"--budget: {budget_pct:g} % of {full} runs is {budget} runs, less than the "
                          f"{len(exp.labels) * min_instances} of the first {min_instances} rounds; raise it")
    result = RaceResult(exp.name, "", [], {}, runs_used=0, full_runs=full)
    for r, instance in enumerate(exp.instances, 1):
        values = evaluate([exp.cell(label, instance) for label in survivors])
        result.runs_used += len(survivors)
        failed = [s for s, v in zip(survivors, values) if v is None]
        for s, v in zip(survivors, values):
            scores[s].append(v)
        survivors = [s for s in survivors if s not in failed]
        table = pd.DataFrame({s: scores[s] for s in survivors})
        out = compare(table, alpha, test) if r >= min_instances and len(survivors) >= 2 else None
        survivors = [s for s in survivors if not out or s not in out.eliminated]
        eliminated = failed + (out.eliminated if out else [])
        if not survivors:
            decision = "failed"
        elif len(survivors) == 1:
            decision = "winner"
        elif r == len(exp.instances):
            decision = "tie"
        elif result.runs_used + len(survivors) > budget:
            decision = "budget"
        else:
            decision = "continue"
        result.rounds.append(dict(
            race=exp.name, round=r, instance=f"seed {instance[0]} fold {instance[1]}", n_instances=r,
            survivors=";".join(survivors), eliminated=";".join(eliminated), test=out.test if out else "",
            statistic=_num(out.statistic if out else math.nan), p_value=_num(out.p_value if out else math.nan),
            alpha=alpha, decision=decision, runs_used=result.runs_used, full_factorial_runs=full,
            timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds")))
        if log is not None:
            write_log(log, result.rounds)
        echo(round_line(result.rounds[-1], failed))
        if decision != "continue":
            break
    result.decision, result.survivors = decision, survivors
    result.means = {s: sum(scores[s]) / len(scores[s]) for s in survivors}
    return result


def check_settings(min_instances: int, alpha: float, test: str, budget_pct: float) -> None:
    if min_instances < 2:
        raise ConfigError(f"--min-instances: {min_instances} must be >= 2 (a paired test needs two instances)")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha: {alpha} must be between 0 and 1")
    if test not in TESTS:
        raise ConfigError(f"--test: {test!r} is not one of {', '.join(TESTS)}")
    if not 0 < budget_pct <= 100:
        raise ConfigError(f"--budget: {budget_pct} must be a percentage of the full factorial, > 0 and <= 100")


def _num(v: float) -> str:
    return "" if not math.isfinite(v) else f"{v:.6g}"


def write_log(path: Path, rows: list[dict]) -> None:
    """The whole log, replaced atomically: a killed race never leaves half a row."""
    from ..logs import atomic_write, encode_rows
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, encode_rows(rows, LOG_FIELDS, header=True))


def round_line(row: dict, failed: list[str]) -> str:
    out = [f"bench: race {row['race']} round {row['round']} ({row['instance']}): "
           f"{len(row['survivors'].split(';')) if row['survivors'] else 0} left"]
    if failed:
        out.append(f"; failed (out): {', '.join(failed)}")
    stat_out = [e for e in row["eliminated"].split(";") if e and e not in failed]
    if row["test"]:
        out.append(f"; {row['test']} p={row['p_value'] or 'n/a'}" + (f", out: {', '.join(stat_out)}" if stat_out
                                                                        else ", none out"))
    return "".join(out)


def summary_line(res: RaceResult, test: str, alpha: float, log: Path | None) -> str:
    cost = f"{res.runs_used} of {res.full_runs} runs = {res.compute_pct:.0f} % of the full factorial"
    ranked = sorted(res.means, key=res.means.get, reverse=True)
    shown = ", ".join(f"{s} ({100 * res.means[s]:.2f} %)" for s in ranked)
    what = {"winner": f"winner {shown}",
            "tie": f"tie between {shown} (not significantly different after every instance)",
            "budget": f"compute budget reached; still in: {shown}",
            "failed": "no winner: every candidate's runs failed"}[res.decision]
    n = len(res.rounds)
    return (f"bench: race {res.name}: {what} after {n} round(s); compute {cost} ({test}, alpha {alpha:g}, "
            f"{METRIC})" + (f" -> {log}" if log else ""))


def evaluate_runs(name: str, executor: str = "local", **executor_kw) -> Evaluate:
    """Runs a round's configs as an ordinary sweep (plan + execute: finished runs of the same identity are reused)
    and reads each run's metric from its latest ok row; a run that failed gives None."""
    from ..logs import read_rows
    from ..train.record import index_path
    from .executors import execute
    from .plan import plan

    def evaluate(configs: list[RunConfig]) -> list[float | None]:
        p = plan(configs, name, threads=executor_kw.get("cpus_per_task"))
        if p.jobs:
            counts = execute(p, executor, **executor_kw)
            if counts.get("interrupted"):
                raise KeyboardInterrupt  # stopped by the user, not a failure: the race resumes from here
        latest: dict[str, dict] = {}
        for row in read_rows(index_path(configs[0].results_dir)):
            if row.get("status") == "ok":
                latest[row["run_id"]] = row
        values = []
        for run_id in p.ids:
            v = latest.get(run_id, {}).get(METRIC)
            values.append(float(v) if v not in (None, "") else None)
        return values

    return evaluate


def print_line(line: str) -> None:
    print(line, file=sys.stderr)
