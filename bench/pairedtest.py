"""Paired comparisons against the best of several models: the one test the report and the race use to say "tied".

Pure numpy/scipy, no training code: `bench.report` and `bench.sweep` both import it.

The test (`paired_p`) is the one-sided paired t-test of "the best's mean over the shared instances is higher than
the other's", with the sd of the differences floored at the metric's resolution, one validation image (1/n_valid).
Accuracy moves in steps of one image, so a constant gap has sd 0, and a plain t-test would call it certain (p = 0): a
candidate one image behind on each of 3 folds would be "worse beyond noise". With the floor that case gets p = 0.11
(t = 1.73, 2 df), while large, consistent gaps still separate on 3 instances — which the exact sign-flip permutation
test (`sign_flip_p`, kept for `bench race --test permutation`) never can: its smallest p is 2^-n, so 3 instances never
separate two models at 5 %. The race validation measured the floored t-test reaching the same winners with fewer runs
(docs/benchmarks.md). Without a known resolution, a gap with no spread gets the exact sign-flip p.

The best is picked from the data, so its k - 1 comparisons are Bonferroni-corrected (each at alpha / (k - 1)): a model
that is in truth the best is declared worse with probability at most alpha whoever leads (Holm's later steps test
at up to the full level, which holds against a fixed reference, not a data-picked one). Each gap gets the lower
confidence bound of the same test at the same level: "beyond noise" exactly when that bound is above 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ALPHA = 0.05
EXACT_UP_TO = 16  # 2^16 sign patterns enumerated; above that a fixed random sample of as many (same seed, same p)


@dataclass
class Versus:
    """The best of a complete instances × models table, and every other model against it."""
    best: str
    n: int  # instances compared (the most any comparison used)
    means: pd.Series  # per model, over the compared instances (complete table) or minus its gap, highest first
    gap: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # best - other, ≥ 0
    p: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # one-sided p, unadjusted
    level: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # the level it is tested at (Bonferroni)
    lower: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # best - other ≥ lower at that level
    tied: list[str] = field(default_factory=list)  # the best and every model not worse beyond noise, best first

    @property
    def beyond(self) -> list[str]:
        return [m for m in self.means.index if m not in self.tied]


def _flip_subsets(n: int) -> np.ndarray:
    """Rows of 0/1: which instances a sign pattern flips: every nonempty subset up to EXACT_UP_TO instances."""
    if n <= EXACT_UP_TO:
        codes = np.arange(1, 2 ** n)
        return ((codes[:, None] >> np.arange(n)) & 1).astype(bool)
    flips = np.random.default_rng(0).random((2 ** EXACT_UP_TO - 1, n)) < 0.5
    return flips[flips.any(axis=1)]


def _subset_means(diff: np.ndarray) -> np.ndarray:
    """Mean of the differences over each flipped subset, sorted. Flipping subset F leaves the mean at least as large
    as observed exactly when mean_F(diff) ≤ 0; shifting the differences by δ, when mean_F(diff) ≤ δ. Rounded so
    that accuracies in steps of 1/n_valid give exact zeros (0.82 - 0.80 - 0.02 is not 0 in floating point)."""
    flips = _flip_subsets(len(diff))
    return np.sort(np.round(flips @ diff / flips.sum(axis=1), 12))


def sign_flip_p(diff, shift: float = 0.0) -> float:
    """One-sided p of mean(diff) > shift: the share of sign patterns (identity included) whose mean of
    (diff - shift) is at least the observed one (scipy.stats.permutation_test, permutation_type='samples',
    alternative='greater' gives the same value, one shift at a time)."""
    diff = np.asarray(diff, float)
    if len(diff) == 0:
        return math.nan
    means = _subset_means(diff)
    return float((1 + np.count_nonzero(means <= shift)) / (len(means) + 1))


def exact_lower_bound(diff, level: float) -> float:
    """The largest δ that the sign-flip test rejects at `level` (mean(diff) > δ): its exact lower confidence bound,
    -inf when no shift can be rejected with this few instances."""
    diff = np.asarray(diff, float)
    means = _subset_means(diff)
    # p(δ) = (1 + #{means ≤ δ}) / (N + 1) < level  ⇔  #{means ≤ δ} ≤ k, with k the largest such count
    k = math.ceil(level * (len(means) + 1)) - 2
    return -math.inf if k < 0 else float(means[k])


def _spread(diff: np.ndarray, resolution: float) -> float:
    return max(float(diff.std(ddof=1)), resolution) if len(diff) > 1 else math.nan


def paired_t(diff, resolution: float = 0.0) -> tuple[float, float]:
    """One-sided paired t-test that mean(diff) (best − other) > 0, the sd floored at `resolution`: (t, p). scipy's
    ttest_1samp has no floor, hence the formula. No spread and no known resolution: the exact sign-flip p."""
    from scipy import stats
    d = np.round(np.asarray(diff, float), 12)
    n, mean = len(d), float(d.mean()) if len(d) else math.nan
    if n < 2:
        return math.nan, math.nan
    sd = _spread(d, resolution)
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return (math.inf if mean > 0 else math.nan), sign_flip_p(d)
    t = mean / (sd / math.sqrt(n))
    return t, float(stats.t.sf(t, n - 1))


def paired_p(diff, resolution: float = 0.0) -> float:
    return paired_t(diff, resolution)[1]


def lower_bound(diff, level: float, resolution: float = 0.0) -> float:
    """The lower confidence bound of mean(diff) at `level` from the same floored t-test (the bound is above 0
    exactly when paired_p < level); -inf with fewer than 2 instances."""
    from scipy import stats
    d = np.round(np.asarray(diff, float), 12)
    if len(d) < 2:
        return -math.inf
    sd = _spread(d, resolution)
    if sd <= 1e-12:
        return exact_lower_bound(d, level)
    return float(d.mean() - stats.t.isf(level, len(d) - 1) * sd / math.sqrt(len(d)))


def bonferroni_levels(pvals: pd.Series, alpha: float = ALPHA) -> pd.Series:
    """Each of the m comparisons with a data-picked best is tested at alpha / m (see the module's docstring)."""
    return pd.Series(alpha / max(len(pvals), 1), index=pvals.index, dtype=float)


def versus(best: str, diffs: dict[str, np.ndarray], alpha: float = ALPHA, resolution: float = 0.0) -> Versus:
    """`best` against each other model on the instances the two share: `diffs[m]` = best − m per shared instance
    (each model may have its own instances: pairing needs only the two). Bonferroni over the comparisons;
    `resolution`: the metric's step (1/n_valid), 0 if unknown."""
    means = pd.Series({best: 0.0, **{m: -float(np.mean(d)) for m, d in diffs.items()}}, dtype=float)
    v = Versus(best, max((len(d) for d in diffs.values()), default=0), means.sort_values(ascending=False,
                                                                                       kind="stable"))
    others = list(diffs)
    if not others:
        v.tied = [best]
        return v
    v.gap = pd.Series({m: float(np.mean(d)) for m, d in diffs.items()}, dtype=float)
    v.p = pd.Series({m: paired_p(d, resolution) for m, d in diffs.items()}, dtype=float)
    v.level = bonferroni_levels(v.p, alpha)
    v.lower = pd.Series({m: lower_bound(diffs[m], v.level[m], resolution) for m in others}, dtype=float)
    v.tied = [best] + [m for m in v.gap.sort_values(kind="stable").index if not v.p[m] < v.level[m]]  # nan: tied
    return v


def versus_best(table: pd.DataFrame, alpha: float = ALPHA, resolution: float = 0.0) -> Versus:
    """`table`: instances × models, complete (no NaN), higher is better. The best has the highest mean over those
    instances (ties broken by column order); each other model is compared with it on every instance."""
    table = table.astype(float)
    means = table.mean().sort_values(ascending=False, kind="stable")
    best = str(means.index[0])
    v = versus(best, {m: (table[best] - table[m]).to_numpy() for m in means.index[1:]}, alpha, resolution)
    v.means, v.n = means, len(table)
    return v


def instances_to_separate(k: int, alpha: float = ALPHA) -> int:
    """The fewest instances on which the sign-flip test can tell k models apart at all: its smallest p is 2^-n,
    tested at alpha / (k - 1). (The floored t-test can separate large gaps from 2 instances.)"""
    return max(1, math.floor(math.log2((k - 1) / alpha)) + 1) if k > 1 else 0
