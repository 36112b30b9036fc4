"""The one way to resolve a run: config -> architecture check, scanned dataset, split file, subsample, run id.

`bench run`, the sweep plan and the sweep worker all call `Resolver.prepare`; every user error (arch, dataset, split,
subsample) surfaces here, before anything trains. A Resolver remembers datasets and splits, so a sweep plan scans
each dataset once however many runs use it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pandas as pd

from ..config import RunConfig
from ..data.dataset import Dataset, load_dataset
from ..data.split import load_or_make_split, subsample
from .archs import get_arch


def run_id_for(cfg: RunConfig, fingerprint: str, split_hash: str) -> str:
    return hashlib.sha256(f"{cfg.identity()}|{fingerprint}|{split_hash}".encode()).hexdigest()[:12]


@dataclass
class Prepared:
    """Everything resolved before training: the data, the split and the run's identity."""
    cfg: RunConfig
    dataset: Dataset
    items: pd.DataFrame      # the subsample: path, label, fold, is_valid
    split_hash: str
    run_id: str


@dataclass
class Resolver:
    """Resolves configs into `Prepared` runs, loading each dataset and split file once."""
    datasets: dict[tuple[str, str, str], Dataset] = field(default_factory=dict)
    splits: dict[tuple, tuple[pd.DataFrame, str]] = field(default_factory=dict)

    def prepare(self, cfg: RunConfig) -> Prepared:
        get_arch(cfg.arch)
        key = (cfg.dataset, cfg.results_dir, cfg.on_bad_image)
        if key not in self.datasets:
            self.datasets[key] = load_dataset(cfg.dataset, results_dir=cfg.results_dir,
                                              on_bad_image=cfg.on_bad_image)
        ds = self.datasets[key]
        skey = (*key, cfg.split_seed, cfg.n_folds, cfg.fold if ds.own_split else 0)
        if skey not in self.splits:
            self.splits[skey] = load_or_make_split(ds, cfg)
        split, split_hash = self.splits[skey]
        items = subsample(split, cfg.pct_images, cfg.fold)
        return Prepared(cfg, ds, items, split_hash, run_id_for(cfg, ds.fingerprint, split_hash))


def prepare(cfg: RunConfig) -> Prepared:
    """Resolve one config (see Resolver)."""
    return Resolver().prepare(cfg)
