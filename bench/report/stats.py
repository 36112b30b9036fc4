"""Statistics over replicates: paired differences between models with confidence intervals."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

PAIR = ["seed", "split_seed", "fold"]  # replicates of one configuration; comparisons pair on these


def paired_comparisons(ok: pd.DataFrame) -> pd.DataFrame:
    """For every two models with ≥2 common (seed, split_seed, fold): mean paired difference a−b with a 95 % t
    interval.

    `a` is always the model with the higher mean, so `diff` ≥ 0 and `within_noise` means the interval contains 0.
    """
    rows = []
    keyed = ok.assign(**{c: ok[c].fillna("") for c in PAIR})
    for ds, d in keyed.groupby("dataset", sort=False):
        wide = d.pivot_table(index=PAIR, columns="model", values="final_accuracy", aggfunc="mean")
        means = wide.mean().sort_values(ascending=False)
        for a, b in combinations([m for m in means.index if wide[m].count() >= 2], 2):
            diff = (wide[a] - wide[b]).dropna()
            n = len(diff)
            if n < 2:
                continue
            half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)
            lo, hi = diff.mean() - half, diff.mean() + half
            rows.append(dict(dataset=ds, a=a, b=b, n_pairs=n, diff=diff.mean(), ci_lo=lo, ci_hi=hi,
                             within_noise=bool(lo <= 0 <= hi)))
    return pd.DataFrame(rows, columns=["dataset", "a", "b", "n_pairs", "diff", "ci_lo", "ci_hi", "within_noise"])


