"""What a config resolves to before training, for the run's identity (bench/identity.py): the weights that will be
loaded, the precision the hardware computes in and the versions of the libraries that compute it; and the
execution context recorded beside it (device, ISA, threads, memory format, DataLoader workers), which is not hashed.

Resolved once, before anything trains, by the same code for `bench run`, the sweep plan and the worker; the protocol
then checks that the run really used what its identity says (a mismatch is a failed run, never an `ok` row under an
id that means other numbers).
"""
from __future__ import annotations

import os
from functools import lru_cache

import torch

from ..config import RunConfig
from ..identity import CORE_LIBRARIES
from ..provenance import version
from .archs import ArchSpec
from .libraries import LIBRARIES

# the package whose code builds each source's bodies (and so whose version changes their numbers)
LIBRARY = {lib.name: lib.package for lib in LIBRARIES.values()}


def library_versions(spec: ArchSpec) -> dict[str, str]:
    pkg = LIBRARY.get(spec.source, spec.source)
    return {**{p: version(p) for p in CORE_LIBRARIES}, "arch_library": f"{pkg}=={version(pkg)}"}


@lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it; BENCH_CPU_MODEL names it where the host hides it (some
    containers and VMs say only the vendor), and lets a test cluster's nodes say they differ."""
    told = os.environ.get("BENCH_CPU_MODEL", "").strip()
    if told:
        return told
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine() or "unknown CPU"


def device_context(device: torch.device) -> str:
    """The device in words: the GPU's name, or the CPU model and the ISA torch dispatches to (avx512, avx2, ...):
    two CPUs of one ISA still dispatch different kernels, so both are named."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability().lower()})"


def numeric_precision(precision: str, device: torch.device) -> str:
    """The precision the run computes in, set here so that it is what was asked on any device: bf16/fp16 are
    autocast; fp32 is fp32 everywhere, because on CUDA TF32 is turned off for its convolutions and matmuls (torch
    allows it for cuDNN by default, and an Ampere or newer GPU would then compute an fp32 run in TF32: another
    instance than a CPU's). So a GPU node beside CPU nodes computes the instance the plan named."""
    if device.type == "cuda" and precision == "fp32":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return precision


def tf32_state() -> str:
    """What the CUDA TF32 switches say (recorded in the context)."""
    return "tf32 " + ("on" if torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32 else "off")


def context(device: torch.device, threads: int, memory_format_used: str, num_workers: int) -> str:
    """The execution context recorded beside a row (never hashed): where and how it ran. The same instance in the
    same context gives the same numbers bit for bit; another context moves them like another seed."""
    parts = [device_context(device)]
    if device.type == "cuda":
        parts.append(tf32_state())
    else:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    parts += [memory_format_used, f"{num_workers} loader worker{'s' if num_workers != 1 else ''}"]
    return " · ".join(parts)


def loader_workers(dls) -> int:
    """The DataLoader worker processes a run's training loader really uses (fastai keeps its own counter in
    `DataLoader.num_workers`, 1 in the main process; the count it hands torch is on its `fake_l`)."""
    loader = dls.train
    return int(getattr(getattr(loader, "fake_l", loader), "num_workers", 0) or 0)


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
    # the precision asked is the one computed: protocol.run sets the device to it (numeric_precision), so planning
    # changes no global switch in the planner's process
    return dict(weights=weights, precision=cfg.precision, versions=library_versions(spec))
