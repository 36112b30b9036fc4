"""`bench race EXP`: which backbone, at a fraction of the full factorial's compute (F-Race, Birattari et al. 2002).

Candidates are the experiment's arch entries (with their per-arch settings); instances are its (seed, fold) pairs in a
fixed order (seeds outer, folds inner). Each round runs every surviving candidate on the next instance through the
sweep's plan and executor, so every evaluation is an ordinary run row: resumable after `kill -9`, and any finished run
of the same identity (an earlier sweep's or race's) is reused instead of trained again. From `min_instances` on, the
candidates significantly worse than the best, paired across the instances seen so far, are eliminated
(`racestats.compare`, one-sided, Bonferroni over the round's comparisons).

The level holds for the whole race, not one round: every round that tests is one look, and the race spends its α
evenly over the looks it could make (Bonferroni: `alpha / looks`, looks = instances - min_instances + 1). By the
union bound, the chance that the race ever eliminates a candidate that is not worse than the best, and so that its
"winner" is wrong, is at most α whichever round it stops in. Looking every round at the full α instead adds up: on
the validation's noisy ties it declared a winner far more often than α (docs/benchmarks.md). The race stops when one
candidate is left (winner), when the survivors are still tied after the last instance (tie: the leader is named,
not separated from the others), or when the next round would pass the compute budget (budget).

The decisions go to `results/races/<experiment>.csv` (racelog.py), one row per round; a restarted race replays it.
Per round: `instance` ("seed S fold F"), `n_instances` (instances so far), `survivors` and `eliminated` (';'-joined
labels, after and by this round; a failed run's candidate is eliminated too and also listed in `failed`), `best` (the
leader on the paired means), `test` (ttest+bonferroni | permutation+bonferroni | friedman+conover | wilcoxon, empty
before --min-instances), `statistic` and `p_value` (see racestats.Outcome), `alpha` (race-wide) and `level` (this
look's), `decision` (continue | winner | tie | budget | failed), `runs_used` (cumulative, reused runs included),
`full_factorial_runs` and `rule` (the test and α rule in words).
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
from .racelog import LOG_FIELDS, names, replayable, write_log  # noqa: F401 (LOG_FIELDS, write_log: the log)
from .racestats import RULES, TESTS, compare

METRIC = "final_accuracy"  # the last epoch's validation accuracy: what the report ranks by


@dataclass(frozen=True)
class Score:
    value: float
    n_valid: int = 0  # validation images: the metric moves in steps of 1/n_valid (0: unknown)


Evaluate = Callable[[list[RunConfig]], list["Score | float | None"]]  # configs -> each run's metric, None if failed


@dataclass
class RaceResult:
    name: str
    decision: str             # winner | tie | budget | failed (no candidate left: every one's runs failed)
    survivors: list[str]      # best mean first
    means: dict[str, float]   # each survivor's mean metric over the instances it ran
    rounds: list[dict] = field(default_factory=list)  # the log rows
    runs_used: int = 0
    full_runs: int = 0
    rule: str = ""

    @property
    def compute_pct(self) -> float:
        return 100 * self.runs_used / self.full_runs if self.full_runs else math.nan


def log_path(results_dir: str | Path, name: str) -> Path:
    return Path(results_dir) / "races" / f"{name}.csv"


def rule_text(test: str, alpha: float, looks: int) -> str:
    return (f"{RULES[test]}; Bonferroni over the round's k-1 rivals of the leader; race-wide alpha {alpha:g} spent "
            f"evenly over {looks} look(s): {alpha / looks:.4g} per round (Bonferroni)")


def race(exp: Experiment, evaluate: Evaluate, min_instances: int = 3, alpha: float = 0.05, test: str = "ttest",
         budget_pct: float = 100.0, log: Path | None = None, echo: Callable[[str], None] | None = None,
         retry_failed: bool = False) -> RaceResult:
    """Race the experiment's arch entries over its instances; `evaluate` runs a round's configs (see
    `evaluate_runs`). Writes the log after every round when `log` is given, and replays it when it exists."""
    check_settings(min_instances, alpha, test, budget_pct)
    echo = echo or (lambda line: None)
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
    looks = len(exp.instances) - min_instances + 1
    level, rule = alpha / looks, rule_text(test, alpha, looks)
    words = [instance_words(i) for i in exp.instances]
    recorded = replayable(log, exp.name, words, rule, retry_failed, echo)
    echo(f"bench: race {exp.name}: {len(exp.labels)} candidates x {len(exp.instances)} instances (seed, fold) = "
         f"{full} runs in the full factorial; eliminating from instance {min_instances} on: {rule}"
         + (f" -> {log}" if log else "") + (f"; replaying {len(recorded)} logged round(s)" if recorded else ""))
    survivors, scores = list(exp.labels), {label: [] for label in exp.labels}
    result = RaceResult(exp.name, "", [], {}, runs_used=0, full_runs=full, rule=rule)
    for r, instance in enumerate(exp.instances, 1):
        old = recorded[r - 1] if r <= len(recorded) else None
        asked = [s for s in survivors if not old or s not in names(old["failed"])]  # logged failures stay out
        got = dict(zip(asked, evaluate([exp.cell(s, instance) for s in asked]))) if asked else {}
        result.runs_used += len(survivors)
        failed = [s for s in survivors if got.get(s) is None]
        for s in survivors:
            if s not in failed:
                scores[s].append(got[s] if isinstance(got[s], Score) else Score(float(got[s])))
        survivors = [s for s in survivors if s not in failed]
        table = pd.DataFrame({s: [x.value for x in scores[s]] for s in survivors})
        out = compare(table, level, test, resolution(scores, survivors)) \
            if r >= min_instances and len(survivors) >= 2 else None
        survivors = [s for s in survivors if not out or s not in out.eliminated]
        survivors.sort(key=lambda s: -sum(x.value for x in scores[s]) / len(scores[s]))  # the leader first
        decision = _decision(survivors, r == len(exp.instances), result.runs_used + len(survivors) > budget)
        row = dict(race=exp.name, round=r, instance=words[r - 1], n_instances=r, survivors=";".join(survivors),
                   eliminated=";".join(failed + (out.eliminated if out else [])), failed=";".join(failed),
                   best=survivors[0] if survivors else "", test=out.test if out else "",
                   statistic=_num(out.statistic if out else math.nan), p_value=_num(out.p_value if out else math.nan),
                   alpha=alpha, level=f"{level:.6g}", decision=decision, runs_used=result.runs_used,
                   full_factorial_runs=full, rule=rule,
                   timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        raised = bool(old) and old["decision"] == "budget" and decision == "continue"
        if raised:  # a larger --budget than the logged race's: it goes on from where the budget stopped it
            old = {**old, "decision": "continue"}
        if old:  # the log's decisions stand (see racelog); say so if the runs now read otherwise
            differs = [k for k in ("survivors", "eliminated", "decision") if str(old.get(k, "")) != str(row[k])]
            if differs:
                echo(f"bench: race {exp.name} round {r}: the recorded runs now give {row['eliminated'] or 'no'} "
                     f"elimination(s) and {row['decision']}; the log's ({old['eliminated'] or 'none'}, "
                     f"{old['decision']}) stands")
            row, survivors, decision = old, names(old["survivors"]), old["decision"]
            lost = [s for s in survivors if len(scores.get(s, ())) != r]
            if lost:
                raise ConfigError(f"{log}: round {r} kept {', '.join(lost)}, whose run on {words[r - 1]} is not in "
                                  f"the results now: the log cannot be replayed. Move it away to start the race anew")
        result.rounds.append(row)
        if log is not None and (not old or raised):
            write_log(log, result.rounds)
        echo(round_line(row, failed))
        if decision != "continue":
            break
    result.decision = decision
    result.means = {s: sum(x.value for x in scores[s]) / len(scores[s]) for s in survivors}
    result.survivors = sorted(survivors, key=result.means.get, reverse=True)
    return result


def instance_words(instance: tuple[int, int]) -> str:
    return f"seed {instance[0]} fold {instance[1]}"


def resolution(scores: dict[str, list[Score]], survivors: list[str]) -> float:
    """The coarsest step of the survivors' metric so far: one validation image of the smallest validation set."""
    known = [x.n_valid for s in survivors for x in scores[s] if x.n_valid > 0]
    return 1 / min(known) if known else 0.0


def _decision(survivors: list[str], last: bool, over_budget: bool) -> str:
    if not survivors:
        return "failed"
    if len(survivors) == 1:
        return "winner"
    return "tie" if last else "budget" if over_budget else "continue"


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
    shown = ", ".join(f"{s} ({100 * res.means[s]:.2f} %)" for s in res.survivors)
    lead, rest = res.survivors[:1], ", ".join(res.survivors[1:])
    what = {"winner": f"winner {shown}",
            "tie": f"no winner: {lead[0] if lead else ''} leads, not separated from {rest} after every instance "
                   f"(tied: {shown})",
            "budget": f"compute budget reached; still in: {shown}",
            "failed": "no winner: every candidate's runs failed"}[res.decision]
    return (f"bench: race {res.name}: {what} after {len(res.rounds)} round(s); compute {cost} ({test}, alpha "
            f"{alpha:g} race-wide, {METRIC})" + (f" -> {log}" if log else ""))


def evaluate_runs(name: str, executor: str = "local", retry_failed: bool = False, **executor_kw) -> Evaluate:
    """Runs a round's configs as an ordinary sweep (plan + execute: finished runs of the same identity are reused)
    and reads each run's metric and validation size from its latest ok row; a run that failed gives None. A run that
    failed before (in this race or a sweep) is not tried again unless `retry_failed`: a restarted race must see
    what its log saw."""
    from ..identity import current_run_id
    from ..logs import read_rows
    from ..train.record import index_path
    from .executors import execute
    from .plan import plan

    def evaluate(configs: list[RunConfig]) -> list[Score | None]:
        p = plan(configs, name, skip_failed=not retry_failed, threads=executor_kw.get("cpus_per_task"))
        if p.jobs:
            counts = execute(p, executor, **executor_kw)
            if counts.get("interrupted"):
                raise KeyboardInterrupt  # stopped by the user, not a failure: the race resumes from here
        latest: dict[str, dict] = {}
        for row in read_rows(index_path(configs[0].results_dir)):
            if row.get("status") == "ok":
                latest[current_run_id(row)] = row
        values = []
        for run_id in p.ids:
            row = latest.get(run_id, {})
            v, n = row.get(METRIC), row.get("n_valid")
            values.append(Score(float(v), int(float(n)) if n not in (None, "") else 0) if v not in (None, "")
                          else None)
        return values

    return evaluate


def print_line(line: str) -> None:
    print(line, file=sys.stderr)
