"""Experiment files (`experiments/*.yaml` or `.toml`): a dataset, a profile, protocol overrides, architectures with
per-architecture overrides, seeds and folds, expanded into one validated `RunConfig` per (arch, seed, fold).

    name: blog                     # optional, defaults to the file stem; recorded as `experiment` in the index
    dataset: digits                # replaced by `bench sweep --dataset`
    profile: blog                  # blog | quick; optional: the dataset's own profile and size as `bench run` uses
    protocol: {pct_images: 0.25}   # any RunConfig field or alias, for every run
    archs:
      - resnet50
      - seresnet152: {batch_size: 62}
    seeds: [0, 1, 2]               # or one number
    folds: 5                       # all 5 folds of a 5-fold split; or a list of folds of protocol.n_folds

Every mistake is one ConfigError that names the file and the key, raised before anything trains.
"""
from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from ..config import ALIASES, PROFILES, ConfigError, RunConfig, make_config
from ..train.archs import get_arch

TOP_KEYS = ("name", "description", "dataset", "profile", "protocol", "archs", "seeds", "folds")
# Settings that the file sets through its own keys (or the CLI), so a protocol/arch/--set override of them is a
# mistake: setting -> (where it goes in the file, where on the command line).
RESERVED = {"arch": ("the `archs:` list", "the file's `archs:` list (bench run --arch for one run)"),
            "seed": ("the `seeds:` key", "the file's `seeds:` key"),
            "fold": ("the `folds:` key", "the file's `folds:` key"),
            "dataset": ("the top-level `dataset:` key", "--dataset"),
            "profile": ("the top-level `profile:` key", "the file's `profile:` key"),
            "experiment": ("the `name:` key", "the file's `name:` key"),
            "results_dir": ("bench sweep --results-dir", "--results-dir")}


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    configs: tuple[RunConfig, ...]   # one per (arch entry, seed, fold), in file order: entry, then seed, then fold
    labels: tuple[str, ...] = ()     # one per arch entry, unique (a repeated arch is told apart by its overrides)
    instances: tuple[tuple[int, int], ...] = ()  # the (seed, fold) pairs, seeds outer, folds inner

    def cell(self, label: str, instance: tuple[int, int]) -> RunConfig:
        """The config of one arch entry on one (seed, fold) instance."""
        return self.configs[self.labels.index(label) * len(self.instances) + self.instances.index(instance)]


def _read(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    import yaml  # deferred: `bench --help` imports this module, and only a YAML file needs it
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None


def _int_list(value: Any, where: str) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise ConfigError(f"{where}: expected a whole number or a non-empty list of them, got {value!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}: {value!r} repeats a value")
    return values


def _overrides(value: Any, where: str, path: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where}: expected a mapping of settings, got {value!r}")
    for key in value:
        if key in RESERVED:
            raise ConfigError(f"{path}: {where}: {key!r} cannot be set here; use {RESERVED[key][0]}")
    return value


def check_cli_settings(overrides: dict) -> None:
    """`--set seed=3` and the like: settings an experiment gives through its own keys or flags."""
    for key in overrides:
        if key in RESERVED:
            raise ConfigError(f"--set {key}: not a per-run setting of a sweep; use {RESERVED[key][1]}")


def entry_labels(entries: list[tuple[str, dict]]) -> list[str]:
    """One label per arch entry: the arch, plus its overrides when the arch is listed more than once
    (`seresnet50 (layer_groups=custom)`); never a ';' (the race log's separator)."""
    counts = Counter(arch for arch, _ in entries)
    labels: list[str] = []
    for arch, over in entries:
        label = arch if counts[arch] == 1 or not over else \
            f"{arch} ({', '.join(f'{k}={v}' for k, v in over.items())})".replace(";", ",")
        labels.append(label if label not in labels else f"{label} #{len(labels) + 1}")
    return labels


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
                    overrides: dict | None = None, seeds: Any = None, folds: Any = None,
                    all_folds: bool = False) -> Experiment:
    """Parse and validate an experiment file; `dataset`, `seeds`, `folds` and `overrides` (command-line settings,
    applied last) replace the file's values. A named dataset brings its profile and size as in `bench run`.
    `all_folds`: without `folds:` in the file (or `folds`), every fold of the split instead of fold 0 (a race's
    instances)."""
    path = Path(path)
    doc = _document(path)
    overrides = _fields(overrides or {})
    check_cli_settings(overrides)
    name = doc.get("name", path.stem)
    dataset = dataset or doc.get("dataset") or RunConfig.dataset
    profile, protocol, base = _protocol(doc, path, dataset, overrides)
    if seeds is not None:
        seeds = _int_list(seeds, "--seeds")
    else:
        seeds = _int_list(doc["seeds"], f"{path}: seeds") if "seeds" in doc else [base.seed]
    if folds is None and doc.get("folds") is None and all_folds:
        folds = base.n_folds
    folds, n_folds = _folds(folds if folds is not None else doc.get("folds"),
                            "--folds" if folds is not None else f"{path}: folds", base)
    entries = _arch_entries(doc["archs"], path)
    configs = []
    for i, (arch, arch_over) in enumerate(entries):
        where = f"{path}: archs[{i}] ({arch})"
        try:
            get_arch(arch)
            settings = {**protocol, **n_folds, **_fields(arch_over), **overrides}
            configs += [make_config(profile, **settings, arch=arch, dataset=dataset, seed=seed, fold=fold,
                                    experiment=name, results_dir=results_dir) for seed in seeds for fold in folds]
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    return Experiment(name, path, tuple(configs), tuple(entry_labels(entries)),
                      tuple((s, f) for s in seeds for f in folds))


def _document(path: Path) -> dict:
    """The experiment file as a mapping of the known keys (one ConfigError line naming the file otherwise)."""
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
    return doc


def _protocol(doc: dict, path: Path, dataset: str, overrides: dict) -> tuple[str, dict, RunConfig]:
    """The profile, the settings every run shares (the named dataset's defaults, then the file's protocol) and the
    config they make; they and the command line's `overrides` on top of them are validated once, here."""
    from ..data.named import dataset_profile  # deferred: pandas; `bench --help` imports this module
    if doc.get("profile", "blog") not in PROFILES:
        raise ConfigError(f"{path}: profile: {doc['profile']!r} is not one of {', '.join(PROFILES)}")
    profile, dataset_defaults = dataset_profile(dataset, doc.get("profile"))
    protocol = {**dataset_defaults, **_fields(_overrides(doc.get("protocol"), "protocol", path))}
    try:
        base = make_config(profile, **protocol)  # validates the shared overrides once
    except ConfigError as e:
        raise ConfigError(f"{path}: protocol: {e}") from None
    if overrides:
        try:
            make_config(profile, **{**protocol, **overrides})
        except ConfigError as e:
            raise ConfigError(f"--set: {e}") from None
    return profile, protocol, base


def _folds(value: Any, where: str, base: RunConfig) -> tuple[list[int], dict]:
    """`folds: k` = every fold of a k-fold split; a list = those folds of protocol.n_folds; absent = fold 0 only."""
    if value is None:
        return [base.fold], {}
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 2:
            raise ConfigError(f"{where}: {value} is not a k-fold split; give k >= 2 (every fold of a k-fold split), "
                              "a list of folds, or leave it out for fold 0 only")
        return list(range(value)), {"n_folds": value}
    return _int_list(value, where), {}
