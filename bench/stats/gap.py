"""The gap between two candidates on the images and instances they share, and its variance from both sources of
noise (see bench/stats/__init__.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ALPHA = 0.05
MARGIN = 0.005          # 0.5 pp: under this two candidates are practically the same (`--margin`)
MIN_INSTANCES = 3       # shared (seed, fold) instances below which two candidates are not compared
INSTANCE = ["seed", "fold"]
CLAIMS = ("worse", "equivalent", "not separated")


@dataclass
class Gap:
    """best - other on their shared instances, and its uncertainty (accuracy units)."""
    diff: float
    var: float
    df: float
    n: int                 # shared instances
    folds: int
    images: int            # scored images per fold (the mean over folds)
    var_seed: float = 0.0  # the two components of `var` (the within-fold estimate), for projections
    var_image: float = 0.0
    per_image: bool = True  # False: no per-image outcomes, the image term is a bound

    def p(self) -> float:
        """Two-sided p of 'no difference'."""
        from scipy import stats
        if self.var <= 0:
            return 1.0 if self.diff == 0 else 0.0
        return float(2 * stats.t.sf(abs(self.diff) / np.sqrt(self.var), self.df))

    def interval(self, level: float) -> tuple[float, float]:
        """The two-sided interval at confidence 1 - level."""
        from scipy import stats
        if self.var <= 0:
            return self.diff, self.diff
        h = float(stats.t.ppf(1 - level / 2, self.df)) * np.sqrt(self.var)
        return self.diff - h, self.diff + h


def _satterthwaite(parts: list[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of variance estimates [(v, df)]."""
    num = sum(v for v, _ in parts) ** 2
    den = sum(v * v / d for v, d in parts if d > 0 and v > 0)
    return num / den if den > 0 else float("inf")


def _fold_gap(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float, float]:
    """One fold: a, b are seeds x images correctness. (mean gap, seed var term, its df, image var term, its df)."""
    d = a.astype(float) - b.astype(float)
    s, n = d.shape
    v_seed = d.mean(axis=1).var(ddof=1) / s if s > 1 else 0.0
    img = d.mean(axis=0)
    v_img = img.var(ddof=1) / n if n > 1 else 0.0
    # only the images the two disagree on carry information: with a handful of them the t reference needs their
    # count, not the number of images, as its degrees of freedom (as McNemar's exact test would: 4 of 400 is p 0.125)
    return float(d.mean()), v_seed, s - 1, v_img, max(int(np.count_nonzero(img)) - 1, 1)


def _fold_gap_bound(acc_a: np.ndarray, acc_b: np.ndarray, n_images: int) -> tuple[float, float, float, float, float]:
    """One fold without per-image outcomes: the image term is bounded by the largest discordance the error rates
    allow (every error of one where the other is right)."""
    d = acc_a - acc_b
    s = len(d)
    v_seed = d.var(ddof=1) / s if s > 1 else 0.0
    q = min(1.0, float(np.mean((1 - acc_a) + (1 - acc_b))))
    v_img = max(q - float(d.mean()) ** 2, 0.0) / max(n_images, 1)
    return float(d.mean()), v_seed, s - 1, v_img, max(n_images - 1, 1)


def gap(a: pd.DataFrame, b: pd.DataFrame, outcomes: dict | None = None, n_train: float | None = None) -> Gap | None:
    """a - b over the instances both have. `a`, `b`: one row per instance (seed, fold, run_id, final_accuracy,
    n_valid); `outcomes`: run_id -> Series of 0/1 correctness indexed by image (validation). None: nothing shared."""
    outcomes = outcomes or {}
    shared = a.merge(b, on=INSTANCE, suffixes=("_a", "_b"))
    if shared.empty:
        return None
    folds, parts, n_images, per_image = [], [], [], True
    for _, f in shared.groupby("fold", sort=True, dropna=False):
        ra, rb = f.run_id_a.tolist(), f.run_id_b.tolist()
        have = all(r in outcomes for r in ra + rb)
        if have:
            items = outcomes[ra[0]].index
            for r in ra + rb:
                items = items.intersection(outcomes[r].index)
            have = len(items) > 0
        if have:
            ma = np.stack([outcomes[r].reindex(items).to_numpy(float) for r in ra])
            mb = np.stack([outcomes[r].reindex(items).to_numpy(float) for r in rb])
            g = _fold_gap(ma, mb)
            n_images.append(len(items))
        else:
            per_image = False
            n = int(pd.to_numeric(f.n_valid_a, errors="coerce").fillna(0).max())
            g = _fold_gap_bound(f.final_accuracy_a.to_numpy(float), f.final_accuracy_b.to_numpy(float), n)
            n_images.append(n)
        folds.append(g[0])
        parts.append(g[1:])
    k = len(folds)
    diff = float(np.mean(folds))
    v_seed = sum(p[0] for p in parts) / k ** 2
    v_img = sum(p[2] for p in parts) / k ** 2
    var = v_seed + v_img
    terms = [(p[0] / k ** 2, p[1]) for p in parts] + [(p[2] / k ** 2, p[3]) for p in parts]
    if k >= 2:
        # what the folds' gaps spread beyond their own (seed + image) noise is the training set's effect; the folds'
        # training sets overlap, so it averages out slower than 1/k (Nadeau & Bengio: 1/k + n_valid/n_train)
        ratio = (np.mean(n_images) / n_train) if n_train else 1 / 4  # 5 folds: valid / train = 1/4
        between = max(float(np.var(folds, ddof=1)) - float(np.mean([p[0] + p[2] for p in parts])), 0.0)
        extra = (1 / k + ratio) * between
        var += extra
        terms.append((extra, k - 1))
    df = _satterthwaite(terms)
    if not np.isfinite(df):
        df = 1e6
    return Gap(diff, var, max(df, 1.0), len(shared), k, int(round(np.mean(n_images))), v_seed, v_img, per_image)
