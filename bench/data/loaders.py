"""fastai DataLoaders for the article's pipeline, over a split's items."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import RunConfig


def make_dls(cfg: RunConfig, root: Path, items: pd.DataFrame, device=None, presize: bool | None = None):
    """fastai DataLoaders for the article's pipeline: RandomResizedCrop item transform, aug_transforms + Normalize.
    Images come from the pre-resized cache (built here on first use) unless presize (default cfg.presize) is off;
    both routes decode through bench.data.images, so 16-bit, alpha and CMYK files look the same either way."""
    from fastai.vision.all import (CategoryBlock, ColReader, ColSplitter, DataBlock, ImageBlock, Normalize,
                                   RandomResizedCrop, aug_transforms, imagenet_stats)
    from ..train.fastpath import loader_kwargs
    from .presize import RGBImage, presized_files
    root = Path(root).resolve()
    use_cache = cfg.presize if presize is None else presize
    items = items.assign(x=presized_files(root, items["path"], cfg.item_size) if use_cache
                         else [str(root / p) for p in items["path"]])
    block = DataBlock(
        blocks=(ImageBlock(cls=RGBImage), CategoryBlock),
        get_x=ColReader("x"),
        get_y=ColReader("label"),
        splitter=ColSplitter("is_valid"),
        item_tfms=RandomResizedCrop(cfg.item_size, min_scale=cfg.min_scale),
        batch_tfms=[*aug_transforms(size=cfg.img_size), Normalize.from_stats(*imagenet_stats)],
    )
    return block.dataloaders(items, bs=cfg.batch_size, device=device, **loader_kwargs(cfg.num_workers, device))
