"""The race's elimination test: which candidates are significantly worse than the best, paired across instances.

Every test is one-sided ("worse than the best" is the only thing that eliminates) and paired by instance (every
survivor has run on every instance so far). `alpha` is the level of one look; the race spends its α across its looks
(see race.py), so this module knows nothing about rounds.

- `ttest` (default): one-sided paired t-test of the best mean against each survivor, with the sd of the differences
  floored at one validation image (`resolution` = 1/n_valid). Accuracy moves in steps of one image, so a constant gap
  has sd 0 and a plain t-test would call it certain (p = 0): a candidate one image behind on each of 3 folds would
  go. With the floor that case gets p = 0.11 (t = 1.73, 2 df); large, consistent gaps still separate in a few
  instances. Without a known resolution, a gap with no spread gets the exact sign-flip p (0.5^n) instead.
  p-values multiplied by the number of rivals (Bonferroni, see `bonferroni`).
- `permutation`: the exact one-sided sign-flip permutation test of the mean paired difference (scipy: exact up to
  `EXACT_UP_TO` instances, Monte Carlo with a fixed seed beyond), Bonferroni-corrected. Assumption-free, but its smallest
  p is 0.5^n, so it needs ~log2(looks x candidates / α) instances before it can eliminate anyone (measured costlier:
  docs/benchmarks.md).
- `friedman` (classical F-Race, Birattari et al. 2002, as irace runs it): Friedman's chi-squared test over the
  survivors; when it rejects, Conover's post-hoc test (one-sided, vs the best rank sum). Conover's critical
  difference is 0 whenever every instance ranks the candidates alike, so each elimination must also pass an exact
  one-sided sign test (the larger of the two p-values counts), Bonferroni-corrected. With two survivors, the one-sided
  Wilcoxon signed-rank test (irace does the same), since Friedman on two is a sign test.

scipy has the t, Friedman, Wilcoxon, binomial and permutation tests but not Conover's post-hoc; that is the textbook
formula below.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

TESTS = ("ttest", "permutation", "friedman")
EXACT_UP_TO = 14  # 2^14 sign patterns: enumerated; beyond, this many Monte Carlo resamples with seed 0
RULES = {"ttest": "one-sided paired t-test vs the best mean, sd floored at one validation image",
         "permutation": "exact one-sided sign-flip permutation test vs the best mean",
         "friedman": "Friedman test, then one-sided Conover post-hoc and exact sign test vs the best rank sum "
                     "(one-sided Wilcoxon signed-rank for two)"}


@dataclass
class Outcome:
    test: str                 # the test that ran: friedman+conover, wilcoxon, ttest+bonferroni, permutation+bonferroni, or ""
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
    best = str(table.mean().idxmax())
    others = [c for c in table.columns if c != best]
    if test == "ttest":
        tests = [floored_t(table[best] - table[c], resolution) for c in others]
    else:
        tests = [sign_flip(table[best] - table[c]) for c in others]
    adjusted = bonferroni([p for _, p in tests])
    i = int(np.argmin(adjusted))
    return Outcome(f"{test}+bonferroni", tests[i][0], adjusted[i], best,
                   [str(c) for c, p in zip(others, adjusted) if p < alpha])


def floored_t(diff: pd.Series, resolution: float = 0.0) -> tuple[float, float]:
    """One-sided paired t-test that the mean of `diff` (best - other) is > 0, the sd floored at `resolution`:
    (t, p). scipy's ttest_1samp has no floor, hence the formula."""
    from scipy import stats
    d = diff.to_numpy(dtype=float)
    n, mean = len(d), float(d.mean())
    sd = max(float(d.std(ddof=1)), resolution)
    if sd <= 1e-12 * max(1.0, abs(mean)):  # no spread and no known step: the t-test has nothing to go on
        return (math.inf if mean > 0 else math.nan), sign_flip(diff)[1]
    t = mean / (sd / math.sqrt(n))
    return t, float(stats.t.sf(t, n - 1))


def sign_flip(diff: pd.Series) -> tuple[float, float]:
    """Exact one-sided sign-flip permutation test that the mean of `diff` is > 0: (mean, p). Under "no difference"
    each paired difference is as likely + as -; p = share of the 2^n sign patterns whose mean is >= the observed
    one (so p >= 0.5^n: a constant one-image gap on 3 instances gets 0.125). Beyond EXACT_UP_TO instances, the same
    share over 2^EXACT_UP_TO random patterns (seed 0) plus the observed one. The same test as scipy's
    permutation_test(permutation_type="samples"), written as one matrix product because the race validation replays
    thousands of races and scipy's took 0.1-0.9 s a call."""
    d = diff.to_numpy(dtype=float)
    n, observed = len(d), float(d.mean())
    if np.allclose(d, 0):
        return 0.0, 1.0
    if n <= EXACT_UP_TO:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
        extra = 0
    else:
        signs = np.random.default_rng(0).choice([-1, 1], size=(2 ** EXACT_UP_TO, n))
        extra = 1  # the observed pattern counts once (Phipson & Smyth 2010): p is never 0
    means = signs @ d / n
    hits = int((means >= observed - 1e-12 * max(1.0, abs(observed))).sum()) + extra
    return observed, hits / (len(signs) + extra)


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
    """Each p times the number of rivals. Why not Holm's step-down: its later steps test at up to the full level,
    which holds against a fixed reference, but the leader here is picked from the data; with Bonferroni a candidate
    that is in truth the best is dropped with probability <= Σ over its k-1 rivals of level/(k-1) = level, whoever
    leads. Measured on the simulated ties of docs/benchmarks.md: the same decisions as Holm."""
    return [min(1.0, p * len(pvals)) for p in pvals]
