"""What makes two runs the same: one function for the run id, the planner's "done", the race's reuse and the report's
grouping (pure Python: the report and a dry-run plan use it without importing torch).

A run's identity is the experiment instance: what the run is asked to compute and on what. The resolved config minus
the fields that only say where it writes, how it is labelled or how it is executed, with every *requested* setting
replaced by what it resolves to before training (the dataset as typed -> its content fingerprint and split hash;
pretrained/weights -> the weights really loaded; precision -> the precision the hardware computes in), plus the
versions of the libraries that define the model and the training loop.

Nothing about the machine is in it. Two CPUs dispatch different kernels, a thread count sums in another order, a
memory format picks other convolution kernels, DataLoader workers draw augmentations from other random streams: each
moves a run's accuracy about as much as another seed does (docs/benchmarks.md, "Context"). That is noise for the
statistics to count, not another experiment, so it is the run's *execution context*, recorded beside the row
(`context`) and not hashed: the same instance in the same context replays bit for bit; a results folder continued on
another machine, or a Ray cluster of mixed nodes, reuses every finished instance. Three hashes of the identity:

- `run_id`: the whole identity, the experiment instance;
- `variant_id`: minus the instance (seed, fold): the runs a report averages;
- `protocol_id`: minus the instance and the architecture-only fields (the arch, its xResNet switches, its library's
  version, its specific checkpoint -> the *kind* of weights): models compared in one ranking differ in these alone.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

# Bump when bench itself changes what a run computes: rows of another version are never the same run (except version
# 2, whose identity held the machine: `upgrade` drops those fields, so its rows pool with version 3's).
IDENTITY_VERSION = 3

# Config fields that do not define the experiment: where it writes, how it is labelled, how it is executed (the
# execution context: recorded in the row, not hashed), and top_k, which changes only the top-k metric's k.
NOT_NUMERIC = frozenset({"results_dir", "experiment", "num_workers", "on_bad_image", "track", "threads", "device",
                         "channels_last", "top_k"})
# Requests replaced by what they resolve to (identity's keywords).
# (test_set: which files are test images is part of the dataset fingerprint, however the path was typed)
REQUESTED = frozenset({"dataset", "pretrained", "weights", "precision", "test_set"})
# What a split the dataset fixes itself (train/ + valid/ folders, an is_valid column) does not depend on.
SPLIT_SETTINGS = ("split_seed", "n_folds")
# Version 2's machine fields, dropped by `upgrade`.
MACHINE_V2 = ("device_class", "threads", "memory_format", "channels_last", "device", "top_k")

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


def identity(config: Mapping[str, Any], *, dataset_fingerprint: str, split_hash: str, weights: str, precision: str,
             versions: Mapping[str, str], own_split: bool = False, **extra: Any) -> dict[str, Any]:
    """The canonical identity of a resolved run. `precision`: what the hardware computes in (bench.train.realise);
    `versions` = {library: version} for CORE_LIBRARIES and the arch's library (`arch_library` holds the latter as
    'name==version'); `own_split`: the dataset fixes its split, so split_seed and n_folds change nothing; `extra`:
    further realised values that change the numbers."""
    ident = settings(config)
    if own_split:
        for k in SPLIT_SETTINGS:
            ident.pop(k, None)
    ident.update(dataset_fingerprint=dataset_fingerprint, split_hash=split_hash, weights=weights,
                 precision=precision, identity_version=IDENTITY_VERSION)
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


# The words people choose variants by come first in a label; the data fields are never a variant's difference (runs
# compared together were scored on the same images).
LABEL_FIRST = ("img_size", "item_size", "head_epochs", "ft_epochs", "weights_kind")
NOT_LABELLED = ("dataset_fingerprint", "split_hash", "identity_version")
_KIND_WORDS = {"random": "random init", "imagenet": "ImageNet", "file": "weights file"}


def setting_words(field: str, value: Any) -> str:
    """One setting of a label in words: `32 px`, `ImageNet`, otherwise `field=value`."""
    if field == "weights_kind":
        return _KIND_WORDS.get(str(value), str(value))
    if field == "img_size":
        return f"{value} px"
    if field == "item_size":
        return f"items {value} px"
    return f"{field}={'?' if value in (None, '') else value}"


def variant_labels(variants: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """key -> label for variants compared together (one identity each): the arch plus, in words, every protocol
    field in which they differ (the kind of weights, not each arch's own checkpoint) and every arch-only field in
    which one arch's variants differ. The report and the race label candidates with it, so their verdicts read
    alike."""
    protos = {k: protocol_fields(v) for k, v in variants.items()}
    fields = sorted({f for p in protos.values() for f in p} - set(NOT_LABELLED),
                    key=lambda f: (LABEL_FIRST.index(f) if f in LABEL_FIRST else len(LABEL_FIRST), f))
    varying = [f for f in fields if len({str(p.get(f, "")) for p in protos.values()}) > 1]
    archs: dict[str, list[str]] = {}
    for k, v in variants.items():
        archs.setdefault(str(v.get("arch", "")), []).append(k)
    own = [f for f in ARCHITECTURE if f != "arch"
           and any(len({str(variants[k].get(f, "")) for k in ks}) > 1 for ks in archs.values())]
    labels = {}
    for k, v in variants.items():
        words = [setting_words(f, protos[k].get(f, "")) for f in varying]
        words += [setting_words(f, v.get(f, "")) for f in own]
        labels[k] = f"{v.get('arch', '?')} ({', '.join(words)})" if words else str(v.get("arch", "?"))
    return labels


def _cell(v: Any) -> str:
    """A CSV cell as text: '' for missing (None, or pandas' NaN)."""
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def upgrade(ident: Mapping[str, Any]) -> dict[str, Any]:
    """A version-2 identity as version 3: the same experiment with the machine fields left out. Version 2 hashed the
    device class, thread count and memory format (and top_k) beside exactly the fields version 3 keeps, so dropping
    them names the same instance; its rows then pool with new ones and a continued sweep does not retrain them.
    Other versions are returned as they are (version 1 never pools)."""
    if ident.get("identity_version") != 2:
        return dict(ident)
    return {**{k: v for k, v in ident.items() if k not in MACHINE_V2}, "identity_version": IDENTITY_VERSION}


def row_identity(row: Mapping[str, Any]) -> dict[str, Any]:
    """A runs.csv row's identity (current version): its `identity_json` (upgraded from version 2), or for a row
    written before it existed, what the row recorded (marked identity_version 1, so such rows never pool with
    current ones)."""
    text = row.get("identity_json")
    if isinstance(text, str) and text:
        try:
            ident = json.loads(text)
            if isinstance(ident, dict):
                return upgrade(ident)
        except ValueError:
            pass
    try:
        cfg = json.loads(row.get("config_json") or "")
    except (TypeError, ValueError):
        cfg = None
    if not isinstance(cfg, dict):
        cfg = {}
    cell = {k: _cell(row.get(k)) for k in ("weights_used", "dataset_fingerprint", "split_hash", "precision",
                                           *CORE_LIBRARIES)}
    ident = identity(cfg, dataset_fingerprint=cell["dataset_fingerprint"], split_hash=cell["split_hash"],
                     weights=cell["weights_used"].removesuffix(" (cache)"), precision=cell["precision"] or "fp32",
                     versions={k: cell[k] for k in CORE_LIBRARIES})
    ident["identity_version"] = 1
    return ident


def current_run_id(row: Mapping[str, Any]) -> str:
    """The run id a row is found under today: its recorded `run_id` when the row is of the current identity version
    (a failed row keeps the id its job was planned under, even where its identity says otherwise), else the hash of
    its upgraded identity (a version-2 row is found under its version-3 id)."""
    text = row.get("identity_json")
    if isinstance(text, str) and f'"identity_version": {IDENTITY_VERSION}' in text and row.get("run_id"):
        return str(row["run_id"])
    return run_id(row_identity(row))
