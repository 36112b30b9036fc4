"""The race's elimination test: which candidates are significantly worse than the best, paired across instances.

Every test is one-sided ("worse than the best" is all that eliminates), paired by instance (every survivor has run
on every instance so far) and Bonferroni-corrected over the leader's k - 1 rivals: the leader is picked from the data,
so a candidate that is in truth the best is dropped with probability <= Σ over its rivals of alpha/(k-1) = alpha,
whoever leads (Holm's later steps test at up to the full level, which holds only against a fixed reference). `alpha`
is the level of one look; the race spends its α across its looks (race.py), so this module knows nothing of rounds.

- `ttest` (default): `bench.stats.versus_best`, the report's own test, so race and report agree on "tied": the
  one-sided paired t-test with the sd of the differences floored at one validation image (`resolution` =
  1/n_valid). A constant one-image gap on 3 folds gets p = 0.11 instead of a plain t-test's 0; large, consistent
  gaps still separate in a few instances.
- `permutation`: the exact one-sided sign-flip permutation test (`bench.stats.sign_flip_p`). Assumption-free, but its
  smallest p is 2^-n, so it needs ~log2(looks x rivals / α) instances before it can eliminate anyone (measured
  costlier: docs/benchmarks.md).
- `friedman` (classical F-Race, Birattari et al. 2002, as irace runs it): Friedman's chi-squared test over the
  survivors; when it rejects, Conover's post-hoc test (one-sided, vs the best rank sum). Conover's critical
  difference is 0 whenever every instance ranks the candidates alike, so each elimination must also pass an exact
  one-sided sign test (the larger of the two p-values counts). With two survivors, the one-sided Wilcoxon
  signed-rank test (irace does the same), since Friedman on two is a sign test.

scipy has the t, Friedman, Wilcoxon, binomial and permutation tests but not Conover's post-hoc; that is the textbook
formula below.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..pairedtest import paired_t, sign_flip_p, versus_best

TESTS = ("ttest", "permutation", "friedman")
RULES = {"ttest": "one-sided paired t-test vs the best mean, sd floored at one validation image",
         "permutation": "exact one-sided sign-flip permutation test vs the best mean",
         "friedman": "Friedman test, then one-sided Conover post-hoc and exact sign test vs the best rank sum "
                     "(one-sided Wilcoxon signed-rank for two)"}


@dataclass
class Outcome:
    test: str                 # the test that ran: ttest+bonferroni, permutation+bonferroni, friedman+conover,
    #                           wilcoxon, or "" (none could run)
    statistic: float = math.nan
    p_value: float = math.nan  # the omnibus p (friedman), else the smallest corrected p of the comparisons
    best: str = ""
    eliminated: list[str] = field(default_factory=list)


def compare(table: pd.DataFrame, alpha: float = 0.05, test: str = "ttest", resolution: float = 0.0) -> Outcome:
    """`table`: one row per instance, one column per candidate, higher is better, no missing values. `resolution`:
    the metric's smallest step (one validation image, 1/n_valid), 0 if unknown."""
    if test not in TESTS:
        raise ValueError(f"test: {test!r} is not one of {', '.join(TESTS)}")
    table = table.astype(float)
    if table.shape[1] < 2 or table.shape[0] < 2:
        return Outcome("", best=str(table.mean().idxmax()) if table.shape[1] else "")
    if test == "friedman":
        return _wilcoxon(table, alpha) if table.shape[1] == 2 else _friedman_conover(table, alpha)
    v = versus_best(table, alpha, resolution)
    others = list(v.means.index[1:])
    diffs = {c: (table[v.best] - table[c]).to_numpy() for c in others}
    if test == "ttest":
        stat, pvals = {c: paired_t(diffs[c], resolution)[0] for c in others}, v.p[others].tolist()
    else:
        stat, pvals = {c: float(diffs[c].mean()) for c in others}, [sign_flip_p(diffs[c]) for c in others]
    adjusted = bonferroni(pvals)
    i = int(np.argmin(adjusted))
    return Outcome(f"{test}+bonferroni", stat[others[i]], adjusted[i], v.best,
                   [str(c) for c, p in zip(others, adjusted) if p < alpha])


def _friedman_conover(table: pd.DataFrame, alpha: float) -> Outcome:
    from scipy import stats
    n, k = table.shape
    ranks = table.rank(axis=1, ascending=False)  # 1 = best on that instance; ties share the mean rank
    sums = ranks.sum()
    best = str(sums.idxmin())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every instance a full tie: no information, p is nan
        stat, p = stats.friedmanchisquare(*(table[c].to_numpy() for c in table.columns))
    out = Outcome("friedman+conover", float(stat), float(p), best)
    if not math.isfinite(out.p_value) or out.p_value >= alpha:
        return out
    a = float((ranks.to_numpy() ** 2).sum())
    dof = (n - 1) * (k - 1)
    spread = max(2 * (n * a - float((sums ** 2).sum())) / dof, 0.0)  # 0 when every instance ranks alike
    others = [c for c in table.columns if c != best]
    pvals = []
    for c in others:
        gap = float(sums[c] - sums[best])
        conover = float(stats.t.sf(gap / math.sqrt(spread), dof)) if spread > 0 else (0.0 if gap > 0 else 1.0)
        diff = table[best] - table[c]
        wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
        sign = stats.binomtest(wins, wins + losses, alternative="greater").pvalue if wins + losses else 1.0
        pvals.append(max(conover, float(sign)))
    out.eliminated = [str(c) for c, p in zip(others, bonferroni(pvals)) if p < alpha]
    return out


def _wilcoxon(table: pd.DataFrame, alpha: float) -> Outcome:
    from scipy import stats
    a, b = table.columns
    best, other = (a, b) if table[a].mean() >= table[b].mean() else (b, a)
    diff = table[best] - table[other]
    if np.allclose(diff, 0):
        return Outcome("wilcoxon", math.nan, 1.0, str(best))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy's note that a small sample uses the exact distribution
        res = stats.wilcoxon(table[best], table[other], alternative="greater")
    out = Outcome("wilcoxon", float(res.statistic), float(res.pvalue), str(best))
    if out.p_value < alpha:
        out.eliminated = [str(other)]
    return out


def bonferroni(pvals: list[float]) -> list[float]:
    """Each p times the number of rivals (why not Holm: the module's doc). Measured on the simulated ties of
    docs/benchmarks.md: the same decisions as Holm."""
    return [min(1.0, p * len(pvals)) for p in pvals]
