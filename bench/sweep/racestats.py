"""The race's elimination test: which candidates are significantly worse than the best, paired across instances.

Two tests, both paired by instance (every survivor has run on every instance so far):

- `ttest` (default): paired t-tests of each survivor against the best mean, two-sided, p-values corrected with Holm's
  step-down method (family-wise error rate alpha over the round's comparisons).
- `friedman` (classical F-Race, Birattari et al. 2002, as irace runs it): ranks within each instance, Friedman's
  chi-squared test over the survivors; when it rejects at alpha, Conover's post-hoc test (Conover 1999, the one irace
  uses) drops every candidate whose rank sum exceeds the best one's by more than the critical difference. With two
  survivors, the Wilcoxon signed-rank test (irace does the same), since Friedman on two is a sign test.

Why the t-test is the default: with the few instances a race starts from, Conover's critical difference is zero
whenever every instance ranks the candidates alike, so a candidate that lost three close calls is dropped; in
benchmarks/race_validation.py that removed the full factorial's best in 2 of 51 instance orders, the t-test in none
(it weighs the size of the differences, not only their order). See docs/benchmarks.md.

scipy has the Friedman, Wilcoxon and paired t tests but neither Conover's post-hoc nor Holm's correction; those two
are the textbook formulas below.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

TESTS = ("friedman", "ttest")


@dataclass
class Outcome:
    test: str                 # the test that ran: friedman+conover, wilcoxon, ttest+holm, or "" (none could run)
    statistic: float = math.nan
    p_value: float = math.nan  # the omnibus p (friedman), else the smallest corrected p of the comparisons
    best: str = ""
    eliminated: list[str] = field(default_factory=list)


def compare(table: pd.DataFrame, alpha: float = 0.05, test: str = "ttest") -> Outcome:
    """`table`: one row per instance, one column per candidate, higher is better, no missing values."""
    if test not in TESTS:
        raise ValueError(f"test: {test!r} is not one of {', '.join(TESTS)}")
    table = table.astype(float)
    if table.shape[1] < 2 or table.shape[0] < 2:
        return Outcome("", best=str(table.mean().idxmax()) if table.shape[1] else "")
    if test == "ttest":
        return _ttest_holm(table, alpha)
    if table.shape[1] == 2:
        return _wilcoxon(table, alpha)
    return _friedman_conover(table, alpha)


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
    critical = stats.t.ppf(1 - alpha / 2, dof) * math.sqrt(spread)
    out.eliminated = [str(c) for c in table.columns if sums[c] - sums[best] > critical]
    return out


def _wilcoxon(table: pd.DataFrame, alpha: float) -> Outcome:
    from scipy import stats
    a, b = table.columns
    best, other = (a, b) if table[a].mean() >= table[b].mean() else (b, a)
    diff = table[best] - table[other]
    if (diff == 0).all():
        return Outcome("wilcoxon", math.nan, 1.0, str(best))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy's note that a small sample uses the exact distribution
        res = stats.wilcoxon(table[best], table[other])
    out = Outcome("wilcoxon", float(res.statistic), float(res.pvalue), str(best))
    if out.p_value < alpha:
        out.eliminated = [str(other)]
    return out


def _ttest_holm(table: pd.DataFrame, alpha: float) -> Outcome:
    from scipy import stats
    means = table.mean()
    best = str(means.idxmax())
    others = [c for c in table.columns if c != best]
    tstats, pvals = [], []
    for c in others:
        diff = table[best] - table[c]
        if np.isclose(diff.std(ddof=1), 0):  # the same gap on every instance: certain unless the gap is 0
            tstats.append(math.inf if diff.mean() > 0 else math.nan)
            pvals.append(0.0 if diff.mean() > 0 else 1.0)
            continue
        res = stats.ttest_rel(table[best], table[c])
        tstats.append(float(res.statistic))
        pvals.append(float(res.pvalue))
    adjusted = holm(pvals)
    i = int(np.argmin(adjusted))
    return Outcome("ttest+holm", tstats[i], adjusted[i], best,
                   [str(c) for c, p in zip(others, adjusted) if p < alpha])


def holm(pvals: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate), in the input order."""
    m = len(pvals)
    order = np.argsort(pvals)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvals[i]))
        adjusted[i] = running
    return adjusted
