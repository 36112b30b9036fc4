"""Each section's verdict, from bench/stats.py's one comparison (the race prints the same function's words).

A section is one set of scored images (dataset content, split, subsample: bench/report/groups.py); its candidates
are the variants that ran on them, each labelled by what differs. The verdict compares them on the (seed, fold)
instances they share, per image where the runs recorded per-image outcomes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import ALPHA, MARGIN, MIN_INSTANCES, Verdict, gap, verdict
from .outcomes import correct_by_item

COMP_COLS = ["dataset", "section", "a", "b", "n_pairs", "diff", "lo", "hi", "p_value"]
STATS_INSTANCE = ["seed", "fold"]  # within a section the split (and so split_seed) is one


def correctness(frames: dict[str, pd.DataFrame]) -> dict[str, pd.Series]:
    """run_id -> 0/1 per validation image, from the outcomes already read (perclass.load; rows without them are
    absent: the verdict bounds their image term)."""
    return {rid: correct_by_item(frame).astype(int) for rid, frame in frames.items()}


def candidate_runs(ok: pd.DataFrame) -> pd.DataFrame:
    """One section's ok rows as bench.stats.verdict's input."""
    frame = ok.reindex(columns=["model", *STATS_INSTANCE, "run_id", "final_accuracy", "n_valid"])
    return frame.rename(columns={"model": "candidate"}).assign(
        seed=lambda f: f.seed.astype(str), fold=lambda f: f.fold.astype(str), run_id=lambda f: f.run_id.astype(str))


def costs(ok: pd.DataFrame) -> dict[str, dict]:
    """model -> {train_s, params}: what "the cheapest" is measured by."""
    g = ok.groupby("model")
    train = g.total_seconds.mean() if "total_seconds" in ok else pd.Series(dtype=float)
    params = g.params_m.first() if "params_m" in ok else pd.Series(dtype=float)
    return {m: {"train_s": float(train.get(m, np.nan)), "params": float(params.get(m, np.nan))} for m in g.groups}


def section_verdict(ok: pd.DataFrame, outcomes: dict, alpha: float = ALPHA, margin: float = MARGIN) -> Verdict:
    n_train = pd.to_numeric(ok.get("n_train"), errors="coerce").median() if "n_train" in ok else None
    return verdict(candidate_runs(ok), outcomes, alpha=alpha, margin=margin, cost=costs(ok),
                   n_train=float(n_train) if n_train == n_train and n_train else None)


def order(v: Verdict) -> list[str]:
    """Ranked candidates: the leader, then the compared ones by their gap to it."""
    if v.leader is None:
        return []
    c = v.comparisons
    rest = c[c.claim != "not compared"].sort_values(["diff", "candidate"]).candidate.tolist() if len(c) else []
    return [v.leader, *rest]


def pairwise(ok: pd.DataFrame, outcomes: dict, dataset: str, section: str, alpha: float = ALPHA) -> pd.DataFrame:
    """Every two candidates sharing an instance, unadjusted (descriptive: the verdict's claims come from
    `section_verdict`, at its own level): a (the higher mean there) - b, and from MIN_INSTANCES shared instances on
    its interval at 1 - alpha and two-sided p."""
    runs = candidate_runs(ok)
    by = {c: d for c, d in runs.groupby("candidate", sort=True)}
    rows = []
    names = sorted(by)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            g = gap(by[x], by[y], outcomes)
            if g is None:
                continue
            a, b = (x, y) if g.diff >= 0 else (y, x)
            tested = g.n >= MIN_INSTANCES  # an interval from 2 instances spans more than 100 pp: not shown
            lo, hi = g.interval(alpha) if tested else (np.nan, np.nan)
            if a != x:
                lo, hi = -hi, -lo
            rows.append(dict(dataset=dataset, section=section, a=a, b=b, n_pairs=g.n, diff=abs(g.diff), lo=lo,
                             hi=hi, p_value=g.p() if tested else np.nan))
    return pd.DataFrame(rows, columns=COMP_COLS)


def _device(row) -> str:
    """The device part of a row's execution context (bench.train.realise.context), or its `device` column."""
    ctx = row.get("context")
    if isinstance(ctx, str) and ctx:
        return ctx.split(" · ")[0]
    dev = row.get("device")
    return str(dev) if isinstance(dev, str) and dev else "unrecorded device"


def contexts(ok: pd.DataFrame) -> str:
    """Which machines a section's runs came from, when more than one: they are pooled (bench/identity.py: the
    machine is the execution context, noise the intervals count), and the reader should know it."""
    devices = pd.Series([_device(r) for r in ok.to_dict("records")], dtype=object)
    counts = devices.value_counts()
    if len(counts) < 2:
        return ""
    kinds = "GPU or CPU models" if any(d.startswith("cuda") for d in counts.index) else "CPU models"
    listed = "; ".join(f"{d}: {n} run{'s' if n != 1 else ''}" for d, n in counts.items())
    return f"runs from {len(counts)} {kinds}, pooled ({listed})"
