"""The typed run configuration, its named profiles and its validation.

Every entry point (CLI, make, sweep files, the Python API) builds a `RunConfig` through `make_config`, so they all get
the same defaults and the same error messages.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A user mistake in a configuration value: printed as one line, exit code 2."""


@dataclass(frozen=True)
class RunConfig:
    # --- what to train
    arch: str = "resnet18"
    dataset: str = "digits"          # a registered name, a folder, a CSV/parquet file or a fastai URLs name
    head: str = "custom"             # custom (the article's) | fastai (fastai's create_head)
    layer_groups: str = "default"    # default (library split) | custom (stem / rest of body / head)
    pretrained: str = "auto"         # auto (fall back to random init, with a warning) | true | false
    weights: str | None = None       # local state-dict file or a folder of them
    # --- data (the article's protocol)
    img_size: int = 224              # px, side of the training crop after aug_transforms
    item_size: int = 512             # px, RandomResizedCrop item transform before batching
    min_scale: float = 0.7           # RandomResizedCrop min_scale
    presize: bool = True             # decode + shrink each image once (shorter side item_size px) into a cache
    batch_size: int = 64             # images per batch
    pct_images: float = 0.25         # fraction of each class (first files in sorted order), 0 < p <= 1
    split_seed: int = 101            # StratifiedKFold random_state
    n_folds: int = 5                 # StratifiedKFold n_splits; fold `fold` is the validation set
    fold: int = 0
    # --- the two-phase protocol
    head_epochs: int = 10            # phase 1: body frozen (except BatchNorm)
    head_lr: float = 1e-2            # phase 1 fit_one_cycle lr_max
    ft_epochs: int = 10              # phase 2: unfrozen
    ft_lr_min: float = 1e-5          # phase 2 lr_max=slice(ft_lr_min, ft_lr_max)
    ft_lr_max: float = 1e-4
    # --- optimizer: fastai Adam; fit_one_cycle overrides mom with its own .95-.85-.95 schedule
    adam_mom: float = 0.9
    sqr_mom: float = 0.99
    eps: float = 1e-5
    wd: float = 0.01                 # decoupled (AdamW-style)
    top_k: int = 5
    # --- execution
    seed: int = 42
    num_workers: int | None = None   # DataLoader processes; auto (None): 0 on a CPU (fastest on 2 cores), fastai's
                                     # defaults.cpus on CUDA (bench/train/fastpath.py)
    precision: str = "fp32"          # fp32 | bf16 | fp16 (fp16/bf16 via fastai mixed precision)
    channels_last: str = "auto"      # auto (the memory format measured faster on this device class) | true | false
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    results_dir: str = "results"
    experiment: str = ""             # sweep name, recorded in the index
    on_bad_image: str = "skip"       # skip | fail

    def replace(self, **kw: Any) -> "RunConfig":
        return make_config(base=self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> str:
        """Hash of everything that changes what a run computes (not where it writes or how it is labelled)."""
        d = {k: v for k, v in self.to_dict().items() if k not in _NOT_IDENTITY}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


# Fields that do not change the numbers a run produces.
_NOT_IDENTITY = {"results_dir", "experiment", "num_workers", "on_bad_image", "device"}

CHOICES: dict[str, tuple[str, ...]] = {
    "head": ("custom", "fastai"),
    "layer_groups": ("default", "custom"),
    "pretrained": ("auto", "true", "false"),
    "precision": ("fp32", "bf16", "fp16"),
    "channels_last": ("auto", "true", "false"),
    "on_bad_image": ("skip", "fail"),
}

# (min, max, inclusive-min) per numeric field; None = unbounded.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "img_size": (32, 4096, True), "item_size": (32, 8192, True), "min_scale": (0, 1, False),
    "batch_size": (1, None, True), "pct_images": (0, 1, False), "n_folds": (2, None, True),
    "fold": (0, None, True), "head_epochs": (0, None, True), "ft_epochs": (0, None, True),
    "head_lr": (0, None, False), "ft_lr_min": (0, None, False), "ft_lr_max": (0, None, False),
    "adam_mom": (0, 1, True), "sqr_mom": (0, 1, True), "eps": (0, None, False), "wd": (0, None, True),
    "top_k": (1, None, True), "num_workers": (0, None, True),
    "seed": (0, 2**32 - 1, True), "split_seed": (0, 2**32 - 1, True),  # numpy's seed range
}

# Named profiles: `blog` is the article's protocol (the dataclass defaults); `quick` is sized so the embedded digits
# train on 2 CPU cores in minutes (resnet18 <= 3 min, seresnet50 <= 10 min).
PROFILES: dict[str, dict[str, Any]] = {
    "blog": {},
    "quick": dict(img_size=64, item_size=72, pct_images=1.0, head_epochs=2, ft_epochs=2,
                  ft_lr_min=1e-4, ft_lr_max=1e-3),
}

# Short CLI / make aliases: alias -> list of fields it sets.
ALIASES: dict[str, tuple[str, ...]] = {
    "epochs": ("head_epochs", "ft_epochs"), "size": ("img_size",), "bs": ("batch_size",),
    "pct": ("pct_images",), "lr": ("head_lr",),
}

FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}


def _coerce(name: str, value: Any) -> Any:
    typ = FIELD_TYPES[name]
    if value is None:
        if "None" in str(typ):
            return None
        raise ConfigError(f"{name}: a value is required")
    if typ == "int | None":  # an optional count: None is "auto"
        if isinstance(value, str) and value.strip().lower() in ("auto", "none"):
            return None
        typ = "int"
    try:
        if typ == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return low in ("true", "1", "yes")
            return bool(value)
        if typ == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, bool):
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value.strip())
        if typ == "float":
            if isinstance(value, bool):
                raise ValueError
            v = float(value)
            if v != v:  # NaN
                raise ValueError
            return v
        return str(value).lower() if isinstance(value, bool) else str(value)  # channels_last: True -> "true"
    except (TypeError, ValueError):
        kind = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(typ, typ)
        raise ConfigError(f"{name}: expected {kind}, got {value!r}") from None


def validate(cfg: RunConfig) -> RunConfig:
    for name, allowed in CHOICES.items():
        v = getattr(cfg, name)
        if v not in allowed:
            raise ConfigError(f"{name}: {v!r} is not one of {', '.join(allowed)}")
    for name, (lo, hi, incl) in RANGES.items():
        v = getattr(cfg, name)
        if v is None:  # auto
            continue
        if lo is not None and (v < lo if incl else v <= lo):
            raise ConfigError(f"{name}: {v} is out of range (must be {'>=' if incl else '>'} {lo:g})")
        if hi is not None and v > hi:
            raise ConfigError(f"{name}: {v} is out of range (must be <= {hi:.12g})")
    if cfg.head_epochs + cfg.ft_epochs == 0:
        raise ConfigError("epochs: head_epochs and ft_epochs are both 0; a run needs at least one epoch "
                          "(e.g. --epochs 1)")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device):
        raise ConfigError(f"device: {cfg.device!r} is not one of auto, cpu, cuda, cuda:N")
    if cfg.fold >= cfg.n_folds:
        raise ConfigError(f"fold: {cfg.fold} must be < n_folds ({cfg.n_folds})")
    if cfg.ft_lr_min > cfg.ft_lr_max:
        raise ConfigError(f"ft_lr_min ({cfg.ft_lr_min:g}) must be <= ft_lr_max ({cfg.ft_lr_max:g})")
    if cfg.item_size < cfg.img_size:
        raise ConfigError(f"item_size ({cfg.item_size}) must be >= img_size ({cfg.img_size}): the item crop "
                          "is cut down to img_size on the batch; raise ITEM_SIZE or lower SIZE")
    return cfg


def make_config(profile: str | None = None, base: RunConfig | None = None, **overrides: Any) -> RunConfig:
    """Profile defaults, then `overrides` (aliases allowed, None values ignored), coerced and validated."""
    if profile is not None and profile not in PROFILES:
        raise ConfigError(f"profile: {profile!r} is not one of {', '.join(PROFILES)}")
    values: dict[str, Any] = dict(PROFILES[profile]) if profile else {}
    # aliases first, so a specific field wins over the shortcut that also sets it (EPOCHS=5 HEAD_EPOCHS=2 -> 2+5)
    for key, value in sorted(overrides.items(), key=lambda kv: kv[0] not in ALIASES):
        if value is None and key != "weights":
            continue
        targets = ALIASES.get(key, (key,))
        for t in targets:
            if t not in FIELD_TYPES:
                from difflib import get_close_matches
                close = get_close_matches(t, list(FIELD_TYPES) + list(ALIASES), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(f"unknown setting {key!r}{hint}")
            values[t] = _coerce(t, value)
    # An explicit img_size without item_size keeps the article's item/crop ratio (512/224).
    if "img_size" in values and "item_size" not in values:
        values["item_size"] = max(values["img_size"], round(values["img_size"] * 512 / 224))
    cfg = dataclasses.replace(base, **values) if base else RunConfig(**values)
    return validate(cfg)


def cache_dir() -> Path:
    """Where materialised datasets, scan verdicts and resized images live (BENCH_CACHE overrides)."""
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")).expanduser()
