"""The verdict in words: what to use, or why nothing can be chosen yet (the report and the race print it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

import pandas as pd

from .compare import compare_all, cost_key, mean_gap, pair_level, shares
from .gap import ALPHA, MARGIN, MIN_INSTANCES

@dataclass
class Verdict:
    kind: str                          # use | equivalent | tie | incomplete | single | none
    words: str
    leader: str | None = None
    pick: str | None = None            # what to use: the separated best, or the cheapest of an equivalent set
    equivalent: list[str] = field(default_factory=list)   # the leader and every candidate equivalent to it
    tied: list[str] = field(default_factory=list)         # the leader and every candidate not separated from it
    not_ranked: list[str] = field(default_factory=list)   # fewer than MIN_INSTANCES instances
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    means: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # on the instances each was compared on
    alpha: float = ALPHA
    margin: float = MARGIN

    @property
    def method(self) -> str:
        return METHOD


METHOD = ("paired over shared (seed, fold) instances and images: seed and image-sampling noise both counted "
          "(crossed variance, Nadeau-Bengio across folds), two-sided t, Bonferroni over all pairs")


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _pp(v: float) -> str:
    return f"{100 * v:.1f} pp"


def _cheaper(cost: dict | None, pick: str, ref: str) -> str:
    """How much cheaper `pick` is than `ref`: training time, then parameters (only ratios of 1.1x or more)."""
    a, b = (cost or {}).get(pick) or {}, (cost or {}).get(ref) or {}
    parts = []
    for key, words in (("train_s", "faster to train"), ("params", "fewer parameters")):
        x, y = a.get(key), b.get(key)
        if x and y and x > 0 and y / x >= 1.1:
            parts.append(f"{y / x:.1f}× {words}")
    return ", ".join(parts)


def _gap_words(r: dict) -> str:
    return f"{_pp(r['diff'])} behind on {r['n']} instances, interval [{_pp(r['lo'])}, {_pp(r['hi'])}]"


def _not_yet(cands: dict, ranked: list, not_ranked: list, leader, cycle, table) -> str | None:
    """Why no candidate can be chosen yet (the words), or None when the comparisons can decide."""
    if len(ranked) < 2:
        return (f"No verdict yet: fewer than two candidates have {MIN_INSTANCES} (seed, fold) instances "
                f"({', '.join(f'{c} {len(d)}' for c, d in cands.items())}); run them on the same seeds and folds.")
    if leader is None:
        led = all(any(shares(cands[m], cands[o]) >= MIN_INSTANCES and mean_gap(cands[o], cands[m]) > 1e-12
                      for o in ranked if o != m) for m in cycle)
        why = ("each trail another on the instances they share (a cycle, possible only when they ran different "
               "instances)" if led else f"lead, but never ran {MIN_INSTANCES} instances in common")
        return f"No verdict: {', '.join(sorted(cycle))} {why}; run every candidate on the same instances."
    threats = [c for c in not_ranked + table[table.claim == "not compared"].candidate.tolist()
               if shares(cands[c], cands[leader]) and mean_gap(cands[c], cands[leader]) > 0]
    if threats:
        return (f"No verdict yet: {', '.join(threats)} lead{'s' if len(threats) == 1 else ''} {leader} on the "
                f"few instances they share (fewer than {MIN_INSTANCES}); run "
                f"{'it' if len(threats) == 1 else 'them'} on more seeds or folds before choosing.")
    if (table.claim == "not compared").all():  # nothing to hold the leader against: no "use" from a lack of rivals
        return (f"No verdict yet: no other candidate shares {MIN_INSTANCES} (seed, fold) instances with the leader "
                f"{leader}; run them on the same seeds and folds.")
    return None


def _decide(v: Verdict, lead: str, compared: pd.DataFrame, how: str, cost: dict | None) -> None:
    """Use X, equivalent (the cheapest), or no single best: kind, pick, sets and words."""
    leader, margin = v.leader, v.margin
    worse, eq = compared[compared.claim == "worse"], compared[compared.claim == "equivalent"]
    open_ = compared[compared.claim == "not separated"]
    if open_.empty and eq.empty:
        v.kind, v.pick = "use", leader
        r = worse.sort_values("diff").iloc[0].to_dict()
        v.words = (f"Use {leader}: every other candidate is worse beyond noise on the images and instances it shares "
                   f"with {lead}; the runner-up {r['candidate']} {_gap_words(r)} {how}.")
    elif open_.empty:
        v.kind = "equivalent"
        v.equivalent = [leader, *eq.candidate]
        v.pick = min(v.equivalent, key=lambda m: (cost_key(cost, m), m != leader))
        dearest = max(v.equivalent, key=lambda m: (cost_key(cost, m), m == leader))
        cheaper = f"{_cheaper(cost, v.pick, dearest)} than {dearest}" if _cheaper(cost, v.pick, dearest) else ""
        v.words = (f"{', '.join(v.equivalent)} are equivalent within {_pp(margin)} (leader {lead}); use the "
                   f"cheapest, {v.pick}" + (f" ({cheaper})" if cheaper else "") + f" {how}.")
    else:
        v.kind = "tie"
        v.tied = [leader, *open_.candidate]
        detail = "; ".join(f"{r['candidate']} {_gap_words(r)}" for r in open_.sort_values("diff").to_dict("records"))
        v.words = (f"No single best: {lead} leads, not separated from {detail} {how}. Neither a difference nor "
                   f"equivalence within {_pp(margin)} is shown: more seeds narrow the seed noise, more folds (or "
                   "more images) the image noise.")
        if len(eq):
            v.words += f" Equivalent to {leader} within {_pp(margin)}: {', '.join(eq.candidate)}."
    if len(worse) and v.kind != "use":
        v.words += f" Worse beyond noise: {', '.join(worse.candidate)}."
    v.tied = v.tied or [leader, *eq.candidate]


def verdict(runs: pd.DataFrame, outcomes: dict | None = None, *, alpha: float = ALPHA, margin: float = MARGIN,
            cost: dict | None = None, n_train: float | None = None) -> Verdict:
    """The verdict on one group of candidates scored on the same images. `runs`: one row per finished instance with
    candidate, seed, fold, run_id, final_accuracy, n_valid; `outcomes`: run_id -> 0/1 correctness per validation
    image; `cost`: candidate -> {train_s, params}. The report and the race both print `.words`."""
    cands, ranked, not_ranked, leader, cycle, comps = compare_all(runs, outcomes, alpha=alpha, margin=margin,
                                                                  cost=cost, n_train=n_train)
    means = pd.Series({c: float(d.final_accuracy.mean()) for c, d in cands.items()}, dtype=float)
    table = pd.DataFrame([c.row() for c in comps]) if comps else pd.DataFrame(
        columns=["candidate", "versus", "n", "diff", "lo", "hi", "p", "level", "claim", "per_image"])
    v = Verdict("none", "No finished runs yet.", leader, not_ranked=not_ranked, comparisons=table, means=means,
                alpha=alpha, margin=margin)
    if not cands:
        return v
    if len(cands) == 1:
        (only, d), = cands.items()
        v.kind, v.leader = "single", only
        v.words = (f"Only {only} has finished runs on these images ({_pct(means[only])}, n={len(d)}): nothing to "
                   "compare it with.")
        return v
    why = _not_yet(cands, ranked, not_ranked, leader, cycle, table)
    if why:
        v.kind, v.words = "incomplete", why
        return v
    compared = table[table.claim != "not compared"]
    level = pair_level(len(ranked), alpha)
    how = (f"(per comparison: two-sided, level α/{comb(len(ranked), 2)} = {level:.2g}, intervals at that level; "
           f"seed and image noise counted)")
    _decide(v, f"{leader} ({_pct(means[leader])}, n={len(cands[leader])})", compared, how, cost)
    if not_ranked:
        v.words += f" Not ranked (fewer than {MIN_INSTANCES} instances): {', '.join(not_ranked)}."
    thin = table[table.claim == "not compared"].candidate.tolist()
    if thin:
        v.words += f" Not compared (fewer than {MIN_INSTANCES} instances shared with {leader}): {', '.join(thin)}."
    if not compared.per_image.all():
        v.words += " Some runs have no per-image outcomes: their image noise is bounded from the error rates."
    return v
