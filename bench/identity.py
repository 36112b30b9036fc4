"""What makes two runs the same: one function for the run id, the planner's "done", the race's reuse and the report's
grouping (pure Python: the report and a dry-run plan use it without importing torch).

A run's identity is everything that changes its numbers and nothing else: the resolved config, minus the fields that
only say where it writes or how it is labelled, with every *requested* setting replaced by what it resolves to before
training (the dataset as typed -> its content fingerprint and split hash; pretrained/weights -> the weights really
loaded; channels_last=auto -> the memory format; device=auto -> the device class; the CPU thread count, which changes
the order of floating-point reductions) plus the versions of the libraries that compute the run. Three hashes of it:

- `run_id`: the whole identity, so one id is one set of numbers on one device class;
- `variant_id`: minus the instance (seed, fold): the runs a report averages;
- `protocol_id`: minus the instance and the architecture-only fields (the arch, its xResNet switches, its library's
  version, its specific checkpoint -> the *kind* of weights): models compared in one ranking differ in these alone.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

# Bump when bench itself changes what a run computes: rows of another version are never the same run.
IDENTITY_VERSION = 2

# Config fields that cannot change the numbers, and requests replaced by what they resolve to (identity's keywords).
NOT_NUMERIC = frozenset({"results_dir", "experiment", "num_workers", "on_bad_image", "track"})
REQUESTED = frozenset({"dataset", "pretrained", "weights", "channels_last", "device", "threads"})

INSTANCE = ("seed", "fold")
ARCHITECTURE = ("arch", "activation", "self_attention", "weights", "arch_library")

# The libraries whose versions change a run's numbers: torch and fastai for every run, plus the arch's own library.
CORE_LIBRARIES = ("torch", "fastai")


def _canonical(v: Any) -> Any:
    """One text per value: 1 and 1.0 and '1' differ in a config dict read back from JSON or CSV, not in a run."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        f = float(v)
        return int(f) if f.is_integer() else f
    return v


def weights_kind(weights: str) -> str:
    """random | imagenet | file: what a comparison group shares (each arch has its own checkpoint)."""
    if not weights or weights == "random":
        return "random"
    if weights.startswith(("sha256:", "file:")):
        return "file"
    return "imagenet"


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's part of the identity: every setting that changes the numbers as it was given."""
    return {k: _canonical(v) for k, v in config.items() if k not in NOT_NUMERIC | REQUESTED}


def identity(config: Mapping[str, Any], *, dataset_fingerprint: str, split_hash: str, weights: str,
             memory_format: str, device_class: str, threads: int | None, versions: Mapping[str, str],
             **extra: Any) -> dict[str, Any]:
    """The canonical identity of a resolved run. `threads` counts only on a CPU (a GPU run's maths does not run on
    the host threads); `versions` = {library: version} for CORE_LIBRARIES and the arch's library (`arch_library`
    holds the latter as 'name==version'); `extra`: further realised values that change the numbers."""
    ident = settings(config)
    ident.update(dataset_fingerprint=dataset_fingerprint, split_hash=split_hash, weights=weights,
                 memory_format=memory_format, device_class=device_class,
                 threads=int(threads) if threads and device_class.startswith("cpu") else None,
                 identity_version=IDENTITY_VERSION)
    ident.update(versions)
    ident.update({k: _canonical(v) for k, v in extra.items()})
    return {k: v for k, v in ident.items() if v is not None}


def _hash(d: Mapping[str, Any], n: int = 12) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:n]


def run_id(ident: Mapping[str, Any]) -> str:
    return _hash(ident)


def variant_fields(ident: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ident.items() if k not in INSTANCE}


def variant_id(ident: Mapping[str, Any]) -> str:
    return _hash(variant_fields(ident))


def protocol_fields(ident: Mapping[str, Any]) -> dict[str, Any]:
    d = {k: v for k, v in ident.items() if k not in INSTANCE and k not in ARCHITECTURE}
    d["weights_kind"] = weights_kind(str(ident.get("weights", "")))
    return d


def protocol_id(ident: Mapping[str, Any]) -> str:
    return _hash(protocol_fields(ident))


def ids(ident: Mapping[str, Any]) -> dict[str, str]:
    """The three ids and the identity itself as the index row's columns."""
    return {"run_id": run_id(ident), "variant_id": variant_id(ident), "protocol_id": protocol_id(ident),
            "identity_json": json.dumps(dict(ident), sort_keys=True, default=str)}


_WEIGHTS_WORDS = {"random": "random init", "imagenet": "ImageNet weights", "file": "weights from a file"}


def describe_protocol(ident: Mapping[str, Any], dataset: str = "") -> str:
    """A protocol in words, for a report section's heading: the settings people choose by, then every other setting
    that differs from the article's protocol (so two sections never read the same)."""
    from .config import RunConfig  # pure dataclass: the defaults are the article's protocol
    g = ident.get
    parts = [f"{g('img_size')} px" + (f" (items {g('item_size')} px)" if g('item_size') != g('img_size') else ""),
             f"{g('head_epochs')}+{g('ft_epochs')} epochs", _WEIGHTS_WORDS[weights_kind(str(g('weights', '')))],
             f"{float(g('pct_images', 1)) * 100:g} % of {dataset or 'the data'}", f"batch {g('batch_size')}"]
    shown = {"img_size", "item_size", "head_epochs", "ft_epochs", "weights", "pct_images", "batch_size"}
    defaults = {k: _canonical(v) for k, v in RunConfig().to_dict().items()}
    for k in sorted(protocol_fields(ident)):
        v = g(k)
        if k in shown or k in ("dataset_fingerprint", "split_hash", "identity_version", "weights_kind"):
            continue
        if k in defaults and defaults[k] == v:
            continue
        parts.append(f"{k}={v}")
    return ", ".join(parts)


def _cell(v: Any) -> str:
    """A CSV cell as text: '' for missing (None, or pandas' NaN)."""
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def row_identity(row: Mapping[str, Any]) -> dict[str, Any]:
    """A runs.csv row's identity: its `identity_json`, or for a row written before it existed, what the row recorded
    (marked identity_version 1, so such rows never pool with current ones)."""
    text = row.get("identity_json")
    if isinstance(text, str) and text:
        try:
            ident = json.loads(text)
            if isinstance(ident, dict):
                return ident
        except ValueError:
            pass
    try:
        cfg = json.loads(row.get("config_json") or "")
    except (TypeError, ValueError):
        cfg = None
    if not isinstance(cfg, dict):
        cfg = {}
    cell = {k: _cell(row.get(k)) for k in ("weights_used", "device", "threads", "dataset_fingerprint", "split_hash",
                                           "memory_format", *CORE_LIBRARIES)}
    ident = identity(cfg, dataset_fingerprint=cell["dataset_fingerprint"], split_hash=cell["split_hash"],
                     weights=cell["weights_used"].removesuffix(" (cache)"), memory_format=cell["memory_format"],
                     device_class=cell["device"], threads=int(float(cell["threads"])) if cell["threads"] else None,
                     versions={k: cell[k] for k in CORE_LIBRARIES})
    ident["identity_version"] = 1
    return ident
