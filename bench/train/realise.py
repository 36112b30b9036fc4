"""What a config resolves to before training, for the run's identity (bench/identity.py): the weights that will be
loaded, the memory format, the device class, the CPU thread count and the versions of the libraries that compute it.

Resolved once, before anything trains, by the same code for `bench run`, the sweep plan and the worker; the protocol
then checks that the run really used what its identity says (a mismatch is a failed run, never an `ok` row under an
id that means other numbers).
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import torch

from ..config import RunConfig
from ..identity import CORE_LIBRARIES
from .archs import ArchSpec
from .fastpath import memory_format

# the package whose code builds each source's bodies (and so whose version changes their numbers)
LIBRARY = {"torchvision": "torchvision", "fastai": "fastai", "pytorchcv": "pytorchcv", "geffnet": "geffnet",
           "timm": "timm"}


@lru_cache(maxsize=None)
def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return ""


def library_versions(spec: ArchSpec) -> dict[str, str]:
    pkg = LIBRARY.get(spec.source, spec.source)
    return {**{p: _version(p) for p in CORE_LIBRARIES}, "arch_library": f"{pkg}=={_version(pkg)}"}


def device_class(device: torch.device) -> str:
    """`cuda:<GPU name>` or `cpu-<ISA torch dispatches to>` (avx512, avx2, default): the kernels, and so the
    floating-point results, differ between these classes."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu-{torch.backends.cpu.get_cpu_capability().lower()}"


def thread_count(cfg: RunConfig) -> int:
    """The torch CPU threads the run will use: the setting, or this process's count (one per core by default)."""
    return int(cfg.threads or torch.get_num_threads())


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def realise(cfg: RunConfig, spec: ArchSpec, weights: str) -> dict:
    """The realised half of the identity (see bench.identity.identity's keyword arguments); `weights`: what
    bench.train.weights.resolve_weights said the run will load."""
    device = resolve_device(cfg.device)
    return dict(weights=weights, memory_format=memory_format(cfg.channels_last, device, cfg.img_size),
                device_class=device_class(device), threads=thread_count(cfg), versions=library_versions(spec))
