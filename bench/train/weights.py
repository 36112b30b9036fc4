"""Pretrained weights: each library's own mechanism (online or its warm cache), or a local file; offline fails fast.

`load_model(spec, mode, weights)` returns the full library model and a string saying what was really loaded; that
string goes into every result row.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from functools import lru_cache
from typing import Callable

import torch
from torch import nn

from .archs import ArchSpec
from ..config import ConfigError
from ..network import hf_offline, online


class WeightsError(ConfigError):
    """Pretrained weights were required but cannot be had: a user-facing one-line error (exit 2)."""


def _torch_hub_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _tv_url(spec: ArchSpec) -> str:
    import torchvision
    return torchvision.models.get_model_weights(spec.name)[spec.weights_tag].url


def _fastai_url(spec: ArchSpec) -> str:
    return "https://s3.amazonaws.com/fast-ai-modelzoo/xrn50_940.pth"  # fastai.vision.models.xresnet._xresnet


def _geffnet_url(spec: ArchSpec) -> str:
    from geffnet import gen_efficientnet
    return gen_efficientnet.model_urls[spec.name]


def _ptcv_file(spec: ArchSpec) -> Path:
    from pytorchcv.models.common.model_store import get_model_name_suffix_data
    err, sha1, _ = get_model_name_suffix_data(spec.name)
    root = Path(os.environ.get("PYTORCHCV_ROOT", Path.home() / ".torch" / "models")).expanduser()
    return root / f"{spec.name}-{err}-{sha1[:8]}.pth"


def _timm_cached(spec: ArchSpec) -> Path | None:
    import timm
    from huggingface_hub import try_to_load_from_cache
    cfg = timm.models.get_pretrained_cfg(spec.name.split(":", 1)[1])
    if cfg is None or not cfg.hf_hub_id:
        return None
    for fname in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(cfg.hf_hub_id, fname)
        if isinstance(hit, str):
            return Path(hit)
    return None


# source -> (where its warm cache keeps the file or None, host its downloads come from)
CACHES: dict[str, tuple[Callable[[ArchSpec], Path | None], str]] = {
    "torchvision": (lambda s: _torch_hub_file(_tv_url(s)), "download.pytorch.org"),
    "fastai": (lambda s: _torch_hub_file(_fastai_url(s)), "s3.amazonaws.com"),
    "geffnet": (lambda s: _torch_hub_file(_geffnet_url(s)), "github.com"),
    "pytorchcv": (_ptcv_file, "github.com"),
    "timm": (_timm_cached, "huggingface.co"),
}


def cached_file(spec: ArchSpec) -> Path | None:
    """The library's warm-cache file for `spec` if it is on disk, else None."""
    if spec.weights_tag is None:
        return None
    try:
        path = CACHES[spec.source][0](spec)
    except Exception:  # a library without pretrained weights for this name
        return None
    return path if path is not None and path.is_file() else None


def _read_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_state_dict"):  # common checkpoint wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise WeightsError(f"weights: {path} does not hold a state dict (got {type(sd).__name__})")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def find_weights_file(spec: ArchSpec, weights: str) -> Path:
    """`weights` is a file, or a folder holding `<arch>.pth|.pt|.safetensors` or the library's cache file name."""
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if not path.exists():
        raise WeightsError(f"weights: {path} does not exist (give a state-dict file or a folder of them)")
    stem = spec.name.replace(":", "_")
    names = [f"{stem}{ext}" for ext in (".pth", ".pt", ".safetensors", ".bin")]
    try:
        cache = CACHES[spec.source][0](spec)
        if cache is not None:
            names.append(cache.name)
    except Exception:
        pass
    for name in names:
        if (path / name).is_file():
            return path / name
    raise WeightsError(f"weights: no file for {spec.name} in {path} (looked for {', '.join(names)})")


def _sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_of(str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=None)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:  # size/mtime: a rewritten file is hashed again
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_from_file(spec: ArchSpec, path: Path) -> tuple[nn.Module, str]:
    model = spec.build(False)
    sd = _read_state_dict(path)
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise WeightsError(
            f"weights: {path} does not fit {spec.name} ({len(result.missing_keys)} missing keys, e.g. "
            f"{result.missing_keys[:2]}; {len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[:2]})"
            " - it must be a state dict of the library's full 1000-class model")
    return model, f"file:{path.resolve()}#sha256:{_sha256(path)[:16]}"


def unavailable(spec: ArchSpec) -> str | None:
    """Why the library's pretrained weights for `spec` cannot be had here (none published, or no cache and no
    network), or None when they can be loaded."""
    if spec.weights_tag is None:
        return f"{spec.source} publishes no ImageNet weights for {spec.name}"
    host = CACHES[spec.source][1]
    if cached_file(spec) is None and not online(host):
        return (f"no cached weights for {spec.name} and {host} is unreachable (offline?); put a state dict in the "
                f"library cache or pass --weights FILE")
    return None


def check_weights(spec: ArchSpec, mode: str = "auto", weights: str | None = None) -> None:
    """Before any work: a `weights` path without a file for `spec`, or pretrained=true with no weights to be had, is
    a WeightsError (one line, exit 2, no row), not a failed run found at training time."""
    if weights:
        find_weights_file(spec, weights)
    elif mode == "true":
        reason = unavailable(spec)
        if reason:
            raise WeightsError(f"pretrained: {reason}")


def load_model(spec: ArchSpec, mode: str = "auto", weights: str | None = None) -> tuple[nn.Module, str]:
    """Build the full library model; returns (model, what was really used)."""
    if weights:
        return load_from_file(spec, find_weights_file(spec, weights))
    if mode == "false":
        return spec.build(False), "random"
    used = f"{spec.source}:{spec.weights_tag}"
    reason = unavailable(spec)
    if reason is None:
        cached = cached_file(spec)
        try:
            if spec.source == "timm" and cached is not None:
                os.environ["HF_HUB_OFFLINE"] = "1"  # cache hit: skip timm's online revalidation
                hf_offline(True)
            return spec.build(True), used + (" (cache)" if cached else "")
        except Exception as e:  # network failure mid-download, corrupt cache file, ...
            reason = f"loading pretrained {spec.name} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    if mode == "true":
        raise WeightsError(f"pretrained: {reason}")
    warnings.warn(f"pretrained=auto: {reason}; training {spec.name} from random init", stacklevel=2)
    return spec.build(False), "random"


def weights_identity(used: str) -> str:
    """What `load_model` reports as used, as the run identity names it: where the file came from (cache or
    download) does not change the numbers, and a local file is its content."""
    used = used.removesuffix(" (cache)")
    if used.startswith("file:") and "#sha256:" in used:
        return "sha256:" + used.rsplit("#sha256:", 1)[1]
    return used


def resolve_weights(spec: ArchSpec, mode: str = "auto", weights: str | None = None) -> str:
    """Before training: the weights `load_model(spec, mode, weights)` will load, as `weights_identity` names them
    (`random`, `<library>:<tag>`, `sha256:<16 hex>` of a file). pretrained=auto with no weights to be had is
    `random`, the same run as pretrained=false."""
    if weights:
        return f"sha256:{_sha256(find_weights_file(spec, weights))[:16]}"
    if mode == "false" or unavailable(spec) is not None:
        return "random"
    return f"{spec.source}:{spec.weights_tag}"
