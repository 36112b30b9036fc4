"""The settings that fit a time budget: the batch size (`--size`), the item crop (`--item-size`) and the epochs a run
can have on this machine within `--budget`, from a measured cost (bench.train.estimate).

The order of what gives way: the batch size first (a CPU pays for every pixel, and the protocol's epochs and
learning rates stay the article's), down to SMALLEST px; then the epochs, both phases in proportion, down to 1+1;
then the share of images. A predicted setting is then measured (`bench check` does), since the cost of a batch is
only roughly proportional to its pixels.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..config import ConfigError

SIZES = (224, 192, 160, 128, 112, 96, 80, 64, 48, 32)
SMALLEST = 64  # below this most photos lose what tells their classes apart; digits-like data may go lower by hand
ITEM_RATIO = 1.5  # the item crop above the batch size, room for RandomResizedCrop to vary (the user's 64/96 in #25)


def parse_budget(text: str) -> float:
    """`10min`, `90s`, `1.5h`, `10` (minutes) -> seconds; anything else is one ConfigError line."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--budget: expected a duration such as 10min, 90s or 1h, got {text!r}")
    unit = (m.group(2) or "min")[0]
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[unit]


@dataclass
class Fit:
    img_size: int
    item_size: int
    head_epochs: int
    ft_epochs: int
    pct_images: float
    seconds: float  # predicted per run

    def flags(self) -> str:
        return (f"--size {self.img_size} --item-size {self.item_size} --head-epochs {self.head_epochs} "
                f"--ft-epochs {self.ft_epochs}" + (f" --pct {self.pct_images:g}" if self.pct_images else ""))

    def make_vars(self) -> str:
        return (f"SIZE={self.img_size} ITEM_SIZE={self.item_size} HEAD_EPOCHS={self.head_epochs} "
                f"FT_EPOCHS={self.ft_epochs}" + (f" PCT={self.pct_images:g}" if self.pct_images else ""))


def item_for(size: int, cfg_item: int, short_side: int | None) -> int:
    """The item crop for a batch of `size` px: ITEM_RATIO x size in steps of 16, no more than the images' own
    (median) shorter side or the configured item size, and never below the batch size."""
    want = int(math.ceil(ITEM_RATIO * size / 16) * 16)
    return max(size, min(want, cfg_item, short_side or want))


def fit_budget(cfg, cost, budget: float, short_side: int | None = None, min_pct: float = 0.01) -> Fit:
    """The largest batch size (then epochs, then share of images, not below `min_pct`) whose predicted run fits
    `budget` seconds, from `cost` (a RunCost measured at cfg's sizes; a batch's seconds taken as proportional to its
    pixels). `pct_images` in the result is 0 when the configured share is kept."""
    epochs = (cfg.head_epochs, cfg.ft_epochs)
    per_pixel = (cost.run(*epochs) - cost.setup) / cfg.img_size ** 2
    for size in [s for s in SIZES if SMALLEST <= s <= cfg.img_size] or [cfg.img_size]:
        seconds = cost.setup + per_pixel * size ** 2
        if seconds <= budget:
            return Fit(size, item_for(size, cfg.item_size, short_side), *epochs, 0, seconds)
    size = min(cfg.img_size, SMALLEST)
    per_epoch = per_pixel * size ** 2 / sum(epochs)
    room = max(0.0, budget - cost.setup)
    total = max(2, math.floor(room / per_epoch)) if per_epoch else sum(epochs)
    head = max(1, round(total * epochs[0] / sum(epochs))) if epochs[0] else 0
    ft = max(1 if epochs[1] else 0, total - head)
    seconds = cost.setup + per_epoch * (head + ft)
    pct = 0.0
    if seconds > budget:  # even 1+1 epochs do not fit: fewer images, the one knob left
        pct = round(min(cfg.pct_images, max(min_pct, cfg.pct_images * room / (seconds - cost.setup))), 2)
        seconds = cost.setup + (seconds - cost.setup) * pct / cfg.pct_images
    return Fit(size, item_for(size, cfg.item_size, short_side), head, ft, pct, seconds)
