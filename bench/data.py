"""The fixed stratified split (computed once on the full dataset, saved, reused), the subsample, the DataLoaders."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pandas as pd

from .config import ConfigError, RunConfig
from .datasets import Dataset


def split_path(results_dir: Path, ds: Dataset, cfg: RunConfig) -> Path:
    return Path(results_dir) / ds.name / f"split_s{cfg.split_seed}_k{cfg.n_folds}.csv"


def compute_split(items: pd.DataFrame, n_folds: int, split_seed: int) -> pd.DataFrame:
    """Stratified k-fold assignment of every item: fold 0 is the article's validation set."""
    from sklearn.model_selection import StratifiedKFold
    counts = items["label"].value_counts()
    small = counts[counts < n_folds]
    if len(small):
        cls, n = small.index[0], small.iloc[0]
        raise ConfigError(f"dataset: class {cls!r} has {n} image(s); a {n_folds}-fold stratified split needs at "
                          f"least {n_folds} per class ({len(small)} class(es) too small). Add images, remove "
                          f"the class, or lower n_folds")
    df = items[["path", "label"]].copy()
    df["fold"] = -1
    skf = StratifiedKFold(n_folds, shuffle=True, random_state=split_seed)
    for k, (_, valid_idx) in enumerate(skf.split(df["path"], df["label"])):
        df.loc[df.index[valid_idx], "fold"] = k
    df["is_valid"] = df["fold"] == 0
    return df


def load_or_make_split(ds: Dataset, cfg: RunConfig, results_dir: Path | None = None) -> tuple[pd.DataFrame, str]:
    """The split file next to the dataset's results: made once, then reused by every architecture and subsample.
    A split file made on other data is an error, never a silent mismatch. Returns (split, split hash)."""
    path = split_path(Path(results_dir or cfg.results_dir), ds, cfg)
    meta_path = path.with_suffix(".json")
    if path.exists():
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if meta.get("fingerprint") != ds.fingerprint:
            raise ConfigError(
                f"split: {path} was made for dataset fingerprint {meta.get('fingerprint', '?')} but {ds.root} is now "
                f"{ds.fingerprint} (files changed). Results across the change are not comparable: move "
                f"{path.parent} aside (or delete the split file) to start a new split")
        data = path.read_bytes()
        return pd.read_csv(path, keep_default_na=False, dtype={"label": str}), _hash(data)
    df = compute_split(ds.items, cfg.n_folds, cfg.split_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = df.to_csv(index=False).encode()
    _atomic_write(path, data)
    _atomic_write(meta_path, json.dumps({"fingerprint": ds.fingerprint, "split_seed": cfg.split_seed,
                                         "n_folds": cfg.n_folds, "split_hash": _hash(data),
                                         "n_items": len(df)}, indent=1).encode())
    return df, _hash(data)


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def subsample(split: pd.DataFrame, pct: float, fold: int = 0) -> pd.DataFrame:
    """The first ceil(pct * n) files of each class in sorted order, joined onto the fixed split: the same pct gives
    the same validation images for every architecture, and a smaller pct's images are a subset of a larger one's."""
    df = split.sort_values("path")
    if pct < 1:
        df = df.groupby("label", group_keys=False, sort=False)[df.columns.tolist()].apply(
            lambda g: g.head(math.ceil(pct * len(g))))
    df = df.assign(is_valid=df["fold"] == fold).sort_values("path", ignore_index=True)
    if not df["is_valid"].any() or df["is_valid"].all():
        raise ConfigError(f"pct_images: {pct} leaves an empty train or validation set; raise pct_images")
    return df


def make_dls(cfg: RunConfig, root: Path, items: pd.DataFrame, device=None):
    """fastai DataLoaders for the article's pipeline: RandomResizedCrop item transform, aug_transforms + Normalize."""
    from fastai.vision.all import (CategoryBlock, ColReader, ColSplitter, DataBlock, ImageBlock, Normalize,
                                   RandomResizedCrop, aug_transforms, imagenet_stats)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_x=ColReader("path", pref=f"{Path(root).resolve()}{os.path.sep}"),
        get_y=ColReader("label"),
        splitter=ColSplitter("is_valid"),
        item_tfms=RandomResizedCrop(cfg.item_size, min_scale=cfg.min_scale),
        batch_tfms=[*aug_transforms(size=cfg.img_size), Normalize.from_stats(*imagenet_stats)],
    )
    return block.dataloaders(items, bs=cfg.batch_size, num_workers=cfg.num_workers, device=device)
