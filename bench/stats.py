"""Paired comparisons against the best of several models: the one test the report (and the race) use to say "tied".

Pure numpy/scipy, no training code: `bench.report` and `bench.sweep` may both import it.

The test is the exact one-sided paired sign-flip permutation test (Fisher-Pitman) of "the best's mean over the
shared instances is higher than the other's": under no difference, each instance's difference is as likely to have
either sign. It is exact at any n, makes no normality assumption and cannot be fooled by a zero or near-zero variance:
a constant one-image gap on 3 instances has p = 1/8, not 0 (accuracy moves in steps of 1/n_valid, so equal gaps are
common). With n instances no p is below 2^-n: 3 instances can never separate two models at 5 %.

The best is picked from the data, so the k - 1 comparisons with it are corrected with Holm's step-down method
(family-wise error rate alpha), and each gap gets the lower confidence bound of the same test at the same
step's level: "beyond noise" (Holm rejects) exactly when that bound is above 0.
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
    p: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # one-sided exact p, unadjusted
    level: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # Holm's level for that comparison
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


def lower_bound(diff, level: float) -> float:
    """The largest δ that the one-sided test rejects at `level` (mean(diff) > δ): the exact lower confidence bound
    of the mean difference, -inf when no shift can be rejected with this few instances."""
    diff = np.asarray(diff, float)
    means = _subset_means(diff)
    # p(δ) = (1 + #{means ≤ δ}) / (N + 1) < level  ⇔  #{means ≤ δ} ≤ k, with k the largest such count
    k = math.ceil(level * (len(means) + 1)) - 2
    return -math.inf if k < 0 else float(means[k])


def holm_levels(pvals: pd.Series, alpha: float = ALPHA) -> pd.Series:
    """Each comparison's Holm step-down level: the i-th smallest p is tested at alpha / (m - i) while every smaller
    one was rejected; from the first that is not, the rest keep that step's level (so none of them is rejected)."""
    m, level, out, stopped = len(pvals), alpha, {}, False
    for i, (name, p) in enumerate(pvals.sort_values(kind="stable").items()):
        if not stopped:
            level = alpha / (m - i)
            stopped = not p < level
        out[name] = level
    return pd.Series(out, dtype=float).reindex(pvals.index)


def versus(best: str, diffs: dict[str, np.ndarray], alpha: float = ALPHA) -> Versus:
    """`best` against each other model on the instances the two share: `diffs[m]` = best − m per shared instance
    (each model may have its own instances: pairing needs only the two). Holm over the comparisons."""
    means = pd.Series({best: 0.0, **{m: -float(np.mean(d)) for m, d in diffs.items()}}, dtype=float)
    v = Versus(best, max((len(d) for d in diffs.values()), default=0), means.sort_values(ascending=False,
                                                                                       kind="stable"))
    others = list(diffs)
    if not others:
        v.tied = [best]
        return v
    v.gap = pd.Series({m: float(np.mean(d)) for m, d in diffs.items()}, dtype=float)
    v.p = pd.Series({m: sign_flip_p(d) for m, d in diffs.items()}, dtype=float)
    v.level = holm_levels(v.p, alpha)
    v.lower = pd.Series({m: lower_bound(diffs[m], v.level[m]) for m in others}, dtype=float)
    v.tied = [best] + [m for m in v.gap.sort_values(kind="stable").index if not v.p[m] < v.level[m]]
    return v


def versus_best(table: pd.DataFrame, alpha: float = ALPHA) -> Versus:
    """`table`: instances × models, complete (no NaN), higher is better. The best has the highest mean over those
    instances (ties broken by column order); each other model is compared with it on every instance."""
    table = table.astype(float)
    means = table.mean().sort_values(ascending=False, kind="stable")
    best = str(means.index[0])
    v = versus(best, {m: (table[best] - table[m]).to_numpy() for m in means.index[1:]}, alpha)
    v.means, v.n = means, len(table)
    return v


def instances_to_separate(k: int, alpha: float = ALPHA) -> int:
    """The fewest instances on which k models can be told apart at all: the smallest p is 2^-n, tested at
    alpha / (k - 1) by the first Holm step."""
    return max(1, math.floor(math.log2((k - 1) / alpha)) + 1) if k > 1 else 0
