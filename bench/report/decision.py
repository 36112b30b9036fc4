"""The decision a section's results support, in sentences a person can act on: "Use X" only when X is best on
paired evidence (every other ranked model worse beyond noise); otherwise the set tied with the best and the
cheapest of it; and what to run when nothing can be decided yet."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..pairedtest import ALPHA
from .stats import MIN_PAIRS


@dataclass
class Decision:
    sentence: str
    tied: list[str] = field(default_factory=list)  # the best and every model within noise of it, best first
    pick: str | None = None  # "use": the best on paired evidence, alone; None when it is not separated
    cheapest: str | None = None  # the cheapest of the tied set (a tie's practical choice), None without a tie
    untested: list[str] = field(default_factory=list)  # models not ranked: too few instances shared
    todo: list[str] = field(default_factory=list)  # commands that fill missing instances


def pct(v, sd=None) -> str:
    if pd.isna(v):
        return "?"
    return f"{100 * v:.1f}" + (f" ± {100 * sd:.1f}" if sd is not None and pd.notna(sd) else "") + " %"


def _pb(r) -> str:
    return f", P(best) {r.p_best:.2f}" if pd.notna(r.p_best) else ""


def _bound(lo) -> str:
    return "no bound from this few instances" if pd.isna(lo) or lo == -float("inf") else f"≥ {100 * lo:.1f} pp"


def _cost(pick, ref) -> str:
    """How much cheaper `pick` is than `ref`, in the terms that differ: training time, then parameters."""
    parts = []
    if pd.notna(pick.total_s) and pd.notna(ref.total_s) and pick.total_s > 0 and ref.total_s / pick.total_s >= 1.1:
        parts.append(f"trains {ref.total_s / pick.total_s:.1f}× faster")
    if pd.notna(pick.params_m) and pd.notna(ref.params_m) and pick.params_m > 0 and ref.params_m / pick.params_m >= 1.1:
        parts.append(f"has {ref.params_m / pick.params_m:.1f}× fewer parameters")
    return " and ".join(parts)


def _missing(s: pd.DataFrame, fills: dict[str, list[str]]) -> tuple[str, list[str]]:
    """The instances each model lacks, and the commands that fill them."""
    gaps = s[s.lacking.astype(bool) & (s.n > 0)]
    if gaps.empty:
        return "", []
    todo = list(dict.fromkeys(c for m in gaps.model for c in fills.get(m, [])))
    text = "; ".join(f"{r.model} lacks {r.lacking}" for r in gaps.itertuples())
    return f" Missing: {text}.", todo


def decide(s: pd.DataFrame, fills: dict[str, list[str]] | None = None, alpha: float = ALPHA) -> Decision:
    """`s`: one section's summary, ranked (tables.summarise); `fills`: model → commands filling what it lacks."""
    done = s[s.n > 0]
    missing, todo = _missing(s, fills or {})
    if done.empty:
        return Decision("No finished runs yet.")
    if len(done) == 1:
        only = done.iloc[0]
        return Decision(f"Only {only.model} has finished runs under this protocol ({pct(only.acc_mean, only.acc_std)}, "
                        f"n={only.n}): nothing to compare it with. Run other architectures on the same seeds and "
                        "folds to choose.", [], None)
    ranked = done[done["rank"].notna()]
    untested = done[done.noise == "not ranked"].model.tolist()
    if ranked.empty:
        d = Decision(f"No two models share {MIN_PAIRS} (seed, fold) instances yet, so none is ranked: compare on the "
                     f"same seeds and folds.{missing}", untested=untested, todo=todo)
        return d
    best, k = ranked.iloc[0], len(ranked)
    tied = ranked[ranked.noise.isin(["best", "within noise"])]
    d = Decision("", tied.model.tolist(), untested=untested, todo=todo)
    own = f"{pct(best.acc_mean, best.acc_std)} over its {best.n} (seed, fold) instances{_pb(best)}"
    if len(tied) == 1:
        r = ranked.iloc[1]
        d.pick = best.model
        d.sentence = (f"Use {best.model}: best on paired evidence, {own}; every other ranked model is worse beyond "
                      f"noise on the instances it shares with {best.model} (one-sided paired t-test, sd floored at one "
                      f"validation image, Bonferroni, "
                      f"α {alpha:g}), the runner-up {r.model} by {100 * r.gap:.1f} pp on {r.n_paired:.0f} shared "
                      f"instances ({_bound(r.gap_lo)}).")
    else:
        # Tied on accuracy: the cheapest to train of the tied set is the better buy; fewer parameters break ties.
        c = tied.sort_values(["total_s", "params_m"], na_position="last", kind="stable").iloc[0]
        d.cheapest = c.model
        who = "all ranked models are" if len(tied) == k else f"{', '.join(d.tied)} are"
        n = int(tied.n_paired.iloc[1:].min())
        why = f"; {n} shared instances: more seeds or folds narrow the gaps' intervals" if len(tied) > 1 else ""
        cost = _cost(c, best)
        behind = "" if c.model == best.model else \
            f" ({100 * c.gap:.1f} pp behind on {c.n_paired:.0f} shared instances{', and it ' + cost if cost else ''})"
        d.sentence = (f"No single best on paired evidence: {who} within noise of the leader {best.model} ({own}{why}). "
                      f"The cheapest of the tied set is {c.model}{behind}.")
        if len(tied) < k:
            d.sentence += f" Worse beyond noise: {', '.join(ranked.model[~ranked.model.isin(d.tied)])}."
    if untested:
        d.sentence += (f" Not ranked (fewer than {MIN_PAIRS} instances shared with {best.model}): "
                       f"{', '.join(untested)}.")
    d.sentence += missing
    return d
