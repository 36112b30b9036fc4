"""`bench race EXP`: which backbone, at a fraction of the full factorial's compute (F-Race, Birattari et al. 2002),
judged by the report's own comparison (bench/stats.py).

Candidates are the experiment's arch entries with their settings, labelled by what differs between them
("tf_efficientnet_lite0 (pretrained=true)"); instances are its (seed, fold) pairs in a fixed order (seeds outer,
folds inner). Each round runs every candidate still racing on the next instance through the sweep's plan and
executor, so every evaluation is an ordinary run row: resumable after `kill -9`, and any finished run of the same
identity (an earlier sweep's or race's) is reused instead of trained again.

From `min_instances` on, every round is one look (racelook.py): `bench.stats.compare_all` on the runs so far, per
image where the runs recorded per-image outcomes. Worse -> eliminated; equivalent within the margin, or futile
(neither reachable by the last instance) -> kept as a survivor but no longer run. The race spends its alpha over
every look and every pair of candidates (Bonferroni: alpha / (looks x pairs), looks = instances - min_instances + 1),
so the chance that it ever eliminates a candidate that is not worse is at most alpha whichever round it stops in.
It stops as soon as no survivor but the leader is still racing, at the last instance, or before a round would pass
the compute budget. Its decision is `bench.stats.verdict` on all its runs (the eliminated and failed candidates'
included): the words the report prints for the same runs. A "winner" is only a candidate separated from every
rival; one left because its rivals' runs failed is the "only survivor after failures".

The log (racelog.py) is `results/races/<experiment>.csv`, one row per round, keyed by what was raced.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from math import comb
from pathlib import Path
from typing import Callable

import pandas as pd

from ..config import ConfigError
from ..stats import ALPHA, MARGIN, MIN_INSTANCES, METHOD, Verdict, verdict
from .experiment import Experiment
from .racelog import (LOG_FIELDS, candidate_labels, encode_key, instance_words, names, race_key,  # noqa: F401
                      replayable, resolve_dataset, write_log)  # LOG_FIELDS, resolve_dataset: for the CLI and tests
from .raceruns import METRIC, Evaluate, Score, evaluate_runs  # noqa: F401 (Score, evaluate_runs: CLI, tests)
from .racelook import FUTILITY, Look, cost_of, look, n_train_of, outcomes_of, runs_frame

TEST = "bench.stats gap"   # the log's `test`: the report's comparison (seed and image noise)


@dataclass
class RaceResult:
    name: str
    decision: str             # winner | equivalent | tie | survivor | incomplete | budget | failed
    survivors: list[str]      # best mean first
    means: dict[str, float]   # each survivor's mean metric over the instances it ran
    rounds: list[dict] = field(default_factory=list)  # the log rows
    runs_used: int = 0
    full_runs: int = 0
    rule: str = ""
    verdict: Verdict | None = None  # bench.stats.verdict on every run of the race
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def words(self) -> str:
        return self.verdict.words if self.verdict else ""

    @property
    def compute_pct(self) -> float:
        return 100 * self.runs_used / self.full_runs if self.full_runs else math.nan


def log_path(results_dir: str | Path, name: str) -> Path:
    return Path(results_dir) / "races" / f"{name}.csv"


def rule_text(alpha: float, margin: float, looks: int, pairs: int, min_instances: int) -> str:
    return (f"from instance {min_instances} on, each round compares every survivor with the leader ({METHOD}); "
            f"race-wide alpha {alpha:g} over {looks} look(s) x {pairs} pair(s): level {alpha / (looks * pairs):.4g} "
            f"per comparison; worse: eliminated; equivalent within {100 * margin:g} pp, or {FUTILITY}: kept, no "
            "longer run; stops when no survivor but the leader is racing, at the last instance or at the budget; "
            "decision: bench.stats.verdict on every run of the race")


@dataclass
class _State:
    """Who is where after a round."""
    alive: list[str]      # survivors (not eliminated, not failed), the leader first
    running: list[str]    # who runs the next instance
    scores: dict[str, dict] = field(default_factory=dict)  # candidate -> {instance: Score}


def race(exp: Experiment, evaluate: Evaluate, min_instances: int = MIN_INSTANCES, alpha: float = ALPHA,
         margin: float = MARGIN, budget_pct: float = 100.0, log: Path | None = None,
         echo: Callable[[str], None] | None = None, retry_failed: bool = False, dataset: dict | None = None
         ) -> RaceResult:
    """Race the experiment's arch entries over its instances; `evaluate` runs a round's configs (see
    `evaluate_runs`). Writes the log after every round when `log` is given, and replays it when it exists."""
    check_settings(min_instances, alpha, margin, budget_pct)
    echo = echo or (lambda line: None)
    cands = candidate_labels(exp, (dataset or {}).get("identities"))
    full = len(cands) * len(exp.instances)
    budget = math.floor(full * budget_pct / 100 + 1e-9)
    check_race(exp, min_instances, budget, budget_pct)
    looks, pairs = len(exp.instances) - min_instances + 1, comb(len(cands), 2)
    level, rule = alpha / (looks * pairs), rule_text(alpha, margin, looks, pairs, min_instances)
    key = race_key(exp, cands, dataset, alpha, margin, min_instances, rule)
    recorded = replayable(log, exp.name, key, retry_failed, echo)
    echo(f"bench: race {exp.name}: {len(cands)} candidates ({', '.join(cands)}) x {len(exp.instances)} instances "
         f"(seed, fold) = {full} runs in the full factorial; rule: {rule}" + (f" -> {log}" if log else "")
         + (f"; replaying {len(recorded)} logged round(s)" if recorded else ""))
    st = _State(list(cands), list(cands), {c: {} for c in cands})
    result = RaceResult(exp.name, "", [], {}, full_runs=full, rule=rule)
    ctx = dict(alpha=alpha, margin=margin, level=level, key=encode_key(key), min_instances=min_instances, rule=rule)
    for r, instance in enumerate(exp.instances, 1):
        old = recorded[r - 1] if r <= len(recorded) else None
        asked = [s for s in st.running if not old or s not in names(old["failed"])]  # logged failures stay out
        got = dict(zip(asked, evaluate([exp.cell(cands[s], instance) for s in asked]))) if asked else {}
        result.runs_used += len(st.running)
        failed = [s for s in st.running if got.get(s) is None]
        for s in st.running:
            if s not in failed:
                st.scores[s][instance] = got[s] if isinstance(got[s], Score) else Score(float(got[s]))
        row, st = _round(exp, st, r, failed, result.runs_used, budget, ctx)
        if old and not (old["decision"] == "budget" and row["decision"] != "budget"):  # a larger --budget goes on
            row, st = _replayed(exp.name, row, old, log, echo), _State(names(old["survivors"]),
                                                                         names(old.get("racing")), st.scores)
        else:
            if row["decision"] == "final":
                result.verdict = _verdict(st.scores, ctx)
                row.update(decision=decision_of(result.verdict, st), verdict=result.verdict.words)
            if log is not None:
                write_log(log, [*result.rounds, row])
        result.rounds.append(row)
        echo(round_line(row))
        if row["decision"] != "continue":
            break
    result.verdict = result.verdict or _verdict(st.scores, ctx)
    result.decision, result.runs = result.rounds[-1]["decision"], runs_frame(st.scores)
    result.means = {s: _mean(st.scores[s]) for s in st.alive}
    result.survivors = sorted(st.alive, key=result.means.get, reverse=True)
    return result


def check_race(exp: Experiment, min_instances: int, budget: int, budget_pct: float) -> None:
    full = len(exp.labels) * len(exp.instances)
    if len(exp.labels) < 2:
        raise ConfigError(f"{exp.path}: archs: a race needs at least two candidates, got {len(exp.labels)}")
    if len(exp.instances) < min_instances:
        raise ConfigError(f"{exp.path}: {len(exp.instances)} instance(s) (seeds x folds), fewer than --min-instances "
                          f"{min_instances}: nothing could be compared. Add seeds or folds to the file, or pass "
                          f"--seeds / --folds")
    if budget < len(exp.labels) * min_instances:
        raise ConfigError(f"--budget: {budget_pct:g} % of {full} runs is {budget} runs, less than the "
                          f"{len(exp.labels) * min_instances} of the first {min_instances} rounds; raise it")


def _round(exp: Experiment, st: _State, r: int, failed: list[str], runs_used: int, budget: int,
           ctx: dict) -> tuple[dict, _State]:
    """The state after round r, from the runs so far, and its log row ("final": the verdict decides)."""
    alive = [c for c in st.alive if c not in failed]
    lk = Look(None)
    if r >= ctx["min_instances"] and len(alive) >= 2:
        lk = look(runs_frame({c: st.scores[c] for c in alive}), outcomes_of(st.scores), ctx["level"],
                  ctx["margin"], list(exp.instances[r:]), n_train_of(st.scores))
    worse = lk.having("worse")
    alive = [c for c in alive if c not in worse]
    means = {c: _mean(st.scores[c]) for c in alive}
    alive.sort(key=lambda c: (c != lk.leader, -means[c]))  # the leader first, then by mean
    if r < ctx["min_instances"] or lk.leader is None:
        running = alive if len(alive) >= 2 else []
    else:
        racing = lk.having("racing")
        running = [lk.leader, *racing] if racing else []
    last, over = r == len(exp.instances), runs_used + len(running) > budget
    decision = "final" if not running or last else "budget" if over else "continue"
    row = dict(race=exp.name, round=r, instance=instance_words(exp.instances[r - 1]), n_instances=r,
               survivors=";".join(alive), racing=";".join(running), eliminated=";".join(failed + worse),
               failed=";".join(failed), equivalent=";".join(lk.having("equivalent")),
               futile=";".join(lk.having("futile")), best=alive[0] if alive else "",
               test=TEST if lk.claims else "", statistic=_num(lk.diff), p_value=_num(lk.p), alpha=ctx["alpha"],
               margin=ctx["margin"], level=f"{ctx['level']:.10g}", decision=decision, runs_used=runs_used,
               full_factorial_runs=len(exp.labels) * len(exp.instances), rule=ctx["rule"], verdict="",
               key=ctx["key"], timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return row, _State(alive, running, st.scores)


def _replayed(name: str, row: dict, old: dict, log: Path | None, echo) -> dict:
    """The logged round stands (racelog.py); say so if the runs now read otherwise."""
    lost = [s for s in names(row["failed"]) if s not in names(old["failed"])]
    if lost:
        raise ConfigError(f"{log}: round {row['round']} kept {', '.join(lost)}, whose run on {row['instance']} is not "
                          f"in the results now: the log cannot be replayed. Move it away to start the race anew")
    differs = [k for k in ("survivors", "racing", "eliminated", "equivalent", "futile")
               if str(old.get(k, "")) != str(row[k])]
    if row["decision"] != old["decision"] and (row["decision"] != "final" or old["decision"] in ("continue",
                                                                                               "budget")):
        differs.append("decision")
    if differs:
        echo(f"bench: race {name} round {row['round']}: the recorded runs now give another {', '.join(differs)} "
             f"({'; '.join(f'{k} {row[k]!r}' for k in differs)}); the log's round stands")
    return old


def _verdict(scores: dict[str, dict], ctx: dict) -> Verdict:
    """bench.stats.verdict on every run of the race: the words the report prints for the same runs."""
    return verdict(runs_frame(scores), outcomes_of(scores), alpha=ctx["alpha"], margin=ctx["margin"],
                   cost=cost_of(scores), n_train=n_train_of(scores))


def decision_of(v: Verdict, st: _State) -> str:
    """The race's decision from the verdict on its runs: a winner only by separation from every rival (one whose
    rivals failed before they could be separated is the only survivor after failures)."""
    if not st.alive:
        return "failed"
    rivals = [c for c in st.scores if c != v.leader]
    separated = set(v.comparisons[v.comparisons.claim == "worse"].candidate) if len(v.comparisons) else set()
    if v.kind == "use":
        return "winner" if set(rivals) <= separated else "survivor"
    if v.kind == "single" or (v.kind == "incomplete" and len(st.alive) == 1):
        return "survivor"
    return v.kind if v.kind in ("equivalent", "tie") else "incomplete"


def _mean(by: dict) -> float:
    return sum(s.value for s in by.values()) / len(by) if by else math.nan


def check_settings(min_instances: int, alpha: float, margin: float, budget_pct: float) -> None:
    if min_instances < MIN_INSTANCES:
        raise ConfigError(f"--min-instances: {min_instances} is below {MIN_INSTANCES}, the fewest shared instances "
                          f"on which bench compares two candidates (the report ranks nothing below {MIN_INSTANCES})")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha: {alpha} must be between 0 and 1")
    if not 0 <= margin < 1:
        raise ConfigError(f"--margin: {margin} must be an accuracy difference, >= 0 and < 1 (0.005 = 0.5 pp)")
    if not 0 < budget_pct <= 100:
        raise ConfigError(f"--budget: {budget_pct} must be a percentage of the full factorial, > 0 and <= 100")


def _num(v: float) -> str:
    return "" if not math.isfinite(v) else f"{v:.6g}"


def round_line(row: dict) -> str:
    failed = names(row["failed"])
    out = [f"bench: race {row['race']} round {row['round']} ({row['instance']}): {len(names(row['survivors']))} left"]
    if failed:
        out.append(f"; failed (out): {', '.join(failed)}")
    if row["test"]:
        worse = [e for e in names(row["eliminated"]) if e not in failed]
        out.append(f"; smallest p {row['p_value'] or 'n/a'} (level {float(row['level']):.2g}), "
                   + (f"out: {', '.join(worse)}" if worse else "none out"))
        for k in ("equivalent", "futile"):
            if row[k]:
                out.append(f"; {k} (kept, not run): {', '.join(names(row[k]))}")
    return "".join(out)


DECISIONS = {"winner": "winner {lead}, separated from every rival",
             "equivalent": "no single winner: the leader {lead} and others are equivalent within the margin",
             "tie": "no winner: {lead} leads but is not separated from every rival",
             "survivor": "{lead} is the only survivor after failures, not a winner by separation",
             "incomplete": "no verdict",
             "budget": "compute budget reached; still in: {alive}",
             "failed": "no winner: every candidate's runs failed"}


def summary_line(res: RaceResult, log: Path | None) -> str:
    """The race's outcome in one line, then its decision: `bench.stats.verdict`'s words on the race's runs."""
    lead = res.verdict.leader if res.verdict and res.verdict.leader else (res.survivors or [""])[0]
    what = DECISIONS[res.decision].format(lead=lead, alive=", ".join(res.survivors))
    cost = f"{res.runs_used} of {res.full_runs} runs = {res.compute_pct:.0f} % of the full factorial"
    return (f"bench: race {res.name}: {what} after {len(res.rounds)} round(s); compute {cost} ({METRIC})"
            + (f" -> {log}" if log else "") + f"\n{res.words}")


def print_line(line: str) -> None:
    print(line, file=sys.stderr)
