"""Experiment files (`experiments/*.yaml` or `.toml`): a dataset, a profile, protocol overrides, architectures with
per-architecture overrides, seeds and folds, expanded into one validated `RunConfig` per (arch, seed, fold).

    name: blog                     # optional, defaults to the file stem; recorded as `experiment` in the index
    dataset: digits                # replaced by `bench sweep --dataset`
    profile: blog                  # blog | quick
    protocol: {pct_images: 0.25}   # any RunConfig field or alias, for every run
    archs:
      - resnet50
      - seresnet152: {batch_size: 62}
    seeds: [0, 1, 2]               # or one number
    folds: 5                       # all 5 folds of a 5-fold split; or a list of folds of protocol.n_folds

Every mistake is one ConfigError that names the file and the key, raised before anything trains.
"""
from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from ..config import ALIASES, PROFILES, ConfigError, RunConfig, make_config

TOP_KEYS = ("name", "description", "dataset", "profile", "protocol", "archs", "seeds", "folds")
# Settings that the file sets through its own keys (or the CLI), so a protocol/arch override of them is a mistake.
RESERVED = {"arch": "archs", "seed": "seeds", "fold": "folds", "dataset": "dataset", "experiment": "name",
            "results_dir": "bench sweep --results-dir"}


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    configs: tuple[RunConfig, ...]   # one per (arch entry, seed, fold), in file order


def _read(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        import tomllib
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None


def _int_list(value: Any, key: str, path: Path) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise ConfigError(f"{path}: {key}: expected a whole number or a non-empty list of them, got {value!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{path}: {key}: {value!r} repeats a value")
    return values


def _overrides(value: Any, where: str, path: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where}: expected a mapping of settings, got {value!r}")
    for key in value:
        if key in RESERVED:
            raise ConfigError(f"{path}: {where}: {key!r} cannot be set here; use {RESERVED[key]!r}")
    return value


def _fields(settings: dict) -> dict:
    """Aliases spelt out (`bs` -> batch_size), so a later layer's `batch_size` replaces an earlier `bs`."""
    return {t: v for k, v in settings.items() for t in ALIASES.get(k, (k,))}


def _arch_entries(value: Any, path: Path) -> list[tuple[str, dict]]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: archs: expected a non-empty list of architecture names, got {value!r}")
    entries = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            entries.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item)), str):
            name, over = next(iter(item.items()))
            entries.append((name, _overrides(over, f"archs[{i}] ({name})", path)))
        else:
            raise ConfigError(f"{path}: archs[{i}]: expected a name or `name: {{setting: value}}`, got {item!r}")
    return entries


def load_experiment(path: str | Path, dataset: str | None = None, results_dir: str = "results",
                    overrides: dict | None = None) -> Experiment:
    """Parse and validate an experiment file; `dataset` and `overrides` (command-line settings, applied last)
    replace the file's values."""
    from ..train.archs import get_arch
    path = Path(path)
    doc = _read(path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    for key in doc:
        if key not in TOP_KEYS:
            close = get_close_matches(str(key), TOP_KEYS, n=1)
            raise ConfigError(f"{path}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                              + f"; allowed: {', '.join(TOP_KEYS)}")
    for key in ("name", "description", "dataset", "profile"):
        if key in doc and not isinstance(doc[key], str):
            raise ConfigError(f"{path}: {key}: expected text, got {doc[key]!r}")
    if "archs" not in doc:
        raise ConfigError(f"{path}: archs: missing (the list of architectures to run)")
    name = doc.get("name", path.stem)
    dataset = dataset or doc.get("dataset") or RunConfig.dataset
    profile = doc.get("profile", "blog")
    if profile not in PROFILES:
        raise ConfigError(f"{path}: profile: {profile!r} is not one of {', '.join(PROFILES)}")
    protocol = _overrides(doc.get("protocol"), "protocol", path)
    try:
        base = make_config(profile, **protocol)  # validates the shared overrides once, with a clear location
    except ConfigError as e:
        raise ConfigError(f"{path}: protocol: {e}") from None
    if overrides:
        try:
            make_config(profile, **{**protocol, **overrides})
        except ConfigError as e:
            raise ConfigError(f"--set: {e}") from None
    seeds = _int_list(doc["seeds"], "seeds", path) if "seeds" in doc else [base.seed]
    folds_doc = doc.get("folds")
    if folds_doc is None:
        folds, n_folds = [base.fold], {}
    elif isinstance(folds_doc, int) and not isinstance(folds_doc, bool):
        if folds_doc < 2:
            raise ConfigError(f"{path}: folds: {folds_doc} is not a k-fold split; give k >= 2 (every fold of a "
                              "k-fold split), a list of folds, or leave it out for fold 0 only")
        folds, n_folds = list(range(folds_doc)), {"n_folds": folds_doc}
    else:
        folds, n_folds = _int_list(folds_doc, "folds", path), {}

    configs = []
    for i, (arch, arch_over) in enumerate(_arch_entries(doc["archs"], path)):
        where = f"archs[{i}] ({arch})"
        try:
            get_arch(arch)
        except ConfigError as e:
            raise ConfigError(f"{path}: {where}: {e}") from None
        for seed in seeds:
            for fold in folds:
                settings = {**_fields(protocol), **n_folds, **_fields(arch_over), **_fields(overrides or {})}
                try:
                    configs.append(make_config(profile, **settings, arch=arch, dataset=dataset, seed=seed,
                                               fold=fold, experiment=name, results_dir=results_dir))
                except ConfigError as e:
                    raise ConfigError(f"{path}: {where}: {e}") from None
    return Experiment(name, path, tuple(configs))
