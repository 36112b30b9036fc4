"""Execution choices that follow measurements: the memory format per device class and the DataLoader settings.

`channels_last=auto` takes the memory format that trained faster on this class of device (figures and commands in
docs/benchmarks.md). It only ever chooses between layouts of the same fp32 maths: channels_last reorders memory, it
does not lower precision (its kernels differ from the contiguous ones, so losses agree to rounding, not bit for bit).
bf16/fp16 change the numbers and are never chosen here: only `precision=bf16|fp16` turns them on. Every result row
records the `memory_format` and `precision` really used.
"""
from __future__ import annotations

# device class -> memory format that trained faster there (docs/benchmarks.md, "Memory format by device").
MEASURED_FASTER = {
    # NHWC is the layout cuDNN's tensor-core convolutions run natively (PyTorch's and NVIDIA's guidance); no GPU was
    # lent to measure it here.
    "cuda": "channels_last",
    # AMD EPYC, AVX-512 with avx512_bf16, 2 cores, fp32, training through the harness: see docs/benchmarks.md.
    "cpu-avx512": "channels_last",
    # AVX2-only EPYC (earlier figures): resnet18 0.99x, resnet50 1.08x, inside the noise: keep the default layout.
    "cpu": "contiguous",
}


def device_class(device) -> str:
    """`cuda`, `cpu-avx512` (oneDNN's AVX-512 kernels) or `cpu` (anything else)."""
    import torch
    if getattr(device, "type", str(device).split(":")[0]) == "cuda":
        return "cuda"
    return "cpu-avx512" if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else "cpu"


def memory_format(setting: str | bool, device) -> str:
    """`channels_last` or `contiguous` for the channels_last setting (auto | true | false) on `device`."""
    setting = str(setting).lower()
    if setting in ("true", "false"):
        return "channels_last" if setting == "true" else "contiguous"
    return MEASURED_FASTER[device_class(device)]


def loader_kwargs(num_workers: int | None, device) -> dict:
    """DataLoader workers and pinned memory. auto (None): on CUDA one worker per core this process may run on
    (fastai's defaults.cpus, at most 16) and pinned host memory for asynchronous copies, so decoding and augmenting
    overlap the GPU's work; on a CPU 0 workers, which measured fastest on 2 cores (workers compete with the
    training threads for the same cores)."""
    cuda = getattr(device, "type", str(device).split(":")[0]) == "cuda"
    if num_workers is None:
        from fastcore.basics import defaults  # fastai's cpu count: the cores this process may run on
        num_workers = min(16, defaults.cpus) if cuda else 0
    return dict(num_workers=num_workers, pin_memory=cuda)

