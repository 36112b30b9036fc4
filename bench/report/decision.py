"""The decision a dataset's results support, in one sentence a person can act on: the best model, or the set
statistically tied with it and the cheapest of that set, with how sure that is."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .stats import MIN_PAIRS


@dataclass
class Decision:
    sentence: str
    tied: list[str] = field(default_factory=list)  # the best and every model within noise of it, best first
    pick: str | None = None  # the one to use: the best, or the fastest of the tied set
    untested: list[str] = field(default_factory=list)  # too few paired seeds to compare with the best


def pct(v, sd=None) -> str:
    if pd.isna(v):
        return "?"
    return f"{100 * v:.1f}" + (f" ± {100 * sd:.1f}" if sd is not None and pd.notna(sd) else "") + " %"


def _pb(r) -> str:
    return f", P(best) {r.p_best:.2f}" if pd.notna(r.p_best) else ""


def _cost(pick, ref) -> str:
    """How much cheaper `pick` is than `ref`, in the terms that differ: training time, then parameters."""
    parts = []
    if pd.notna(pick.total_s) and pd.notna(ref.total_s) and pick.total_s > 0 and ref.total_s / pick.total_s >= 1.1:
        parts.append(f"trains {ref.total_s / pick.total_s:.1f}× faster")
    if pd.notna(pick.params_m) and pd.notna(ref.params_m) and pick.params_m > 0 and ref.params_m / pick.params_m >= 1.1:
        parts.append(f"has {ref.params_m / pick.params_m:.1f}× fewer parameters")
    return " and ".join(parts)


def decide(s: pd.DataFrame) -> Decision:
    """`s`: one dataset's summary, ranked (tables.summarise)."""
    ranked = s[s.acc_mean.notna()]
    if ranked.empty:
        return Decision("No finished runs yet.")
    best = ranked.iloc[0]
    if len(ranked) == 1:
        return Decision(f"Only {best.model} has finished runs ({pct(best.acc_mean, best.acc_std)}, n={best.n}): "
                        "run other architectures on the same seeds to compare.", [best.model], best.model)
    tied = ranked[(ranked.noise == "best") | (ranked.noise == "within noise")]
    untested = ranked[ranked.noise.str.startswith("needs")]
    beyond = ranked[ranked.noise == "beyond noise"]
    d = Decision("", tied.model.tolist(), best.model, untested.model.tolist())
    if beyond.empty and len(tied) == 1:
        r = ranked.iloc[1]
        d.pick = None  # nothing is decided yet
        d.sentence = (f"{best.model} leads ({pct(best.acc_mean, best.acc_std)}, n={best.n}) by "
                      f"{100 * (best.acc_mean - r.acc_mean):.1f} pp over {r.model}, but too few paired seeds to tell "
                      f"that from noise: run ≥{MIN_PAIRS} seeds of each (`seeds: [0, 1, 2]` in the experiment file) "
                      "before choosing.")
        return d
    if len(tied) == 1:
        r = beyond.iloc[0]
        d.sentence = (f"Use {best.model}: {pct(best.acc_mean, best.acc_std)} over {best.n} seeds/folds{_pb(best)}; "
                      f"it beats every tested model beyond noise, the runner-up {r.model} by {100 * r.gap:.1f} pp "
                      f"(95 % CI {100 * r.gap_lo:.1f} to {100 * r.gap_hi:.1f}).")
    else:
        # Tied on accuracy: the cheapest to train of the tied set is the better buy; fewer parameters break ties.
        pick = tied.sort_values(["total_s", "params_m"], na_position="last", kind="stable").iloc[0]
        d.pick = pick.model
        others = ", ".join(m for m in d.tied if m != pick.model)
        if pick.model == best.model:
            d.sentence = (f"Use {best.model}: the most accurate ({pct(best.acc_mean, best.acc_std)}{_pb(best)}) and "
                          f"also the cheapest of the models tied with it ({others}).")
        else:
            cost = _cost(pick, best)
            ci = f", 95 % CI {100 * pick.gap_lo:.1f} to {100 * pick.gap_hi:.1f}" if pd.notna(pick.gap_lo) else ""
            pb = (f"; P(best) {pick.p_best:.2f} vs {best.p_best:.2f}" if pd.notna(pick.p_best) and pd.notna(best.p_best)
                  else "")
            cost = f", and it {cost}" if cost else ""
            d.sentence = (f"Use {pick.model}: within noise of the most accurate, {best.model} ({pct(pick.acc_mean)} vs "
                          f"{pct(best.acc_mean)}, gap {100 * pick.gap:.1f} pp{ci}{pb}){cost}. "
                          f"Tied set: {', '.join(d.tied)}.")
    if d.untested:
        d.sentence += f" Not yet comparable (fewer than {MIN_PAIRS} paired seeds): {', '.join(d.untested)}."
    return d
