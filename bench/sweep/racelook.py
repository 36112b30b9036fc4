"""One look of the race: `bench.stats.compare_all` (the report's comparison) on the race's runs so far, at the level the
race spends on each look, and the futility rule that stops a candidate no remaining instance could decide.

Each survivor is compared with the leader on the (seed, fold) instances and images they share:
- `worse` (separated) -> eliminated;
- `equivalent` (the interval lies inside +-margin) -> kept as a survivor, stops running;
- `futile` -> kept as a survivor, stops running: not separated and not equivalent now, and neither reachable by the
  last instance even at the gap's optimistic bound (one-sided 80 %). The projection gives the pair every remaining
  instance: the seed part of the gap's variance shrinks with the seeds each fold gets, the image part only with more
  folds (every seed of a fold is scored on the same images), and the spread across folds with Nadeau & Bengio's
  factor (1/F + n_valid/n_train) and bench.stats' F - 1 degrees of freedom. Where it must guess it guesses for racing
  on (what the fold spread holds beyond image noise is taken for seed noise). Futility only stops running; it never
  makes a claim, so the race-wide alpha is untouched;
- `racing` otherwise: it runs the next instance with the leader.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from statistics import NormalDist

import pandas as pd

from ..stats import Gap, compare_all

FUTILITY = ("futile: neither separable nor equivalent by the last instance at the current gap (seed variance "
            "projected to more seeds per fold, image variance to more folds)")
OPTIMISM = 0.8  # measured against 0.5-0.9 on simulated ties and gaps (docs/benchmarks.md): ties stop, gaps race on
NB_RATIO = 1 / 4  # validation / training images of a 5-fold split: bench.stats' default for Nadeau & Bengio


@dataclass
class Look:
    leader: str | None
    claims: dict[str, str] = field(default_factory=dict)  # candidate -> worse | equivalent | futile | racing
    p: float = math.nan      # the smallest p of the look's comparisons (the closest to a separation)
    diff: float = math.nan   # that comparison's gap, leader - candidate (accuracy)

    def having(self, claim: str) -> list[str]:
        return [c for c, k in self.claims.items() if k == claim]


def look(runs: pd.DataFrame, outcomes: dict, level: float, margin: float, remaining: list[tuple[int, int]],
         n_train: float | None = None) -> Look:
    """`runs`: the live candidates' runs so far (bench.stats.verdict's columns); `remaining`: the race's instances
    still to come. Without a leader (the candidates lead each other in a cycle) every one races on."""
    *_, leader, cycle, comps = compare_all(runs, outcomes, level=level, margin=margin, n_train=n_train)
    out = Look(leader)
    if leader is None:
        out.claims = {c: "racing" for c in runs.candidate.unique()}
        return out
    seen = {c: set(zip(d.seed.astype(str), d.fold.astype(str))) for c, d in runs.groupby("candidate")}
    later = [(str(s), str(f)) for s, f in remaining]
    for comp in comps:
        g = comp.gap
        claim = comp.claim
        if g is None:  # fewer shared instances than bench.stats compares on: run them
            claim = "racing"
        elif claim == "not separated":
            shared = sorted(seen[leader] & seen[comp.candidate])
            claim = "futile" if futile(g, level, margin, shared, shared + later, n_train) else "racing"
        out.claims[comp.candidate] = claim
        p = g.p() if g is not None else math.nan
        if g is not None and not p >= out.p:
            out.p, out.diff = p, g.diff
    return out


def futile(g: Gap, level: float, margin: float, shared: list[tuple], final: list[tuple],
           n_train: float | None = None) -> bool:
    """Could the pair be separated, or shown equivalent, on `final` instances? Judged at the gap's optimistic
    bound for each (one-sided OPTIMISM, 80 %): the current gap alone stops a true difference that started small."""
    from scipy import stats
    var, df = projected(g, shared, final, n_train)
    h = float(stats.t.ppf(1 - level / 2, df)) * math.sqrt(var)
    z_opt = NormalDist().inv_cdf(OPTIMISM)
    d, sd = abs(g.diff), math.sqrt(max(g.var, 0.0))
    return not (d + z_opt * sd > h or max(d - z_opt * sd, 0.0) + h < margin)


def projected(g: Gap, shared: list[tuple], final: list[tuple], n_train: float | None = None) -> tuple[float, float]:
    """The gap's variance on `final` (seed, fold) instances, from its components on `shared`, and the degrees of
    freedom its test would have, as bench.stats.gap builds it: one seed's variance within a fold is divided by each
    fold's seeds, one fold's image variance by the folds, and the folds' own effect (what `g.var` holds beyond those
    two: the random-effects term) keeps its size with Nadeau-Bengio's factor 1/F + n_valid/n_train for the final F
    and F - 1 degrees of freedom (Welch-Satterthwaite; the within-fold parts taken as exact)."""
    now, then = Counter(f for _, f in shared), Counter(f for _, f in final)
    k, k2 = len(now), len(then)
    if not k or g.var <= 0:
        return max(g.var, 0.0), math.inf
    inv_now, inv_then = sum(1 / s for s in now.values()), sum(1 / s for s in then.values())
    image = g.var_image * k                               # one fold's image term (its mean gap's variance)
    seed = g.var_seed * k ** 2 / inv_now                  # one seed's variance within a fold
    ratio = g.images / n_train if n_train else NB_RATIO
    within = seed * inv_then / k2 ** 2 + image / k2
    between = max(g.var - g.var_seed - g.var_image, 0.0) / (1 / k + ratio) if k >= 2 else 0.0
    if k2 < 2 or between <= 0:
        return within, math.inf
    extra = (1 / k2 + ratio) * between
    return within + extra, (within + extra) ** 2 / (extra ** 2 / (k2 - 1))


# --- the race's runs as bench.stats' input (scores: candidate -> {(seed, fold): race.Score})
def runs_frame(scores: dict[str, dict]) -> pd.DataFrame:
    """bench.stats.verdict's input: one row per finished run."""
    rows = [dict(candidate=c, seed=str(i[0]), fold=str(i[1]), run_id=s.run_id or f"{c}@{i[0]}/{i[1]}",
                 final_accuracy=s.value, n_valid=s.n_valid) for c, by in scores.items() for i, s in by.items()]
    return pd.DataFrame(rows, columns=["candidate", "seed", "fold", "run_id", "final_accuracy", "n_valid"])


def outcomes_of(scores: dict[str, dict]) -> dict:
    return {s.run_id or f"{c}@{i[0]}/{i[1]}": s.correct for c, by in scores.items() for i, s in by.items()
            if s.correct is not None}


def cost_of(scores: dict[str, dict]) -> dict:
    """candidate -> {train_s: mean training seconds, params}: what "the cheapest" is measured by (as the report)."""
    out = {}
    for c, by in scores.items():
        t = [s.train_s for s in by.values() if s.train_s == s.train_s]
        p = [s.params for s in by.values() if s.params == s.params]
        out[c] = {"train_s": sum(t) / len(t) if t else math.nan, "params": p[0] if p else math.nan}
    return out


def n_train_of(scores: dict[str, dict]) -> float | None:
    n = pd.Series([s.n_train for by in scores.values() for s in by.values()], dtype=float).median()
    return float(n) if n == n and n else None
