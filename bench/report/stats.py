"""Statistics over replicates: paired differences between models with confidence intervals, and P(best) by a
paired bootstrap over instances (seed, split seed, fold).

An instance is one (seed, split_seed, fold): every model run on it saw the same split and the same seed, so models
are compared on the same instances (paired), which removes the instance-to-instance noise they share.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

PAIR = ["seed", "split_seed", "fold"]  # replicates of one configuration; comparisons pair on these
MIN_PAIRS = 3  # below this a t interval is meaningless (2 seeds: t(0.975, 1) = 12.7 → ±100 pp intervals)
N_BOOT = 4000
COMP_COLS = ["dataset", "a", "b", "n_pairs", "diff", "ci_lo", "ci_hi", "within_noise"]


def instance_table(ok: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """dataset → instances × models table of final accuracy."""
    keyed = ok.assign(**{c: ok[c].astype(str).fillna("") if c in ok else "" for c in PAIR})
    return {ds: d.pivot_table(index=PAIR, columns="model", values="final_accuracy", aggfunc="mean")
            for ds, d in keyed.groupby("dataset", sort=False)}


def paired_comparisons(ok: pd.DataFrame) -> pd.DataFrame:
    """Every two models with ≥1 common instance: mean paired difference a − b; with ≥ MIN_PAIRS pairs also a 95 %
    t interval (else NaN: too few to tell).

    `a` is always the model with the higher mean, so `diff` ≥ 0 and `within_noise` means the interval contains 0.
    """
    rows = []
    for ds, wide in instance_table(ok).items():
        means = wide.mean().sort_values(ascending=False)
        for a, b in combinations(means.index, 2):
            diff = (wide[a] - wide[b]).dropna()
            n = len(diff)
            if n == 0:
                continue
            lo = hi = np.nan
            if n >= MIN_PAIRS:
                sd = diff.std(ddof=1)
                half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n) if sd > 0 else 0.0
                lo, hi = diff.mean() - half, diff.mean() + half
            rows.append(dict(dataset=ds, a=a, b=b, n_pairs=n, diff=diff.mean(), ci_lo=lo, ci_hi=hi,
                             within_noise=bool(lo <= 0 <= hi) if n >= MIN_PAIRS else np.nan))
    return pd.DataFrame(rows, columns=COMP_COLS)


def p_best(wide: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> tuple[pd.Series, int]:
    """P(best) per model: resample instances with replacement (paired: a whole row at a time), count how often each
    model has the highest mean; ties share the win. Uses the models with ≥ MIN_PAIRS results on the largest set of
    instances they all share (dropping the models with the fewest results until ≥ MIN_PAIRS common instances
    remain).
    Returns (P(best), instances used); models left out are NaN; all NaN when fewer than two qualify."""
    out = pd.Series(np.nan, index=wide.columns, dtype=float)
    models = [m for m in wide.columns if wide[m].count() >= MIN_PAIRS]
    common = wide[models].dropna()
    while len(models) >= 2 and len(common) < MIN_PAIRS:
        models.remove(wide[models].count().sort_values(kind="stable").index[0])
        common = wide[models].dropna()
    if len(models) < 2:  # nothing to be best against, or too few shared instances
        return out, 0
    x = common.to_numpy(float)
    rng = np.random.default_rng(seed)  # fixed: the same results give the same report
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    means = x[idx].mean(axis=1)  # n_boot × models
    top = np.isclose(means, means.max(axis=1, keepdims=True), rtol=0, atol=1e-12)
    wins = (top / top.sum(axis=1, keepdims=True)).mean(axis=0)
    out[models] = wins
    return out, len(common)


def p_best_table(ok: pd.DataFrame) -> pd.DataFrame:
    """(dataset, model, p_best, p_best_n): P(best) and the number of shared instances it was computed on."""
    rows = []
    for ds, wide in instance_table(ok).items():
        p, n = p_best(wide)
        rows += [dict(dataset=ds, model=m, p_best=v, p_best_n=n) for m, v in p.items()]
    return pd.DataFrame(rows, columns=["dataset", "model", "p_best", "p_best_n"])
