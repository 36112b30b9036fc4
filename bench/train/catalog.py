"""What `bench list` shows, without building models each time: parameter counts and weight-file locations, cached.

Counting parameters builds every registry model (on the meta device) and finding each library's weight file imports
five model libraries: ~9 s on 2 quiet cores, 16 s under load. Both only change with a library version, the registry
source (archs.py, weights.py) or the variables that move the libraries' caches, so they are computed once and kept in
`cache_dir()/catalog.json` under a key made of exactly those. Whether a weight file is on disk is checked every time.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..config import cache_dir
from ..files import atomic_write
from .archs import ArchSpec, count_params_1k
from .libraries import LIBRARIES, versions
from .packaged import PACKAGES

# Environment that moves where libraries keep downloaded weights (torch hub, pytorchcv).
_CACHE_ENV = ("TORCH_HOME", "XDG_CACHE_HOME", "PYTORCHCV_ROOT", "HOME")


def catalog_path() -> Path:
    return cache_dir() / "catalog.json"


def cache_key() -> str:
    here = Path(__file__).parent  # the registry and the weight-file rules, read as text (no torch import)
    files = ("archs.py", "libraries.py", "weights.py", "packaged.py", "catalog.py")
    src = hashlib.sha256(b"".join((here / f).read_bytes() for f in files)).hexdigest()
    env = {k: os.environ.get(k, "") for k in _CACHE_ENV}
    return hashlib.sha256(json.dumps([versions(), env, src], sort_keys=True).encode()).hexdigest()[:16]


def _compute(spec: ArchSpec) -> dict:
    where = None
    if spec.weights_tag is not None and spec.source != "timm":  # timm's hub cache is looked up live below
        try:
            where = str(LIBRARIES[spec.source].cache(spec))
        except Exception:  # the library publishes no weights under this name
            where = None
    return {"params_1k": count_params_1k(spec), "weights_file": where, "hub_id": timm_hub_id(spec)}


def timm_hub_id(spec: ArchSpec) -> str | None:
    """The Hugging Face repository timm downloads a timm spec's weights from (None: none, or not a timm spec)."""
    if spec.source != "timm":
        return None
    import timm  # deferred: only a cold catalog asks (seconds to import)
    cfg = timm.models.get_pretrained_cfg(spec.timm_name or spec.name.split(":", 1)[-1])
    return cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else None


def _load(key: str) -> dict[str, dict]:
    try:
        data = json.loads(catalog_path().read_text())
        return data["entries"] if data.get("key") == key else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _save(key: str, entries: dict[str, dict]) -> None:
    try:
        atomic_write(catalog_path(), json.dumps({"key": key, "entries": entries}, indent=1).encode())
    except OSError:  # a read-only cache only costs speed
        pass


def hub_cached(hub_id: str | None) -> bool:
    """A timm model's weights are in the Hugging Face hub cache, looked for by path as huggingface_hub lays it out
    (`models--org--name/snapshots/<revision>/<file>`): asking timm would import it and torch, seconds."""
    if not hub_id:
        return False
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "huggingface")
    snapshots = Path(os.environ.get("HF_HUB_CACHE") or home / "hub").expanduser() / \
        f"models--{hub_id.replace('/', '--')}" / "snapshots"
    return any(snapshots.glob("*/model.safetensors")) or any(snapshots.glob("*/pytorch_model.bin"))


def weights_state(spec: ArchSpec, entry: dict) -> str:
    """`packaged` (an installed package ships them), `none published`, `cached` or `not cached` (the library's own
    cache file for this architecture). Looked up by path, importing neither torch nor a model library: a warm
    `bench list` reads the catalog and looks for files (docs/benchmarks.md, "bench list")."""
    package = PACKAGES.get(spec.timm_name or "")
    if package is not None and package.path() is not None:
        return "packaged"
    if spec.weights_tag is None:
        return "none published"
    if spec.source == "timm":
        return "cached" if hub_cached(entry.get("hub_id")) else "not cached"
    return "cached" if entry.get("weights_file") and Path(entry["weights_file"]).is_file() else "not cached"


def describe(specs: list[ArchSpec]) -> list[dict]:
    """One dict per spec: name, family, source, params_1k, pretrained (see weights_state)."""
    key = cache_key()
    entries = _load(key)
    missing = [s for s in specs if s.name not in entries]
    for spec in missing:
        entries[spec.name] = _compute(spec)
    if missing:
        _save(key, entries)
    return [dict(name=s.name, family=s.family, source=s.source, params_1k=entries[s.name]["params_1k"],
                 pretrained=weights_state(s, entries[s.name])) for s in specs]
