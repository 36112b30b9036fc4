"""One group's comparisons: the leader (never picked by name), each other candidate against it, the claims and the
level they are made at."""
from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
import pandas as pd

from .gap import ALPHA, INSTANCE, MARGIN, MIN_INSTANCES, Gap, gap


@dataclass
class Comparison:
    candidate: str
    versus: str            # the leader
    gap: Gap | None        # leader - candidate; None: fewer than MIN_INSTANCES shared
    level: float           # the two-sided level this comparison is tested at
    claim: str             # worse | equivalent | not separated | not compared

    def row(self) -> dict:
        g = self.gap
        lo, hi = g.interval(self.level) if g else (np.nan, np.nan)
        return dict(candidate=self.candidate, versus=self.versus, n=g.n if g else 0, diff=g.diff if g else np.nan,
                    lo=lo, hi=hi, p=g.p() if g else np.nan, level=self.level, claim=self.claim,
                    per_image=g.per_image if g else False)


def claim(g: Gap, level: float, margin: float) -> str:
    lo, hi = g.interval(level)
    if g.p() < level and g.diff > 0:
        return "worse"
    if -margin < lo and hi < margin:
        return "equivalent"
    return "not separated"


def pair_level(k: int, alpha: float = ALPHA) -> float:
    """Each comparison's two-sided level: alpha over every pair of the k candidates."""
    return alpha / max(comb(k, 2), 1)


def by_candidate(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    ok = runs[pd.to_numeric(runs.final_accuracy, errors="coerce").notna()].copy()
    ok["final_accuracy"] = ok.final_accuracy.astype(float)
    ok["seed"], ok["fold"] = ok.seed.astype(str), ok.fold.astype(str)
    ok = ok.drop_duplicates(["candidate", *INSTANCE], keep="last")
    return {c: d for c, d in ok.groupby("candidate", sort=True)}


def _leader(cands: dict[str, pd.DataFrame], ranked: list[str], cost) -> tuple[str | None, list]:
    """The candidate no other ranked candidate leads on their shared instances (>= MIN_INSTANCES). None with the
    cycle's members when every one is led by another (never decided by name)."""
    ahead = {m: [o for o in ranked if o != m and shares(cands[m], cands[o]) >= MIN_INSTANCES
                 and mean_gap(cands[o], cands[m]) > 1e-12] for m in ranked}
    unbeaten = [m for m in ranked if not ahead[m]]
    if not unbeaten:
        return None, ranked
    # several unbeaten: two that never shared MIN_INSTANCES instances cannot be told apart (no verdict: picking one
    # would be picking by count or by name); otherwise they tie exactly: the most evidence, then the cheapest
    if any(shares(cands[a], cands[b]) < MIN_INSTANCES for i, a in enumerate(unbeaten) for b in unbeaten[i + 1:]):
        return None, unbeaten
    return min(unbeaten, key=lambda m: (-len(cands[m]), cost_key(cost, m), m)), []


def shares(a: pd.DataFrame, b: pd.DataFrame) -> int:
    return len(a.merge(b, on=INSTANCE))


def mean_gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
    s = a.merge(b, on=INSTANCE, suffixes=("_a", "_b"))
    return float((s.final_accuracy_a - s.final_accuracy_b).mean()) if len(s) else 0.0


def cost_key(cost: dict | None, m: str) -> tuple:
    c = (cost or {}).get(m) or {}
    return (c.get("train_s", np.inf), c.get("params", np.inf))


def compare_all(runs: pd.DataFrame, outcomes: dict | None = None, *, alpha: float = ALPHA, margin: float = MARGIN,
                cost: dict | None = None, n_train: float | None = None, level: float | None = None) -> tuple:
    """(candidates, ranked, not_ranked, leader, cycle, comparisons): the building blocks of `verdict` and of the
    race's looks. `level` overrides the per-comparison level (a race spends alpha over its looks)."""
    cands = by_candidate(runs)
    ranked = [c for c, d in cands.items() if len(d) >= MIN_INSTANCES]
    not_ranked = [c for c in cands if c not in ranked]
    leader, cycle = _leader(cands, ranked, cost) if ranked else (None, [])
    level = level if level is not None else pair_level(len(ranked), alpha)
    comps = []
    for c in ranked:
        if c == leader or leader is None:
            continue
        g = gap(cands[leader], cands[c], outcomes, n_train) if shares(cands[leader], cands[c]) >= MIN_INSTANCES \
            else None
        comps.append(Comparison(c, leader, g, level, claim(g, level, margin) if g else "not compared"))
    return cands, ranked, not_ranked, leader, cycle, comps
