"""The article's published figures (reference/blog_results.csv, a copy of the 44 runs read from the author's
notebooks) and the datasets they may be shown beside: only those declared `article: true` in
experiments/datasets.yaml. Its figures describe its plant images; beside any other data they would mislead."""
from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..identity import weights_kind

# What a run must share with an article row for the figure to be the same experiment (issues 10, 16): the settings
# the article's rows vary, read from each row ...
MATCH = ["arch", "head", "layer_groups", "img_size", "batch_size", "pct_images"]
# ... and those every article run shared: its protocol (the `blog` profile = RunConfig's defaults) and ImageNet
# weights. A 2-epoch run, or one from random init, is not the experiment the figure measured.
PROTOCOL = ["head_epochs", "ft_epochs", "head_lr", "ft_lr_min", "ft_lr_max"]
ARTICLE = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name in PROTOCOL}
# Head names of older results: the hand-built head was called `custom`; the article calls it the manual head.
HEAD_ALIASES = {"custom": "manual"}


def load_reference() -> pd.DataFrame:
    try:
        ref = resources.files("bench.report").joinpath("reference/blog_results.csv")
        with ref.open() as f:
            return pd.read_csv(f)
    except (NotADirectoryError, FileNotFoundError):  # namespace-package edge cases of editable installs
        return pd.read_csv(Path(__file__).with_name("reference") / "blog_results.csv")


def article_datasets(path: Path | None = None) -> set[str]:
    """Names declared `article: true` in the datasets file (the one `bench run --dataset NAME` reads)."""
    try:
        from ..data.named import named_datasets
        entries = named_datasets(path)
    except Exception:  # noqa: BLE001 — a broken datasets file is `bench run`'s error to report, not the report's
        return set()
    return {name for name, e in entries.items() if e.get("article") is True}


def _key(v) -> str:
    s = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
    s = s.removesuffix(".0")
    return HEAD_ALIASES.get(s, s)


def _same(a, b) -> bool:
    try:
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0))
    except (TypeError, ValueError):
        return False


def published(row, ref: pd.DataFrame) -> tuple[float, float]:
    """The article's (accuracy, top-k) for exactly this arch, head, layer groups, image size, batch size and
    subsample, when the row also ran the article's epochs and learning rates from ImageNet weights."""
    if ref.empty or not set(MATCH) <= set(ref.columns):
        return np.nan, np.nan
    if weights_kind(str(row.get("weights_used") or "")) != "imagenet" or \
            not all(_same(row.get(k), v) for k, v in ARTICLE.items()):
        return np.nan, np.nan
    same = np.ones(len(ref), bool)
    for col in MATCH:
        same &= ref[col].map(_key).to_numpy() == _key(row[col]) if col != "pct_images" else \
            np.array([_same(v, row[col]) for v in ref[col]])
    hit = ref[same]
    if len(hit) != 1:
        return np.nan, np.nan
    return float(hit.accuracy.iloc[0]), float(hit.top_k_accuracy.iloc[0])


def add_published(summary: pd.DataFrame, ref: pd.DataFrame, article: set[str]) -> pd.DataFrame:
    s = summary.copy()
    s["published_acc"] = s["published_top_k"] = np.nan
    mine = s.dataset.isin(article)
    if mine.any():
        s.loc[mine, ["published_acc", "published_top_k"]] = [published(r, ref) for _, r in s[mine].iterrows()]
    return s
