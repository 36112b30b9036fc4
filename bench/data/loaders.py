"""fastai DataLoaders for the article's pipeline, over a split's items, and the DataLoader settings they run with."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import RunConfig

Stats = tuple[tuple[float, ...], tuple[float, ...]]


def loader_kwargs(num_workers: int | None, device) -> dict:
    """DataLoader workers and pinned memory. auto (None): on CUDA one worker per core this process may run on
    (fastai's defaults.cpus, at most 16) and pinned host memory for asynchronous copies, so decoding and augmenting
    overlap the GPU's work; on a CPU 0 workers, which measured fastest on 2 cores (workers compete with the
    training threads for the same cores)."""
    cuda = getattr(device, "type", str(device).split(":")[0]) == "cuda"
    if num_workers is None:
        from fastcore.basics import defaults  # fastai's cpu count: the cores this process may run on
        num_workers = min(16, defaults.cpus) if cuda else 0
    return dict(num_workers=num_workers, pin_memory=cuda)


def stats_label(stats: Stats) -> str:
    """`mean/std` as recorded in a row's `normalize` column, e.g. `0.5,0.5,0.5/0.5,0.5,0.5`."""
    return "/".join(",".join(f"{v:g}" for v in part) for part in stats)


def make_dls(cfg: RunConfig, root: Path, items: pd.DataFrame, device=None, presize: bool | None = None,
             stats: Stats | None = None):
    """fastai DataLoaders for the article's pipeline: RandomResizedCrop item transform, aug_transforms + Normalize
    with `stats` (mean, std): those the body's weights were trained with (ArchSpec.input_stats), ImageNet's when
    not given. Images come from the pre-resized cache (built here on first use) unless presize (default
    cfg.presize) is off; both routes decode through bench.data.images, so 16-bit, alpha and CMYK files look the same
    either way."""
    from fastai.vision.all import (CategoryBlock, DataBlock, ImageBlock, IndexSplitter, ItemGetter, Normalize,
                                   RandomResizedCrop, aug_transforms, imagenet_stats)
    from .presize import RGBImage, presized_files
    root = Path(root).resolve()
    use_cache = cfg.presize if presize is None else presize
    files = presized_files(root, items["path"], cfg.item_size) if use_cache else [str(root / p) for p in items["path"]]
    # (file, label) tuples rather than the DataFrame: fastai reads a DataFrame item by item through pandas' iloc
    # (~0.1 ms an image, every epoch); the same items, labels and split positions give the same batches (test)
    records = list(zip(files, items["label"]))
    block = DataBlock(
        blocks=(ImageBlock(cls=RGBImage), CategoryBlock),
        get_x=ItemGetter(0),
        get_y=ItemGetter(1),
        splitter=IndexSplitter(np.flatnonzero(items["is_valid"].to_numpy(bool))),
        item_tfms=RandomResizedCrop(cfg.item_size, min_scale=cfg.min_scale),
        batch_tfms=[*aug_transforms(size=cfg.img_size), Normalize.from_stats(*(stats or imagenet_stats))],
    )
    return block.dataloaders(records, bs=cfg.batch_size, device=device, **loader_kwargs(cfg.num_workers, device))


def test_loader(dls, cfg: RunConfig, root: Path, items: pd.DataFrame, bs: int):
    """A loader over `items` (path, label) with the validation transforms of `dls` (fastai's test_dl: no
    augmentation, in order, no batch dropped), from the same pre-resized cache as training when presize is on."""
    from .presize import presized_files
    root = Path(root).resolve()
    paths = items["path"]
    files = presized_files(root, paths, cfg.item_size) if cfg.presize else [str(root / p) for p in paths]
    return dls.test_dl(list(zip(files, items["label"])), with_labels=True, bs=bs)
