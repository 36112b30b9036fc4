"""The model libraries, one entry each: everything bench needs to know about a library lives in this table.

A library is the `source` of its ArchSpecs (bench.train.archs): its builder (the factory in archs.py that returns
them), where its pretrained weights are downloaded from and where its own cache keeps them, the package whose version
changes its numbers (a version column of every row, and the `arch_library` of a run's identity), and the module the
sweep's fork server imports once so that every run finds it imported. The lists that name libraries are derived from
here: `weights.CACHES`, `realise.LIBRARY`, the version columns of `record.INDEX_FIELDS` and `speed.SPEED_FIELDS`, and
the fork server's preload list. Adding a library: one entry below plus its builder in archs.py.

Nothing here imports a model library at import time (`bench list` reads the table); the cache rules import theirs
when called.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import provenance
from .archs import ArchSpec, fastai_xresnet, geffnet_effnet, pytorchcv, timm_arch, tv_resnet

CORE_PACKAGES = ("torch",)  # under every library; fastai (the Learner) and torchvision are libraries too


@dataclass(frozen=True)
class Library:
    name: str                                   # ArchSpec.source
    builder: Callable[..., ArchSpec]            # the factory in archs.py returning this library's specs
    host: str                                   # where its weights are downloaded from (the offline probe)
    cache: Callable[[ArchSpec], Path | None]    # the file its own cache keeps a spec's weights in (None: unknown)
    package: str                                # the distribution whose version changes its numbers
    preload: str                                # the module the fork server imports once


def _hub_dir() -> Path:
    import torch  # deferred, as every library import here: `bench list` reads the table without them
    return Path(torch.hub.get_dir())


def _torchvision_file(spec: ArchSpec) -> Path:
    import torchvision  # deferred, as every library import here
    return _hub_dir() / "checkpoints" / os.path.basename(
        torchvision.models.get_model_weights(spec.name)[spec.weights_tag].url)


def _fastai_file(spec: ArchSpec) -> Path:
    # fastai.vision.models.xresnet._xresnet's one checkpoint (xresnet50)
    return _hub_dir() / "checkpoints" / "xrn50_940.pth"


def _geffnet_file(spec: ArchSpec) -> Path:
    from geffnet import gen_efficientnet  # deferred, as every library import here
    return _hub_dir() / "checkpoints" / os.path.basename(gen_efficientnet.model_urls[spec.name])


def _pytorchcv_file(spec: ArchSpec) -> Path:
    from pytorchcv.models.common.model_store import get_model_name_suffix_data  # deferred, as every library import here
    err, sha1, _ = get_model_name_suffix_data(spec.name)
    root = Path(os.environ.get("PYTORCHCV_ROOT", Path.home() / ".torch" / "models")).expanduser()
    return root / f"{spec.name}-{err}-{sha1[:8]}.pth"


def _timm_file(spec: ArchSpec) -> Path | None:
    """timm's Hugging Face hub cache file for the spec's pretrained config, if it is on disk."""
    import timm  # deferred, as every library import here
    from huggingface_hub import try_to_load_from_cache
    cfg = timm.models.get_pretrained_cfg(spec.name.split(":", 1)[1])
    if cfg is None or not cfg.hf_hub_id:
        return None
    for fname in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(cfg.hf_hub_id, fname)
        if isinstance(hit, str):
            return Path(hit)
    return None


# In the order of the rows' version columns (torch first, then these packages).
LIBRARIES: dict[str, Library] = {lib.name: lib for lib in [
    Library("torchvision", tv_resnet, "download.pytorch.org", _torchvision_file, "torchvision", "torchvision"),
    Library("fastai", fastai_xresnet, "s3.amazonaws.com", _fastai_file, "fastai", "fastai.vision.all"),
    Library("timm", timm_arch, "huggingface.co", _timm_file, "timm", "timm"),
    Library("pytorchcv", pytorchcv, "github.com", _pytorchcv_file, "pytorchcv", "pytorchcv.model_provider"),
    Library("geffnet", geffnet_effnet, "github.com", _geffnet_file, "geffnet", "geffnet"),
]}

# the packages whose versions every row records (after python)
VERSION_PACKAGES = tuple(dict.fromkeys([*CORE_PACKAGES, *(lib.package for lib in LIBRARIES.values())]))
VERSION_FIELDS = ["python", *VERSION_PACKAGES]


def versions() -> dict[str, str]:
    """{"python": ..., package: version} for VERSION_PACKAGES: the version columns of a row."""
    return provenance.versions(VERSION_PACKAGES)
