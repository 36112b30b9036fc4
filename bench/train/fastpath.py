"""Execution choices that follow measurements: the memory format per device class and the CPU allocator's settings
(the DataLoader settings live with the data, in bench.data.loaders).

`channels_last=auto` takes the memory format that trained faster on this class of device (figures and commands in
docs/benchmarks.md). It only ever chooses between layouts of the same fp32 maths: channels_last reorders memory, it
does not lower precision (its kernels differ from the contiguous ones, so losses agree to rounding, not bit for bit).
bf16/fp16 change the numbers and are never chosen here: only `precision=bf16|fp16` turns them on. Every result row
records the `memory_format` and `precision` really used.
"""
from __future__ import annotations

# device class -> smallest training image side (px) from which channels_last trained faster there; None: never.
# cpu-avx512: AMD EPYC (AVX-512 + avx512_bf16), fp32 training through the harness, channels_last / contiguous, median
# of paired per-round ratios (benchmarks/options.py, docs/benchmarks.md):
#     px:      32    64    128   224
#   resnet18   0.94  0.96  1.14
#   resnext50  0.94  0.98  1.13  1.14
#   b3         1.19  1.02  1.30  1.25
# so from 128 px on it is faster for all three, below that it is a wash or slower for ResNet-style bodies.
# cuda: NHWC is the layout cuDNN's tensor-core convolutions run natively (PyTorch's and NVIDIA's guidance; no GPU was
# lent to measure it here). cpu (AVX2 and older): resnet18 0.99x, resnet50 1.08x at 64 px, inside the noise.
CHANNELS_LAST_FROM: dict[str, int | None] = {"cuda": 0, "cpu-avx512": 128, "cpu": None}


def device_type(device) -> str:
    """`cpu`, `cuda`, ... of a torch.device or its name."""
    return getattr(device, "type", str(device).split(":")[0])


def layout_class(device) -> str:
    """The row of CHANNELS_LAST_FROM that applies: `cuda`, `cpu-avx512` (oneDNN's AVX-512 kernels) or `cpu`. Coarser
    than the run identity's device class (bench.train.realise), which names the GPU and the exact ISA."""
    import torch
    if device_type(device) == "cuda":
        return "cuda"
    return "cpu-avx512" if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else "cpu"


def memory_format(setting: str | bool, device, img_size: int) -> str:
    """`channels_last` or `contiguous` for the channels_last setting (auto | true | false), on `device`, training
    at `img_size` px."""
    setting = str(setting).lower()
    if setting in ("true", "false"):
        return "channels_last" if setting == "true" else "contiguous"
    start = CHANNELS_LAST_FROM[layout_class(device)]
    return "channels_last" if start is not None and img_size >= start else "contiguous"


# glibc malloc: allocations up to 32 MB from the heap (glibc's own ceiling for its sliding threshold) and up to 256 MB
# of freed heap kept instead of returned to the kernel. By default the optimizer's per-parameter temporaries (up to a
# parameter's size: 9 MB in resnet18) are mmapped and unmapped every step and the kernel zero-fills their pages again
# each time: 4,600-23,000 page faults a resnet18 step (tests/test_allocator.py), 1.5-7 s of system time a quick run.
# Measured (docs/benchmarks.md, "The quick benchmark in 5 minutes"): xresnet18 quick run 47 -> 42 s, resnet18
# 43 -> 39 s, losses identical to the last bit (torch's CPU allocator aligns every buffer to 64 bytes either way);
# at 160 px -3.5 %.
MALLOPT = {-3: 32 << 20, -1: 256 << 20}  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD (malloc.h)


def keep_freed_memory(device="cpu") -> bool:
    """Tune this process's glibc allocator as above for a run on `device`; False where nothing changed: a CUDA run
    (its tensors are not in this heap; measured on CPU only) or a C library other than glibc."""
    import ctypes
    if device_type(device) != "cpu":
        return False
    try:
        libc = ctypes.CDLL(None)  # the symbols this process already has (find_library would run ldconfig each run)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: other C libraries' mallopt take other parameters
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in MALLOPT.items())
