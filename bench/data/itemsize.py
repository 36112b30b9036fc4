"""Whether the item transform blows a dataset's images up far beyond what the batch needs.

The article's protocol crops every image to `item_size` = 512 px (RandomResizedCrop) before the batch transform
brings it to `img_size`; on its ~500-px plant photos that is a crop at about their own resolution. On a dataset of
small images (28-px digits, 64-px thumbnails) the same 512 px is an upscale that adds no detail and costs time
(issue 19 measured 37 s against 14 s with --item-size 32, on a 10-class folder of 28-px images at 32 px): each
image needs at most max(its shorter side, img_size) px, its own detail or the batch's size, whichever is larger. The protocol stays the article's by default; the run says
so once, with the setting that removes the waste.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

# The rule: warn when the item size is at least UPSCALE times what more than half of the images need (their shorter
# side, or img_size when that is larger). 1.5 leaves alone a 512-px item size on ~400-px photos (a mild upscale the
# article's own data had), and catches 512 on thumbnails of 256 px or less.
UPSCALE = 1.5
MOST = 0.5


def needed_sizes(short_sides: pd.Series, img_size: int) -> pd.Series:
    """Per image, the item size that keeps all it has: its shorter side, or img_size when the batch is larger."""
    return short_sides.clip(lower=img_size)


def upscale_note(item_size: int, img_size: int, short_sides: pd.Series, name: str) -> str | None:
    """One warning line when the item transform upscales most images by UPSCALE x or more beyond what they need;
    else None. `short_sides`: each readable image's shorter side in px."""
    short = short_sides[short_sides > 0]
    if item_size <= img_size or short.empty:
        return None
    blown = item_size >= UPSCALE * needed_sizes(short, img_size)
    if blown.mean() <= MOST:
        return None
    suggest = int(needed_sizes(short, img_size).median())
    return (f"item size {item_size} px: {blown.mean():.0%} of {name}'s {len(short)} images have a shorter side of "
            f"{int(short.median())} px (median), so the item transform upscales them to {item_size} px before the "
            f"batch transform brings them to {img_size} px; --item-size {suggest} (make: ITEM_SIZE={suggest}) keeps "
            f"every pixel they have and trains faster. {item_size} px is the article's protocol, kept by default")


def short_sides(root: Path, rel_paths) -> pd.Series:
    """Each image's shorter side from the scan (cached per file: a stat each, no decoding)."""
    from .scan import inspect
    scanned = inspect(Path(root), list(rel_paths), desc="sizes")
    return scanned[["width", "height"]].min(axis=1).astype(int)


def warn_upscale(cfg, dataset, items: pd.DataFrame) -> None:
    """One `bench: warning:` line when the item transform blows most of `items` (a run's subsample of `dataset`)
    up far beyond what the batch needs; any entry point that resolved a run can call it."""
    if cfg.item_size <= cfg.img_size:  # nothing beyond the batch's own size: no need to look at the images
        return
    import warnings
    note = upscale_note(cfg.item_size, cfg.img_size, short_sides(dataset.root, items["path"]), dataset.name)
    if note:
        warnings.warn(note)
