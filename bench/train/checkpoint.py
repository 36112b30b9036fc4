"""Checkpoint files: reading a state dict, its content hash, and whether it fits a model.

A checkpoint fits a model when every tensor of the model gets exactly one tensor of the same shape and no tensor is
left over. bench.train.weights, the one module that uses this one, translates known other layouts first
(bench.train.packaged) and checks on a model built on the meta device (no memory, no init cost), so a misfit is one
clear line at preparation time, for every library, instead of a `RuntimeError` from `load_state_dict` in the middle
of a run.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..config import ConfigError


class WeightsError(ConfigError):
    """Pretrained weights were required but cannot be had, or do not fit: a user-facing one-line error (exit 2)."""


@lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:  # size and mtime key the cache: a rewrite re-hashes
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """The file's content hash (hex), computed once per (path, size, mtime) in this process."""
    path = Path(path).resolve()
    st = path.stat()
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)


def read_state_dict(path: Path, mmap: bool = False) -> dict:
    """The state dict in a .pth/.pt/.bin/.safetensors file, unwrapped from the usual checkpoint dicts. `mmap`
    maps the tensors instead of reading them (for checks that only look at names and shapes)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # deferred: only a .safetensors file needs it
            sd = load_file(str(path))
        else:
            try:
                sd = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError:
                if not mmap:
                    raise
                sd = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format: no mmap
    except Exception as e:
        raise WeightsError(f"weights: cannot read {path} as a state dict ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    for key in ("model", "state_dict", "model_state_dict"):  # common checkpoint wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise WeightsError(f"weights: {path} does not hold a state dict (got {type(sd).__name__})")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _shape(t) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _first(keys: list[str], n: int = 2) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def fit_state_dict(model: nn.Module, sd: dict, what: str, name: str, unmapped: list[str] = ()) -> dict:
    """`sd` itself when it fits `model`, or a WeightsError naming the first missing and unexpected keys (`unmapped`:
    keys a layout translation could not place, counted as unexpected) and shape mismatches. `what` names the
    checkpoint and `name` the architecture in the message. BatchNorm's `num_batches_tracked` may be absent (older
    checkpoints): torch fills it in on loading."""
    want = model.state_dict()
    missing = [k for k in want if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = list(unmapped) + [k for k in sd if k not in want]
    wrong = [f"{k} {_shape(sd[k])} in file vs {_shape(want[k])} in model" for k in want
             if k in sd and sd[k].shape != want[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing key(s): {_first(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected: {_first(unexpected)}" if unexpected else "",
                 f"{len(wrong)} shape mismatch(es): {_first(wrong)}" if wrong else ""]
        raise WeightsError(f"weights: {what} does not fit {name} ({'; '.join(p for p in parts if p)}) - it must be "
                           f"a state dict of the library's full 1000-class {name}")
    return sd

