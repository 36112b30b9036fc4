"""One section's statistics, paired only: the best, each other model against it, P(best), and every pairwise
comparison; every figure from instances (seed, split seed, fold) that the models it compares share.

Rule (docs/SCHEMA.md, "How the best is chosen"): two models are *comparable* when they share at least MIN_PAIRS
instances. The best is the model that no comparable model beats on their shared instances (paired mean
difference ≥ 0 against each; with complete results, simply the highest mean); among several such, the one
comparable with the most models, then with the most instances. Each other comparable model is compared with it on
the instances the two share (a race's eliminated candidates on the rounds they ran), by bench/stats.py's
one-sided paired t-test with the sd floored at one validation image, Bonferroni over the comparisons.
If every model is beaten by some other (possible only with unequal instance sets), the ranking falls back to the
instances common to the largest set of models sharing at least MIN_PAIRS of them. A model not comparable with the
best is listed with the instances it lacks and the command that fills them; it gets no rank. Unpaired means over
unequal instance sets never decide anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from ..pairedtest import ALPHA, Versus, lower_bound, paired_p, versus, versus_best
from .groups import INSTANCE

MIN_PAIRS = 3  # fewer common instances: no ranking (P(best) over 2 instances is a coin toss)
N_BOOT = 4000
COMP_COLS = ["dataset", "section", "a", "b", "n_pairs", "diff", "lower95", "p_value"]


@dataclass
class Ranking:
    wide: pd.DataFrame  # instances × models (every model of the section), final accuracy
    models: list[str] = field(default_factory=list)  # ranked models, best first (empty: nothing to rank)
    versus: Versus | None = None
    shared: dict = field(default_factory=dict)  # model → instances it was compared on (the best: all of its own)
    p_best: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # NaN: not on the best's instances

    def lacking(self, model: str) -> list[tuple]:
        """The section's instances this model has no result for."""
        return [i for i in self.wide.index if pd.isna(self.wide.at[i, model])]


def instance_table(ok: pd.DataFrame) -> pd.DataFrame:
    """One section's ok rows (one per model and instance) → instances × models."""
    keyed = ok.assign(**{c: ok[c].astype(object).fillna("").astype(str) for c in INSTANCE})
    wide = keyed.pivot_table(index=INSTANCE, columns="model", values="final_accuracy", aggfunc="last")
    order = sorted(wide.index, key=lambda i: tuple(int(x) if x.lstrip("-").isdigit() else 0 for x in i))
    return wide.reindex(order)


def compared_models(wide: pd.DataFrame) -> tuple[list[str], pd.Index]:
    models = [m for m in wide.columns if wide[m].notna().any()]

    def common(ms):
        return wide[ms].dropna().index

    while len(models) >= 2 and len(common(models)) < MIN_PAIRS:
        # Leave out the model whose absence adds the most shared instances; among equals, the one with fewest results
        drop = max(models, key=lambda m: (len(common([x for x in models if x != m])), -wide[m].count()))
        models.remove(drop)
    return (models, common(models)) if len(models) >= 2 else ([], pd.Index([]))


def p_best(table: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> pd.Series:
    """Resample whole instances (paired) of a complete table; a model's share of resamples in which it has the
    highest mean (ties share the win)."""
    x = table.to_numpy(float)
    rng = np.random.default_rng(seed)  # fixed: the same results give the same report
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    top = np.isclose(means, means.max(axis=1, keepdims=True), rtol=0, atol=1e-12)
    return pd.Series((top / top.sum(axis=1, keepdims=True)).mean(axis=0), index=table.columns)


def _paired_best(wide: pd.DataFrame) -> tuple[str, list[str]] | None:
    """(the best, the models comparable with it) by the Condorcet rule above; None when every model is beaten."""
    models = [m for m in wide.columns if wide[m].notna().any()]
    comparable = {m: [o for o in models if o != m and len(wide[[m, o]].dropna()) >= MIN_PAIRS] for m in models}

    def beaten(m):
        return any((lambda t: t[o].mean() - t[m].mean() > 1e-12)(wide[[m, o]].dropna()) for o in comparable[m])
    unbeaten = [m for m in models if comparable[m] and not beaten(m)]
    if not unbeaten:
        return None
    best = max(unbeaten, key=lambda m: (len(comparable[m]), wide[m].count(), wide[m].mean()))
    return best, comparable[best]


def resolution(ok: pd.DataFrame) -> float:
    """The accuracy's step, one validation image (the largest validation set: the finest step), 0 if unknown."""
    n = pd.to_numeric(ok.get("n_valid", pd.Series(dtype=float)), errors="coerce").max()
    return 1 / float(n) if n == n and n and n > 0 else 0.0


def rank(ok: pd.DataFrame, alpha: float = ALPHA) -> Ranking:
    r = Ranking(instance_table(ok))
    step = resolution(ok)
    wide = r.wide
    found = _paired_best(wide)
    if found is not None:
        best, others = found
        r.shared = {best: wide[best].dropna().index, **{o: wide[[best, o]].dropna().index for o in others}}
        r.versus = versus(best, {o: (wide[best] - wide[o])[r.shared[o]].to_numpy() for o in others}, alpha, step)
    else:
        models, common = compared_models(wide)
        if not models:
            return r
        r.versus = versus_best(wide.loc[common, models], alpha, step)
        r.shared = {m: common for m in models}
    v = r.versus
    r.models = [v.best, *v.gap.sort_values(kind="stable").index]
    # P(best) over the best's own instances, among the models that ran all of them (a race's survivors): there the
    # best has the highest mean, so P(best) and the ranking cannot point at different models. On fewer than
    # MIN_PAIRS instances the bootstrap would print a confident 1.00 from a coin toss: none then.
    rows = r.shared[v.best]
    complete = [m for m in r.models if wide.loc[rows, m].notna().all()]
    enough = len(complete) > 1 and len(rows) >= MIN_PAIRS
    r.p_best = p_best(wide.loc[rows, complete]).reindex(r.models) if enough else pd.Series(np.nan, index=r.models)
    return r


def pairwise(ok: pd.DataFrame, dataset: str, section: str) -> pd.DataFrame:
    """Every two models of a section with a shared instance, on those instances: a (the higher mean there) − b,
    the unadjusted one-sided p and 95 % lower bound of the same test. Descriptive: the tie set comes from `rank`."""
    wide, step = instance_table(ok), resolution(ok)
    rows = []
    for x, y in combinations(wide.columns, 2):
        both = wide[[x, y]].dropna()
        if both.empty:
            continue
        a, b = (x, y) if both[x].mean() >= both[y].mean() else (y, x)
        d = (both[a] - both[b]).to_numpy()
        tested = len(d) >= MIN_PAIRS  # a bound from 2 instances spans more than 100 pp: not shown
        rows.append(dict(dataset=dataset, section=section, a=a, b=b, n_pairs=len(d), diff=d.mean(),
                         lower95=lower_bound(d, 0.05, step) if tested else np.nan,
                         p_value=paired_p(d, step) if tested else np.nan))
    return pd.DataFrame(rows, columns=COMP_COLS)
