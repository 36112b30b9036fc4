"""One section's statistics, paired only: which models can be ranked on shared instances, the ranking, P(best),
each gap to the best with its Holm-level lower bound, and every pairwise comparison.

Rule (docs/SCHEMA.md): the ranked models are the largest set whose *common* instances (every one of them ran the
same seed, split and fold) number at least MIN_PAIRS, found by leaving out, one at a time, the model whose absence
adds the most common instances. Rank, P(best), gaps and the tie set are all computed on exactly those common
instances, so a model with more seeds never wins by averaging over easier ones. A model left out is listed with the
instances it lacks and the command that fills them; it gets no rank.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from ..stats import ALPHA, Versus, lower_bound, sign_flip_p, versus_best
from .groups import INSTANCE

MIN_PAIRS = 3  # fewer common instances: no ranking (P(best) over 2 instances is a coin toss)
N_BOOT = 4000
COMP_COLS = ["dataset", "section", "a", "b", "n_pairs", "diff", "lower95", "p_value"]


@dataclass
class Ranking:
    wide: pd.DataFrame  # instances × models (every model of the section), final accuracy
    models: list[str] = field(default_factory=list)  # ranked models, best first (empty: nothing to rank)
    common: pd.Index = field(default_factory=lambda: pd.Index([]))  # the instances they all share
    versus: Versus | None = None
    p_best: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

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


def rank(ok: pd.DataFrame, alpha: float = ALPHA) -> Ranking:
    r = Ranking(instance_table(ok))
    models, common = compared_models(r.wide)
    if not models:
        return r
    table = r.wide.loc[common, models]
    r.versus = versus_best(table, alpha)
    r.models, r.common = list(r.versus.means.index), common
    r.p_best = p_best(table[r.models])
    return r


def pairwise(ok: pd.DataFrame, dataset: str, section: str) -> pd.DataFrame:
    """Every two models of a section with a shared instance, on those instances: a (the higher mean there) − b,
    the unadjusted one-sided exact p and 95 % lower bound. Descriptive: the tie set comes from `rank`."""
    wide = instance_table(ok)
    rows = []
    for x, y in combinations(wide.columns, 2):
        both = wide[[x, y]].dropna()
        if both.empty:
            continue
        a, b = (x, y) if both[x].mean() >= both[y].mean() else (y, x)
        d = (both[a] - both[b]).to_numpy()
        rows.append(dict(dataset=dataset, section=section, a=a, b=b, n_pairs=len(d), diff=d.mean(),
                         lower95=lower_bound(d, 0.05), p_value=sign_flip_p(d)))
    return pd.DataFrame(rows, columns=COMP_COLS)
