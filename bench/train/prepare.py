"""The one way to resolve a run: config -> architecture check, scanned dataset, split file, subsample, run id.

`bench run`, the sweep plan and the sweep worker all call `Resolver.prepare`; every user error (arch, device, weights,
an unwritable results folder, dataset, split, subsample, a training set smaller than one batch) surfaces here, before
anything trains, and the run's identity (bench/identity.py) is fixed: the run id names what the numbers depend on,
whatever spelling of the dataset or the pretrained setting led there. A Resolver remembers datasets and splits, so
a sweep plan scans each dataset once however many runs use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..config import ConfigError, RunConfig
from ..identity import identity, run_id as run_id_of
from ..data.dataset import Dataset, load_dataset
from ..data.split import load_or_make_split, subsample
from ..files import check_writable
from .archs import arch_for
from .realise import realise
from .weights import resolve_weights


@dataclass
class Prepared:
    """Everything resolved before training: the data, the split and the run's identity."""
    cfg: RunConfig
    dataset: Dataset
    items: pd.DataFrame      # the subsample: path, label, fold, is_valid
    split_hash: str
    ident: dict              # the run's identity (bench.identity): what its numbers depend on
    run_id: str

    @property
    def threads(self) -> int:
        """The torch CPU threads the run will use (execution context: not in the identity)."""
        from .realise import thread_count
        return thread_count(self.cfg)


@dataclass
class Resolver:
    """Resolves configs into `Prepared` runs, loading each dataset and split file once. `write=False` (a dry run)
    writes nothing under results_dir: no scan report, and a split not saved yet is computed but not saved."""
    datasets: dict[tuple[str, str, str], Dataset] = field(default_factory=dict)
    splits: dict[tuple, tuple[pd.DataFrame, str]] = field(default_factory=dict)
    write: bool = True

    def prepare(self, cfg: RunConfig) -> Prepared:
        # Checked in this order so a rejected run writes nothing: not even the scan report under results_dir.
        spec = arch_for(cfg.arch, cfg.activation, cfg.self_attention)  # what builds it, and loads its weights
        if cfg.device not in ("auto", "cpu"):  # imported only when needed: a dry-run plan stays free of fastai
            from .learner import check_device
            check_device(cfg.device)
        weights = resolve_weights(spec, cfg.pretrained, cfg.weights)  # misfits and unavailable `true`: refused here
        if self.write:
            check_writable(cfg.results_dir)
        key = (cfg.dataset, cfg.results_dir, cfg.on_bad_image, cfg.test_set)
        if key not in self.datasets:
            self.datasets[key] = load_dataset(cfg.dataset, results_dir=cfg.results_dir if self.write else None,
                                              on_bad_image=cfg.on_bad_image, test_set=cfg.test_set)
        ds = self.datasets[key]
        skey = (*key, cfg.split_seed, cfg.n_folds, cfg.fold if ds.own_split else 0)
        if skey not in self.splits:
            self.splits[skey] = load_or_make_split(ds, cfg, write=self.write)
        split, split_hash = self.splits[skey]
        items = subsample(split, cfg.pct_images, cfg.fold)
        check_batches(cfg, ds.name, items)
        ident = identity(cfg.to_dict(), dataset_fingerprint=ds.fingerprint, split_hash=split_hash,
                         own_split=ds.own_split, **realise(cfg, spec, weights))
        return Prepared(cfg, ds, items, split_hash, ident, run_id_of(ident))


def check_batches(cfg: RunConfig, name: str, items: pd.DataFrame) -> None:
    """fastai drops the incomplete last training batch, so fewer training images than one batch train on nothing
    (NaN loss) - refused here rather than recorded as a run."""
    n_train = int((~items["is_valid"]).sum())
    if n_train < cfg.batch_size:
        raise ConfigError(f"batch_size: {name} has {n_train} training image(s) at pct_images {cfg.pct_images:g}, "
                          f"fewer than one batch of {cfg.batch_size}; fastai drops an incomplete batch, so nothing "
                          f"would train. Use --bs {n_train} or less (make: BS=...), or raise --pct")


def prepare(cfg: RunConfig) -> Prepared:
    """Resolve one config (see Resolver)."""
    return Resolver().prepare(cfg)
