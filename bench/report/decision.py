"""The decision a section's results support, in sentences a person can act on: "Use X" only when X is best on
paired evidence (every other ranked model worse beyond noise); otherwise the set tied with the best and the
cheapest of it; and what to run when nothing can be decided yet."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..stats import Verdict


@dataclass
class Decision:
    sentence: str
    tied: list[str] = field(default_factory=list)  # the leader and every candidate not separated from it, leader first
    pick: str | None = None  # what to use: the separated best, or the cheapest of an equivalent set; None otherwise
    cheapest: str | None = None  # the cheapest of an equivalent set (the verdict's pick then)
    untested: list[str] = field(default_factory=list)  # candidates not ranked: too few instances
    todo: list[str] = field(default_factory=list)  # commands that fill missing instances
    kind: str = "none"  # bench.stats.Verdict.kind


def pct(v, sd=None) -> str:
    if pd.isna(v):
        return "?"
    return f"{100 * v:.1f}" + (f" ± {100 * sd:.1f}" if sd is not None and pd.notna(sd) else "") + " %"


def _missing(s: pd.DataFrame, fills: dict[str, list[str]]) -> tuple[str, list[str]]:
    """The instances each model lacks, and the commands that fill them."""
    gaps = s[s.lacking.astype(bool) & (s.n > 0)]
    if gaps.empty:
        return "", []
    todo = list(dict.fromkeys(c for m in gaps.model for c in fills.get(m, [])))
    text = "; ".join(f"{r.model} lacks {r.lacking}" for r in gaps.itertuples())
    return f" Missing: {text}.", todo


def decide(s: pd.DataFrame, v: Verdict, fills: dict[str, list[str]] | None = None) -> Decision:
    """`s`: one section's summary (tables.summarise); `v`: its verdict (bench.stats, the race's too); `fills`:
    model -> commands filling what it lacks. The sentence is the verdict's words, then what is missing."""
    missing, todo = _missing(s, fills or {})
    return Decision(v.words + missing, tied=list(v.tied or v.equivalent), pick=v.pick,
                    cheapest=v.pick if v.kind == "equivalent" else None, untested=list(v.not_ranked), todo=todo,
                    kind=v.kind)
