"""Checkpoint files: reading a state dict, its content hash, and fitting it to a model before anything trains.

A checkpoint fits a model when, after the known layout translations (bench.train.packaged), every tensor of the
model gets exactly one tensor of the same shape and no tensor is left over. Checked on a model built on the meta
device (no memory, no init cost), so a misfit is one clear line at preparation time, for every library, instead of a
`RuntimeError` from `load_state_dict` in the middle of a run.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..config import ConfigError
from .packaged import efficientnet_pytorch_modules, is_efficientnet_pytorch, rename


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
            from safetensors.torch import load_file
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


def fit_state_dict(model: nn.Module, sd: dict, what: str, name: str) -> dict:
    """`sd` in `model`'s names (an efficientnet_pytorch checkpoint into a timm EfficientNet is renamed), or a
    WeightsError naming the first missing and unexpected keys and shape mismatches. `what` names the checkpoint and
    `name` the architecture in the message. BatchNorm's `num_batches_tracked` may be absent (older checkpoints):
    torch fills it in on loading."""
    unmapped: list[str] = []
    if is_efficientnet_pytorch(sd) and hasattr(model, "blocks") and hasattr(model, "conv_stem"):
        sd, unmapped = rename(sd, efficientnet_pytorch_modules(model))
    want = model.state_dict()
    missing = [k for k in want if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = unmapped + [k for k in sd if k not in want]
    wrong = [f"{k} {_shape(sd[k])} in file vs {_shape(want[k])} in model" for k in want
             if k in sd and sd[k].shape != want[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing key(s): {_first(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected: {_first(unexpected)}" if unexpected else "",
                 f"{len(wrong)} shape mismatch(es): {_first(wrong)}" if wrong else ""]
        raise WeightsError(f"weights: {what} does not fit {name} ({'; '.join(p for p in parts if p)}) - it must be "
                           f"a state dict of the library's full 1000-class {name}")
    return sd


def load_fitted(model: nn.Module, sd: dict, what: str, name: str) -> nn.Module:
    """Load `sd` into `model` after checking that it fits (see fit_state_dict); every tensor is replaced."""
    model.load_state_dict(fit_state_dict(model, sd, what, name), strict=True)
    return model


def check_fits(build, path: Path, what: str, name: str) -> None:
    """Does the checkpoint at `path` fit the model `build(False)` makes? Checked on the meta device (no memory)."""
    with torch.device("meta"):
        model = build(False)
    fit_state_dict(model, read_state_dict(path, mmap=True), what, name)
