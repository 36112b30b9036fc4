"""Baselines and per-class results of a report section, from its runs' per-image outcomes (bench.report.outcomes).

- The majority-class baseline: the share of the section's scored images (the union of its runs' validation images)
  in their largest class, what "always predict that class" scores. A model is *above it beyond noise* when a
  one-sided exact binomial test (scipy.stats.binomtest) of its mean accuracy, as correct answers out of its scored
  images, rejects "no better than the majority share" at ALPHA.
- Per-class recall (sklearn's confusion matrix, summed over a model's runs) and balanced accuracy (the mean recall
  over classes, per run, then averaged), shown when the classes are unbalanced (largest / smallest count > 1.5).
- The confusion matrix per model and its most confused pairs (true → predicted, counts over its runs).
- The held-out test set (split `test`): each model's mean test accuracy and that set's majority baseline.
Rows without outcomes (written before they existed) have none of this; the section says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .outcomes import read_outcomes

ALPHA = 0.05
IMBALANCE = 1.5  # largest / smallest class count above which accuracy alone misleads
TOP_PAIRS = 3
TEST_NAME = "one-sided exact binomial test (scipy.stats.binomtest)"


@dataclass
class Baseline:
    n_images: int
    counts: pd.Series        # class -> scored images of it, largest first
    majority: str
    share: float             # the majority-class accuracy

    @property
    def imbalance(self) -> float:
        return float(self.counts.max() / max(self.counts.min(), 1))

    @property
    def unbalanced(self) -> bool:
        return self.imbalance > IMBALANCE


@dataclass
class SectionClasses:
    """One section's baseline and per-model per-class results (models with outcomes only)."""
    baseline: Baseline | None                       # validation images; None without outcomes
    models: pd.DataFrame = field(default_factory=pd.DataFrame)  # model, n_runs, n_images, accuracy, p_above, above,
    #                                                 balanced, recall_<class>...
    confusion: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> counts (rows true, cols predicted)
    test: pd.DataFrame = field(default_factory=pd.DataFrame)  # model, test_accuracy, test_n, runs
    test_baseline: Baseline | None = None
    missing: int = 0                                 # ok runs without outcomes

    def below(self) -> pd.DataFrame:
        """Models not above the majority baseline beyond noise."""
        return self.models[~self.models.above] if len(self.models) else self.models

    def confused_pairs(self, model: str, top: int = TOP_PAIRS) -> list[tuple[str, str, int, float]]:
        """(true, predicted, count, share of the true class's answers), most frequent first."""
        cm = self.confusion.get(model)
        if cm is None:
            return []
        off = cm.where(~np.eye(len(cm), dtype=bool)).stack()
        off = off[off > 0].sort_values(ascending=False, kind="stable").head(top)
        rows = cm.sum(axis=1)
        return [(t, p, int(n), float(n / rows[t])) for (t, p), n in off.items()]


def load(results_dir: str | Path, ok: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """run_id -> its outcomes (all splits), for the rows that have them."""
    out = {}
    for row in ok.to_dict("records"):
        frame = read_outcomes(results_dir, row)
        if frame is not None and len(frame):
            out[str(row["run_id"])] = frame
    return out


def baseline(frames: list[pd.DataFrame]) -> Baseline | None:
    """The majority class of the distinct images the frames scored (an image scored by several runs counts once)."""
    if not frames:
        return None
    items = pd.concat([f[["item", "label"]] for f in frames]).drop_duplicates("item")
    if items.empty:
        return None
    counts = items["label"].value_counts()
    return Baseline(len(items), counts, str(counts.index[0]), float(counts.iloc[0] / len(items)))


def above_majority(accuracy: float, n_images: int, share: float) -> float:
    """p of the one-sided exact binomial test: round(accuracy × n) correct of n against the majority share."""
    from scipy.stats import binomtest
    k = int(round(accuracy * n_images))
    return float(binomtest(k, n_images, share, alternative="greater").pvalue)


def _confusion(frames: list[pd.DataFrame], classes: list[str]) -> pd.DataFrame:
    from sklearn.metrics import confusion_matrix
    cm = sum(confusion_matrix(f["label"], f["pred"], labels=classes) for f in frames)
    return pd.DataFrame(cm, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))


def _model_row(model: str, frames: list[pd.DataFrame], classes: list[str], base: Baseline) -> dict:
    per_run = [(_confusion([f], classes)) for f in frames]
    acc = float(np.mean([np.trace(c.to_numpy()) / c.to_numpy().sum() for c in per_run]))
    recalls = pd.DataFrame([np.diag(c.to_numpy()) / np.maximum(c.to_numpy().sum(axis=1), 1) for c in per_run],
                           columns=classes)
    present = [c for c in classes if base.counts.get(c, 0) > 0]  # a class with no scored image has no recall
    n = int(pd.concat([f["item"] for f in frames]).nunique())
    p = above_majority(acc, n, base.share)
    row = dict(model=model, n_runs=len(frames), n_images=n, accuracy=acc, p_above=p, above=p < ALPHA,
               balanced=float(recalls[present].mean(axis=1).mean()))
    row.update({f"recall_{c}": float(recalls[c].mean()) for c in present})
    return row


def section_classes(ok: pd.DataFrame, outcomes: dict[str, pd.DataFrame]) -> SectionClasses:
    """`ok`: one section's rows (model, run_id, test_accuracy, test_n); `outcomes`: from `load`."""
    split = lambda f, s: f[f["split"].astype(str) == s]  # noqa: E731
    runs = {m: [outcomes[r] for r in d.run_id.astype(str) if r in outcomes] for m, d in ok.groupby("model", sort=False)}
    missing = int((~ok.run_id.astype(str).isin(list(outcomes))).sum())
    valid = {m: [split(f, "valid") for f in fs] for m, fs in runs.items() if fs}
    base = baseline([f for fs in valid.values() for f in fs])
    out = SectionClasses(base, missing=missing)
    if base is not None:
        classes = sorted(set(base.counts.index) | {str(p) for fs in valid.values() for f in fs for p in f["pred"]})
        out.models = pd.DataFrame([_model_row(m, fs, classes, base) for m, fs in valid.items()])
        out.confusion = {m: _confusion(fs, classes) for m, fs in valid.items()}
    tests = [split(f, "test") for fs in runs.values() for f in fs]
    out.test_baseline = baseline([t for t in tests if len(t)])
    if "test_accuracy" in ok.columns:
        t = ok.assign(test_accuracy=pd.to_numeric(ok.test_accuracy, errors="coerce"),
                      test_n=pd.to_numeric(ok.get("test_n"), errors="coerce")).dropna(subset=["test_accuracy"])
        if len(t):
            out.test = t.groupby("model", sort=False).agg(test_accuracy=("test_accuracy", "mean"),
                                                           test_sd=("test_accuracy", "std"),
                                                           test_n=("test_n", "max"),
                                                           runs=("test_accuracy", "size")).reset_index()
    return out


def summary_columns(sc: SectionClasses) -> pd.DataFrame:
    """model -> majority_acc, p_above_majority, balanced_acc, test_acc, test_n: the summary table's new columns."""
    cols = ["model", "majority_acc", "p_above_majority", "balanced_acc", "test_acc", "test_n"]
    m = sc.models
    a = (pd.DataFrame({"model": m.model, "majority_acc": sc.baseline.share, "p_above_majority": m.p_above,
                       "balanced_acc": m.balanced}) if len(m) else pd.DataFrame(columns=cols[:4]))
    t = sc.test.rename(columns={"test_accuracy": "test_acc"})[["model", "test_acc", "test_n"]] if len(sc.test) else \
        pd.DataFrame(columns=["model", "test_acc", "test_n"])
    return a.merge(t, on="model", how="outer").reindex(columns=cols)


def sentences(sc: SectionClasses) -> list[str]:
    """The baseline in words: its share, and the models not above it beyond noise (named with the test)."""
    b = sc.baseline
    if b is None:
        return ["No per-image outcomes for these runs (written before bench recorded them): no majority-class "
                "baseline, per-class recall or confusion matrix."] if sc.missing else []
    out = [f"Majority-class baseline: {100 * b.share:.1f} % (always {b.majority!r}: {int(b.counts.iloc[0])} of the "
           f"{b.n_images} scored images)."]
    below = sc.below()
    if len(below):
        names = ", ".join(f"{r.model} ({100 * r.accuracy:.1f} %, p {r.p_above:.2g})" for r in below.itertuples())
        out.append(f"Not above it beyond noise ({TEST_NAME}, α {ALPHA:g}): {names}.")
    if b.unbalanced:
        out.append(f"Classes are unbalanced (largest/smallest {b.imbalance:.1f}): read balanced accuracy and "
                   f"per-class recall beside accuracy.")
    if sc.missing:
        out.append(f"{sc.missing} run(s) have no per-image outcomes and are left out of these figures.")
    return out


def warning(sc: SectionClasses | None) -> str:
    """One sentence for the verdict: the majority-class baseline, and the candidates not above it beyond noise
    ('' without outcomes)."""
    if sc is None or sc.baseline is None:
        return ""
    base = f"Majority-class baseline {100 * sc.baseline.share:.1f} % (always {sc.baseline.majority!r})"
    if not len(sc.below()):
        return f"{base}: every candidate is above it beyond noise."
    names = ", ".join(f"{r.model} ({100 * r.accuracy:.1f} %)" for r in sc.below().itertuples())
    return f"{base}; not above it beyond noise: {names}."
