"""`bench check DATASET`: what a user should know before training on a dataset, from a scan and a few timed batches.

The dataset (classes and counts, imbalance, bad and missing files, duplicates, image sizes), the baseline every
model must beat (the majority class's share of the validation fold a run would use), and, for the settings a run
would use, the measured seconds per epoch and per run on this machine, with the sizes and epochs that fit a time
budget. It writes nothing outside the cache (the scan's verdicts and the pre-resized images a run reuses).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pandas as pd

from ..config import ConfigError
from .archs import arch_for
from .budget import Fit, fit_budget
from .estimate import duration, measure

FIRST = 5  # bad files and duplicates listed by name; the rest are counted
FITS = 3   # settings measured at most while looking for ones that fit the budget


@dataclass
class Check:
    name: str
    source: str
    root: str
    counts: pd.Series                     # images per class, largest first
    bad: pd.DataFrame                     # path, problem (missing files included)
    duplicates: pd.DataFrame              # path, duplicate_of, ...
    sizes: pd.DataFrame                   # width, height of every readable image
    valid_counts: pd.Series | None = None  # the validation fold's images per class
    split_error: str = ""                 # why no split could be made (the run would stop there too)
    lines: list[str] = field(default_factory=list)  # the timing and budget part, as printed

    @property
    def imbalance(self) -> float:
        return float(self.counts.iloc[0] / self.counts.iloc[-1])

    @property
    def majority(self) -> tuple[str, float] | None:
        """The largest class of the validation fold and its share: the accuracy of always predicting it."""
        if self.valid_counts is None or self.valid_counts.empty:
            return None
        return str(self.valid_counts.index[0]), float(self.valid_counts.iloc[0] / self.valid_counts.sum())


def facts(cfg) -> tuple[Check, object]:
    """The dataset part of the check, and the dataset itself; writes nothing (no results folder)."""
    from ..data.dataset import load_dataset
    from ..data.scan import inspect
    ds = load_dataset(cfg.dataset, results_dir=None, on_bad_image="skip", test_set=cfg.test_set,
                      quiet=True)  # every bad file reported, none refused
    scanned = inspect(ds.root, ds.items["path"].tolist(), desc="sizes")
    counts = ds.items["label"].value_counts().sort_values(ascending=False, kind="stable")
    return Check(ds.name, ds.source, str(ds.root), counts, ds.bad, ds.duplicates,
                 scanned[["width", "height"]].astype(int)), ds


def resolve(ds, cfg):
    """The run's own resolution of `cfg` (bench.train.prepare.Resolver, writing nothing) on the scanned `ds`."""
    from .prepare import Resolver
    resolver = Resolver(write=False)
    # scanned already (the Resolver's key; were it to change, the Resolver would only scan again, from the cache)
    resolver.datasets[(cfg.dataset, cfg.results_dir, cfg.on_bad_image, cfg.test_set)] = ds
    return resolver.prepare(cfg)


def split_facts(check: Check, ds, cfg):
    """The validation fold's class counts on `check`, and the Prepared run; None when the dataset cannot be split
    (the reason kept in check.split_error: a run would stop there too)."""
    try:
        prepared = resolve(ds, cfg)
    except ConfigError as e:
        check.split_error = str(e)
        return None
    valid = prepared.items.loc[prepared.items["is_valid"], "label"]
    check.valid_counts = valid.value_counts().sort_values(ascending=False, kind="stable")
    return prepared


def timing(check: Check, prepared, budget: float) -> None:
    """Measured seconds per epoch and per run at the run's settings, and the settings that fit `budget` seconds
    (measured too when they differ); appended to check.lines."""
    cfg, root = prepared.cfg, prepared.dataset.root
    stats = arch_for(cfg.arch, cfg.activation, cfg.self_attention).input_stats()
    cost = measure(cfg, root, prepared.items, stats)
    run = cost.run(cfg.head_epochs, cfg.ft_epochs)
    say = check.lines.append
    say(f"time on this machine (load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; a busy machine makes every "
        f"figure larger): {cfg.arch}, {cfg.img_size} px batches of {cfg.batch_size} from {cfg.item_size} px item "
        f"crops, {cfg.head_epochs}+{cfg.ft_epochs} epochs of {cost.train_batches} training + {cost.valid_batches} "
        f"validation batches")
    say(f"  a batch: {cost.frozen:.2f} s frozen, {cost.unfrozen:.2f} s unfrozen, {cost.valid:.2f} s validation")
    say(f"  an epoch: {cost.epoch(1):.1f} s frozen, {cost.epoch(2):.1f} s unfrozen; a run: about {duration(run)}")
    if run <= budget:
        say(f"  fits --budget {duration(budget)} as it is")
        return
    say(fit_lines(check, prepared, cost, budget, stats))


def fit_lines(check: Check, prepared, cost, budget: float, stats) -> str:
    """The settings that fit `budget`, found from the measured `cost` and measured in turn (FITS times at most: a
    batch's cost is only roughly proportional to its pixels), as the lines `timing` prints."""
    cfg, root = prepared.cfg, prepared.dataset.root
    short = int(check.sizes.min(axis=1).median()) if len(check.sizes) else None
    # a share of images that keeps two of the smallest class and more than a batch of training images
    n_train = (~prepared.items["is_valid"]).sum() / cfg.pct_images  # at a share of 1
    min_pct = min(1.0, math.ceil(100 * max(2 / check.counts.min(), 1.25 * cfg.batch_size / max(n_train, 1))) / 100)
    tried = cfg
    for _ in range(FITS):
        fit = fit_budget(tried, cost, budget, short, min_pct)
        tried = tried.replace(img_size=fit.img_size, item_size=fit.item_size, head_epochs=fit.head_epochs,
                              ft_epochs=fit.ft_epochs, pct_images=fit.pct_images or tried.pct_images)
        items = resolve(prepared.dataset, tried).items if tried.pct_images != cfg.pct_images else prepared.items
        cost = measure(tried, root, items, stats)
        seconds = cost.run(tried.head_epochs, tried.ft_epochs)
        if seconds <= budget:
            break
    fit = Fit(tried.img_size, tried.item_size, tried.head_epochs, tried.ft_epochs,
              tried.pct_images if tried.pct_images != cfg.pct_images else 0, seconds)
    verdict = "fits" if seconds <= budget else "still over it: lower SIZE or the epochs by hand"
    return (f"  --budget {duration(budget)}: {fit.make_vars()} measured about {duration(seconds)} a run ({verdict})\n"
            f"    make bench DATASET={cfg.dataset} {fit.make_vars()}\n"
            f"    bench run --dataset {cfg.dataset} {fit.flags()}")


def summary(check: Check) -> list[str]:
    """The dataset part as lines: classes and counts, imbalance, the baseline, bad files, duplicates, sizes."""
    n = int(check.counts.sum())
    out = [f"dataset {check.name} ({check.source} {check.root}): {n:,} readable images, {len(check.counts)} classes"]
    width = max(len(str(c)) for c in check.counts.index)
    out += [f"  {str(c):<{width}}  {k:>7,}  {k / n:6.1%}" for c, k in check.counts.items()]
    if len(check.counts) > 1:
        ratio = check.imbalance
        note = ("balanced enough" if ratio < 1.5 else
                "unbalanced: accuracy alone flatters a model that favours the large classes")
        out.append(f"imbalance: largest / smallest class = {ratio:.1f}x ({note})")
    if check.majority:
        label, share = check.majority
        out.append(f"baseline: the validation fold has {int(check.valid_counts.sum()):,} images, {share:.1%} of them "
                   f"{label!r}: always predicting it scores {share:.1%}; a model must beat that")
    if check.split_error:
        out.append(f"split: {check.split_error}")
    out += listed("bad or missing file(s), left out of training", check.bad, "problem")
    out += listed("exact duplicate file(s), kept on one side of the split", check.duplicates, "duplicate_of",
                  "same bytes as ")
    out += sizes_lines(check.sizes)
    return out


def listed(what: str, df: pd.DataFrame, col: str, prefix: str = "") -> list[str]:
    if df is None or df.empty:
        return [f"{what.split(',')[0]}: none"]
    more = f" ({len(df) - FIRST} more)" if len(df) > FIRST else ""
    return [f"{len(df)} {what}:"] + [f"  {r['path']}: {prefix}{r[col]}" for _, r in df.head(FIRST).iterrows()] + \
        ([f"  ...{more}"] if more else [])


def sizes_lines(sizes: pd.DataFrame) -> list[str]:
    """The most common sizes and the spread of the shorter side (what the item crop works from)."""
    if sizes.empty:
        return []
    common = (sizes["width"].astype(str) + "x" + sizes["height"].astype(str)).value_counts()
    top = ", ".join(f"{s} ({k:,})" for s, k in common.head(3).items())
    short = sizes.min(axis=1)
    return [f"image sizes: {len(common)} distinct; most common {top}" + (" ..." if len(common) > 3 else ""),
            f"  shorter side: min {short.min()}, median {int(short.median())}, max {short.max()} px"]
