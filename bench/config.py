"""The typed run configuration, its named profiles and its validation.

Every entry point (CLI, make, sweep files, the Python API) builds a `RunConfig` through `make_config`, so they all get
the same defaults and the same error messages.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A user mistake in a configuration value: printed as one line, exit code 2."""


def _setting(group: str):
    """A RunConfig field with its `bench run --help` text: what it is, its unit; the CLI adds choices, range and
    defaults from the tables below. `group` is the help section (the dataclass's sections)."""
    def make(default: Any, help: str, unit: str | None = None) -> Any:
        return field(default=default, metadata={"group": group, "help": help, **({"unit": unit} if unit else {})})
    return make


_what, _data, _protocol, _optim, _execution = map(_setting, ("what to train", "data", "protocol", "optimizer",
                                                             "execution"))


@dataclass(frozen=True)
class RunConfig:
    # --- what to train
    arch: str = _what("resnet18", "architecture: a registry name (`bench list`) or timm:<any timm model>")
    dataset: str = _what("digits", "the images: a name from experiments/datasets.yaml, a folder of class folders, a "
                         "path,label[,is_valid] CSV/TSV/parquet table, a fastai URLs name, or digits (embedded)")
    test_set: str | None = _what(None, "held-out test images, scored by each run's final model and never used in a "
                                 "decision: a folder of class folders or a path,label table; the dataset's own "
                                 "test/ folder here makes it the test set (and the validation set a fold of train/)")
    head: str = _what("fastai", "classifier head on the body's features: fastai = fastai's create_head (its "
                      "BatchNorms start with bias 1e-3; the article's main runs), manual = the same layers built by "
                      "hand with plain nn.BatchNorm1d (bias 0; the article's manual-head runs)")
    layer_groups: str = _what("default", "parameter groups for phase 2's discriminative learning rates: default = "
                              "fastai's split (ResNets/xResNets: fastai's own; others: body / head), custom = the "
                              "author's stem + first two stages / rest of the body / head (`bench show ARCH`)")
    pretrained: str = _what("auto", "ImageNet weights from the library (online or its cache): auto falls back to "
                            "random init with a warning, true fails instead, false trains from random init")
    weights: str | None = _what(None, "a local state-dict file (.pth/.pt/.safetensors) of the library's full model, "
                                "or a folder holding <arch>.pth or the library's own file name")
    activation: str = _what("relu", "activation of an xresnet body (fastai's act_cls): relu, or mish (fastai's Mish, "
                            "the article's SOTA xResNet); xresnet family only")
    self_attention: bool = _what(False, "fastai's SimpleSelfAttention in an xresnet body (sa=True, the article's "
                                 "SOTA xResNet); xresnet family only")
    # --- data (the article's protocol)
    img_size: int = _data(224, "side of the training crop after aug_transforms (batch transform)", "px")
    item_size: int = _data(512, "RandomResizedCrop item transform before batching; the article's 512 whatever "
                           "img_size is; an explicit img_size above it raises it to img_size", "px")
    min_scale: float = _data(0.7, "RandomResizedCrop min_scale: smallest share of the image area an item crop keeps")
    presize: bool = _data(True, "decode and shrink each image once (shorter side item_size px) into a cache that "
                          "every architecture reuses")
    batch_size: int = _data(64, "images per training batch (fastai drops the last partial one)", "images")
    pct_images: float = _data(0.25, "share of each class used, int(pct * n) first files in sorted order (the "
                              "article's subsample)")
    split_seed: int = _data(101, "StratifiedKFold random_state of the train/valid split (saved once per dataset)")
    n_folds: int = _data(5, "StratifiedKFold n_splits; fold `fold` is the validation set")
    fold: int = _data(0, "which fold of the split is the validation set (0-based)")
    # --- the two-phase protocol
    head_epochs: int = _protocol(10, "phase 1: body frozen (BatchNorm still training), fit_one_cycle epochs", "epochs")
    head_lr: float = _protocol(1e-2, "phase 1: fit_one_cycle lr_max, the same for every group")
    ft_epochs: int = _protocol(10, "phase 2: whole model unfrozen, fit_one_cycle epochs", "epochs")
    ft_lr_min: float = _protocol(1e-5, "phase 2: lr_max=slice(ft_lr_min, ft_lr_max), the first parameter group's lr "
                                 "(fastai spreads the slice geometrically over the groups)")
    ft_lr_max: float = _protocol(1e-4, "phase 2: the last parameter group's (the head's) lr_max")
    loss: str = _protocol("cross_entropy", "loss: cross_entropy = fastai's default for labels (CrossEntropyLossFlat), "
                          "label_smoothing = fastai's LabelSmoothingCrossEntropy (eps 0.1; the article's SOTA xResNet)")
    top_k: int = _protocol(5, "k of the top-k accuracy metric (capped at n_classes - 1)")
    # --- optimizer: fastai Adam; fit_one_cycle overrides mom with its own .95-.85-.95 schedule
    adam_mom: float = _optim(0.9, "fastai Adam's mom (beta1); fit_one_cycle replaces it by its .95-.85-.95 schedule")
    sqr_mom: float = _optim(0.99, "fastai Adam's sqr_mom (beta2)")
    eps: float = _optim(1e-5, "fastai Adam's eps, added to the denominator for stability")
    wd: float = _optim(0.01, "weight decay, decoupled (AdamW-style; fastai's decouple_wd=True)")
    # --- execution
    seed: int = _execution(101, "seeds python, numpy and torch before data and model are built (the article's 101)")
    num_workers: int | None = _execution(None, "DataLoader worker processes; auto = 0 on a CPU (fastest on 2 cores), "
                                         "fastai's defaults.cpus on CUDA")
    threads: int | None = _execution(None, "torch CPU threads of the run; auto = one per core for bench run, the "
                                      "sweep's thread policy in sweeps and races. The thread count changes CPU results "
                                      "(reduction order), so it is part of a CPU run's identity")
    precision: str = _execution("fp32", "training precision; bf16/fp16 through fastai's mixed precision")
    channels_last: str = _execution("auto", "channels_last memory format; auto = the format measured faster on this "
                                    "device class")
    device: str = _execution("auto", "where to train: auto (CUDA if present), cpu, cuda or cuda:N")
    results_dir: str = _execution("results", "folder of runs.csv, per-epoch logs, splits and reports")
    experiment: str = _execution("", "sweep name recorded in the index (set by bench sweep)")
    on_bad_image: str = _execution("auto", "bad files: auto = skip unreadable images (listed in bad_images.csv) "
                                   "but refuse files a table names that do not exist; skip = skip both; fail = "
                                   "refuse both")
    track: str = _execution("none", "also log the run to MLflow (MLFLOW_TRACKING_URI, else a local store in "
                            "results_dir); the CSVs stay the record")

    def replace(self, **kw: Any) -> "RunConfig":
        return make_config(base=self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES: dict[str, tuple[str, ...]] = {
    "head": ("fastai", "manual"),
    "layer_groups": ("default", "custom"),
    "pretrained": ("auto", "true", "false"),
    "precision": ("fp32", "bf16", "fp16"),
    "channels_last": ("auto", "true", "false"),
    "on_bad_image": ("auto", "skip", "fail"),
    "activation": ("relu", "mish"),
    "loss": ("cross_entropy", "label_smoothing"),
    "track": ("none", "mlflow"),
}

# (min, max, inclusive-min) per numeric field; None = unbounded.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "img_size": (32, 4096, True), "item_size": (32, 8192, True), "min_scale": (0, 1, False),
    "batch_size": (1, None, True), "pct_images": (0, 1, False), "n_folds": (2, None, True),
    "fold": (0, None, True), "head_epochs": (0, None, True), "ft_epochs": (0, None, True),
    "head_lr": (0, None, False), "ft_lr_min": (0, None, False), "ft_lr_max": (0, None, False),
    "adam_mom": (0, 1, True), "sqr_mom": (0, 1, True), "eps": (0, None, False), "wd": (0, None, True),
    "top_k": (1, None, True), "num_workers": (0, None, True), "threads": (1, None, True),
    "seed": (0, 2**32 - 1, True), "split_seed": (0, 2**32 - 1, True),  # numpy's seed range
}

# Named profiles: `blog` is the article's protocol (the dataclass defaults); `quick` trains the embedded digits from
# random init on 2 CPU cores, sized by measurement (docs/benchmarks.md, "The quick benchmark"): the digits are 8x8
# originals, so 32 px loses nothing; batch 32 doubles the optimizer steps; one peak fine-tuning lr for every group (still one-cycle), because a random
# body has nothing for discriminative lrs to protect (slice(1e-4, 1e-3) left resnet18 at 84 %, 3e-3 gave 93 %).
PROFILES: dict[str, dict[str, Any]] = {
    "blog": {},
    "quick": dict(img_size=32, item_size=32, batch_size=32, pct_images=1.0, head_epochs=1, ft_epochs=4,
                  ft_lr_min=3e-3, ft_lr_max=3e-3),
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


# Old values that now mean something else: a clear error instead of a silently different experiment.
RENAMED = {("head", "custom"): "head: 'custom' is now called 'manual' (the hand-built head with plain BatchNorm1d); "
                               "the default 'fastai' is fastai's create_head, as in the article's main runs"}

# activation / self_attention are arguments of fastai's xresnet constructor: other families have no such switch.
XRESNET = re.compile(r"xresnet\d+(_sa)?")


def validate(cfg: RunConfig) -> RunConfig:
    for (name, old), message in RENAMED.items():
        if getattr(cfg, name) == old:
            raise ConfigError(message)
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
    if (cfg.activation != "relu" or cfg.self_attention) and not XRESNET.fullmatch(cfg.arch):
        what = f"activation={cfg.activation}" if cfg.activation != "relu" else "self_attention=true"
        raise ConfigError(f"{what}: only the xresnet family (fastai's xresnet act_cls/sa) has this switch, not "
                          f"{cfg.arch}; use an xresnet arch or leave activation=relu, self_attention=false")
    if cfg.item_size < cfg.img_size:
        raise ConfigError(f"item_size ({cfg.item_size}) must be >= img_size ({cfg.img_size}): the item crop "
                          "is cut down to img_size on the batch; raise ITEM_SIZE or lower SIZE")
    return cfg


def make_config(profile: str | None = None, base: RunConfig | None = None, **overrides: Any) -> RunConfig:
    """Profile defaults, then `overrides` (aliases allowed, None values ignored), coerced and validated."""
    if profile is not None and profile not in PROFILES:
        raise ConfigError(f"profile: {profile!r} is not one of {', '.join(PROFILES)}")
    values: dict[str, Any] = dict(PROFILES[profile]) if profile else {}
    given: set[str] = set()  # fields set by `overrides` (not by the profile)
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
            given.add(t)
    # The item crop stays the article's 512 (or the profile's) whatever img_size is, as in its 448-px run; an
    # explicit img_size above it raises it, so `--size` never trips over the profile's item size.
    if "img_size" in given and "item_size" not in given:
        item = values.get("item_size", base.item_size if base else RunConfig.item_size)
        values["item_size"] = max(item, values["img_size"])
    cfg = dataclasses.replace(base, **values) if base else RunConfig(**values)
    return validate(cfg)


def cache_dir() -> Path:
    """Where materialised datasets, scan verdicts and resized images live (BENCH_CACHE overrides)."""
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")).expanduser()
