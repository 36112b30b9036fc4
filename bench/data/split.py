"""The fixed stratified split (computed once on the full dataset, saved, reused) and the per-class subsample."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd

from ..config import ConfigError, RunConfig
from ..files import atomic_write, locked
from .dataset import Dataset


def split_path(results_dir: Path, ds: Dataset, cfg: RunConfig) -> Path:
    if ds.own_split:
        return Path(results_dir) / ds.name / "split_own.csv"
    return Path(results_dir) / ds.name / f"split_s{cfg.split_seed}_k{cfg.n_folds}.csv"


def compute_split(items: pd.DataFrame, n_folds: int, split_seed: int) -> pd.DataFrame:
    """Stratified k-fold assignment of every item: fold 0 is the article's validation set. Exact duplicates (same
    `sha`, when the column is there) follow their first copy, so no image is on both sides of the split; without
    duplicates this is plain StratifiedKFold on the sorted items."""
    from sklearn.model_selection import StratifiedKFold
    reps = items.drop_duplicates("sha") if "sha" in items.columns else items
    distinct = items.drop_duplicates(["label", "sha"]) if "sha" in items.columns else items
    counts = distinct["label"].value_counts()
    small = counts[counts < n_folds]
    if len(small):
        cls, n = small.index[0], small.iloc[0]
        raise ConfigError(f"dataset: class {cls!r} has {n} distinct image(s); a {n_folds}-fold stratified split "
                          f"needs at least {n_folds} per class ({len(small)} class(es) too small). Add images, "
                          f"remove the class, or lower n_folds")
    fold = pd.Series(-1, index=reps.index)
    skf = StratifiedKFold(n_folds, shuffle=True, random_state=split_seed)
    for k, (_, valid_idx) in enumerate(skf.split(reps["path"], reps["label"])):
        fold.iloc[valid_idx] = k
    df = items[["path", "label"]].copy()
    if "sha" in items.columns:
        df["fold"] = items["sha"].map(dict(zip(reps["sha"], fold))).values
    else:
        df["fold"] = fold.values
    df["is_valid"] = df["fold"] == 0
    return df


def own_split(items: pd.DataFrame) -> pd.DataFrame:
    """The source's own split in split-file form: fold 0 = its validation images, -1 = its training images."""
    df = items[["path", "label"]].copy()
    df["fold"] = items["is_valid"].map({True: 0, False: -1}).values
    df["is_valid"] = df["fold"] == 0
    return df


def load_or_make_split(ds: Dataset, cfg: RunConfig, results_dir: Path | None = None,
                       write: bool = True) -> tuple[pd.DataFrame, str]:
    """The split file next to the dataset's results: made once, then reused by every architecture and subsample.
    A split file made on other data is an error, never a silent mismatch. Returns (split, split hash). `write=False`
    (a dry run) reads a saved split but does not save a new one: the same split and hash, nothing written."""
    if ds.own_split and cfg.fold != 0:
        raise ConfigError(f"fold: {ds.name} comes with its own train/validation split, so there are no k folds to "
                          f"choose from; use fold 0 (n_folds is ignored for it; in an experiment file, leave out "
                          f"`folds:`)")
    path = split_path(Path(results_dir or cfg.results_dir), ds, cfg)
    meta_path = path.with_suffix(".json")
    if not write:
        if path.exists():  # the metadata is written first, so a reader without the lock never sees it missing
            return read_split(path, ds)
        df = own_split(ds.items) if ds.own_split else compute_split(ds.items, cfg.n_folds, cfg.split_seed)
        return df, _hash(df.to_csv(index=False).encode())
    # computed before anything is written: a dataset that cannot be split (a class smaller than n_folds) leaves no
    # results folder, split or scan report behind
    made = None if path.exists() else \
        own_split(ds.items) if ds.own_split else compute_split(ds.items, cfg.n_folds, cfg.split_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Check-and-create under one lock: a process starting on the same new dataset at the same moment must not read
    # the split file before its metadata exists (that reads as "files changed"). The metadata is written first as
    # well, so even a reader that takes no lock never sees the split without it.
    with locked(path):
        if path.exists():
            df, split_hash = read_split(path, ds)
        else:
            df = made if made is not None else \
                own_split(ds.items) if ds.own_split else compute_split(ds.items, cfg.n_folds, cfg.split_seed)
            data = df.to_csv(index=False).encode()
            split_hash = _hash(data)
            atomic_write(meta_path, json.dumps({"fingerprint": ds.fingerprint, "split_seed": cfg.split_seed,
                                                 "n_folds": cfg.n_folds, "split_hash": split_hash,
                                                 "n_items": len(df)}, indent=1).encode())
            atomic_write(path, data)
    ds.write_report()  # the scan report, now that the dataset is known to be usable (bench.data.dataset)
    return df, split_hash


def read_split(path: Path, ds: Dataset) -> tuple[pd.DataFrame, str]:
    """A saved split file and its hash, checked against the dataset's fingerprint in its metadata."""
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("fingerprint") != ds.fingerprint:
        raise ConfigError(
            f"split: {path} was made for dataset fingerprint {meta.get('fingerprint', '?')} but {ds.root} is "
            f"now {ds.fingerprint} (files changed). Results across the change are not comparable: move "
            f"{path.parent} aside (or delete the split file) to start a new split")
    data = path.read_bytes()
    return pd.read_csv(io.BytesIO(data), keep_default_na=False, dtype={"label": str}), _hash(data)


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def subsample(split: pd.DataFrame, pct: float, fold: int = 0) -> pd.DataFrame:
    """The first int(pct * n) files of each class in sorted order (the article's notebook: a floor, so 25 % of 150
    is 37), joined onto the fixed split: the same pct gives the same validation images for every architecture, and a
    smaller pct's images are a subset of a larger one's. With a source's own split (fold -1 marks its training
    images) the fraction is taken on each side, so sorted order (train/... before valid/...) cannot empty the
    validation set. A class left with no file is an error, never a silently smaller problem."""
    df = split.sort_values("path")
    if pct < 1:
        keys = ["label", "fold"] if (df["fold"] < 0).any() else ["label"]
        df = df.groupby(keys, group_keys=False, sort=False)[df.columns.tolist()].apply(
            lambda g: g.head(int(pct * len(g))))
        lost = sorted(set(split["label"]) - set(df["label"]))
        if lost:
            n = int((split["label"] == lost[0]).sum())
            raise ConfigError(f"pct_images: {pct} of class {lost[0]!r}'s {n} file(s) is less than one file "
                              f"({len(lost)} class(es) left empty); raise pct_images to at least {1 / n:.3g}")
    df = df.assign(is_valid=df["fold"] == fold).sort_values("path", ignore_index=True)
    if not df["is_valid"].any() or df["is_valid"].all():
        raise ConfigError(f"pct_images: {pct} leaves an empty train or validation set; raise pct_images")
    return df
