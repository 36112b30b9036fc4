"""Pretrained weights: a checkpoint shipped in an installed package, each library's own mechanism (online or its
warm cache), or a local file; offline fails fast, and a checkpoint that does not fit is refused before training.

`resolve_weights(spec, mode, weights)` says, before training and cheaply, what will be loaded (the run identity's
`weights`); `load_model(spec, mode, weights)` returns the full library model and the same string, plus a transient
note in parentheses (` (cache)`, ` (file /path)`) that `weights_identity` strips. The load's string goes into every row.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from functools import lru_cache
from typing import Callable

import torch
from torch import nn

from .archs import ArchSpec
from .checkpoint import WeightsError, file_sha256, fit_state_dict, read_state_dict
from .libraries import LIBRARIES
from ..network import hf_offline, online
from .packaged import PACKAGES, translate

__all__ = ["WeightsError", "resolve_weights", "load_model", "weights_identity", "unavailable",
           "cached_file", "find_weights_file", "packaged_file"]


# source -> (where its warm cache keeps the file or None, host its downloads come from): bench.train.libraries
CACHES: dict[str, tuple[Callable[[ArchSpec], Path | None], str]] = {
    lib.name: (lib.cache, lib.host) for lib in LIBRARIES.values()}


def cached_file(spec: ArchSpec) -> Path | None:
    """The library's warm-cache file for `spec` if it is on disk, else None."""
    if spec.weights_tag is None:
        return None
    try:
        path = CACHES[spec.source][0](spec)
    except Exception:  # a library without pretrained weights for this name
        return None
    return path if path is not None and path.is_file() else None


def packaged_file(spec: ArchSpec) -> Path | None:
    """The ImageNet checkpoint an installed package ships for `spec` (bench.train.packaged), else None."""
    package = PACKAGES.get(spec.timm_name or "")
    return package.path() if package else None


def _package_label(spec: ArchSpec, path: Path) -> str:
    package = PACKAGES[spec.timm_name]
    return f"pypi:{package.dist}=={package.version()}#sha256:{file_sha256(path)[:16]}"


def find_weights_file(spec: ArchSpec, weights: str) -> Path:
    """`weights` is a file, or a folder holding `<arch>.pth|.pt|.safetensors|.bin` (for `timm:<name>` also the bare
    timm name, `<name>.pth`, or `timm_<name>.pth`) or the library's cache file name."""
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    if not path.exists():
        raise WeightsError(f"weights: {path} does not exist (give a state-dict file or a folder of them)")
    stems = list(dict.fromkeys([spec.name.replace(":", "_"), spec.timm_name or spec.name]))
    names = [f"{stem}{ext}" for stem in stems for ext in (".pth", ".pt", ".safetensors", ".bin")]
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


def unavailable(spec: ArchSpec) -> str | None:
    """Why the pretrained weights for `spec` cannot be had here (none published, or no package, no cache and no
    network), or None when they can be loaded."""
    if packaged_file(spec) is not None:
        return None
    if spec.weights_tag is None:
        return f"{spec.source} publishes no ImageNet weights for {spec.name}"
    host = CACHES[spec.source][1]
    if cached_file(spec) is None and not online(host):
        hint = f"pip install {PACKAGES[spec.timm_name].dist}, " if spec.timm_name in PACKAGES else ""
        return (f"no cached weights for {spec.name} and {host} is unreachable (offline?); {hint}put a state dict "
                f"in the library cache or pass --weights FILE")
    return None


@lru_cache(maxsize=64)
def _check_fits_once(spec: ArchSpec, path: str, sha: str) -> None:  # sha keys it: a changed file is checked again
    """Does the checkpoint at `path` fit the model `spec` builds? Checked on the meta device (no memory)."""
    with torch.device("meta"):
        model = spec.build(False)
    _fitted(model, read_state_dict(Path(path), mmap=True), path, spec.name)


def _fitted(model: nn.Module, sd: dict, what: str, name: str) -> dict:
    """`sd` in `model`'s names: a known other layout translated (bench.train.packaged), then checked to fit every
    tensor exactly once (bench.train.checkpoint); else a WeightsError."""
    sd, unmapped = translate(model, sd)
    return fit_state_dict(model, sd, what, name, unmapped)


def resolve_weights(spec: ArchSpec, mode: str = "auto", weights: str | None = None) -> str:
    """What a run of `spec` with pretrained=`mode` and `weights` will really load, said before training: `random`,
    `pypi:<package>==<version>#sha256:<16 hex>`, `<library>:<tag>` (e.g. `torchvision:IMAGENET1K_V1`) or
    `sha256:<16 hex>` of a file (identified by content, not path). It equals `weights_identity` of what `load_model`
    records. A file or package checkpoint is checked against the architecture here (names and shapes, on the meta
    device); weights that cannot be had (`true`) or do not fit are a WeightsError (one line, exit 2, nothing written).
    `spec` is the variant the run trains (bench.train.archs.arch_for)."""
    if weights:
        path = find_weights_file(spec, weights)
        sha = file_sha256(path)
        _check_fits_once(spec, str(path.resolve()), sha)
        return f"sha256:{sha[:16]}"
    if mode == "false":
        return "random"
    shipped = packaged_file(spec)
    if shipped is not None:
        _check_fits_once(spec, str(shipped), file_sha256(shipped))
        return _package_label(spec, shipped)
    reason = unavailable(spec)
    if reason is None:
        return f"{spec.source}:{spec.weights_tag}"
    if mode == "true":
        raise WeightsError(f"pretrained: {reason}")
    return "random"


def weights_identity(used: str) -> str:
    """A recorded `weights_used` as the run identity names it (what resolve_weights says): without its note in
    parentheses (` (cache)`, ` (file /path)`: where the weights came from does not change the numbers); older rows'
    `file:/path#sha256:<hex>` is the file's content, `sha256:<hex>`."""
    used = used.split(" (", 1)[0]
    if used.startswith("file:") and "#sha256:" in used:
        return "sha256:" + used.rsplit("#sha256:", 1)[1]
    return used


def _from_file(spec: ArchSpec, path: Path) -> nn.Module:
    model = spec.build(False)
    model.load_state_dict(_fitted(model, read_state_dict(path), str(path), spec.name), strict=True)
    return model


def load_model(spec: ArchSpec, mode: str = "auto", weights: str | None = None) -> tuple[nn.Module, str]:
    """Build the full library model; returns (model, what was really used: resolve_weights' string plus a note)."""
    used = resolve_weights(spec, mode, weights)
    if weights:
        path = find_weights_file(spec, weights)
        return _from_file(spec, path), f"{used} (file {path.resolve()})"
    if used == "random":
        if mode != "false":
            warnings.warn(f"pretrained=auto: {unavailable(spec)}; training {spec.name} from random init",
                          stacklevel=2)
        return spec.build(False), "random"
    if used.startswith("pypi:"):
        return _from_file(spec, packaged_file(spec)), used
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

