"""Named datasets: `experiments/datasets.yaml` maps a name to a source, an image size and a profile, so adding a
dataset needs no code change."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ..config import PROFILES, ConfigError
from .digits import EMBEDDED
from .sources import TABLE_EXTS

def datasets_file() -> Path:
    """BENCH_DATASETS, else ./experiments/datasets.yaml, else the one shipped beside the package."""
    if os.environ.get("BENCH_DATASETS"):
        return Path(os.environ["BENCH_DATASETS"]).expanduser()
    local = Path("experiments") / "datasets.yaml"
    return local if local.is_file() else Path(__file__).resolve().parents[2] / "experiments" / "datasets.yaml"


def named_datasets(path: Path | None = None) -> dict[str, dict]:
    """name -> {source, size, profile}; relative sources are relative to the file, so it works from any folder."""
    path = Path(path or datasets_file())
    return _read_named(path.resolve(), path.stat().st_mtime_ns if path.is_file() else 0)


@lru_cache(maxsize=8)
def _read_named(path: Path, _mtime: int) -> dict[str, dict]:
    if not path.is_file():
        return {}
    import yaml
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"datasets file {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"datasets file {path}: expected `name: {{source: ..., size: ..., profile: ...}}` entries")
    out = {}
    for name, entry in raw.items():
        where = f"datasets file {path}, entry {name!r}"
        if not isinstance(entry, dict) or "source" not in entry:
            raise ConfigError(f"{where}: needs a `source:` (folder, CSV/parquet file, fastai URLs name or "
                              f"{', '.join(EMBEDDED)})")
        unknown = set(entry) - {"source", "size", "profile", "description", "article"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: source, size, "
                              f"profile, description, article)")
        if "article" in entry and not isinstance(entry["article"], bool):
            raise ConfigError(f"{where}: article must be true or false, got {entry['article']!r}")
        if "profile" in entry and entry["profile"] not in PROFILES:
            raise ConfigError(f"{where}: profile {entry['profile']!r} is not one of {', '.join(PROFILES)}")
        if "size" in entry and not (isinstance(entry["size"], int) and entry["size"] >= 32):
            raise ConfigError(f"{where}: size must be a whole number of pixels >= 32, got {entry['size']!r}")
        src = str(entry["source"])
        beside = path.parent / Path(src).expanduser()  # absolute sources stay as they are
        looks_like_path = "/" in src or src.startswith((".", "~")) or Path(src).suffix.lower() in TABLE_EXTS
        if looks_like_path or (src not in EMBEDDED and beside.exists()):  # a bare `shapes` folder next to the file
            src = str(beside.resolve())
        out[str(name)] = {**entry, "source": src}
    return out


def named_defaults(spec: str) -> dict:
    """Config defaults a dataset brings ({'profile': ..., 'img_size': ...}), for the CLI to apply under the user's
    own flags; embedded data defaults to the quick profile."""
    entry = named_datasets().get(spec, {})
    out = {"profile": entry.get("profile", "quick" if spec in EMBEDDED else None)}
    if "size" in entry:
        out["img_size"] = entry["size"]
    return {k: v for k, v in out.items() if v is not None}


def dataset_profile(spec: str, profile: str | None = None) -> tuple[str, dict]:
    """(profile, settings) that a run on dataset `spec` starts from, below the user's own settings: the profile asked
    for, else the dataset's (embedded data: quick), else blog; plus the dataset's image size. `bench run` and
    experiment files both resolve a dataset through this, so a sweep trains what `bench run` would."""
    defaults = named_defaults(spec)
    chosen = defaults.pop("profile", "blog")
    return profile or chosen, defaults
