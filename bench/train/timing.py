"""Measurement tools for `bench speed` and benchmarks/: synthetic batches a fastai Learner accepts, a clock callback
around the training batches, peak memory, MAC counts and timed inference. Nothing here imports torch or fastai at
import time (the CLI imports `bench.train.speed` to register its subcommand)."""
from __future__ import annotations

import copy
import resource
import time
from contextlib import nullcontext
from pathlib import Path

# The head is sized for ImageNet's 1000 classes so GMACs and params sit next to published figures; the class count
# changes the cost of one Linear(512, n) only.
N_CLASSES = 1000
DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


# --- synthetic data that the fastai Learner accepts as DataLoaders


class _SynthDataset:
    def __init__(self, n: int):
        from fastai.losses import CrossEntropyLossFlat  # deferred: see the module docstring
        self.n = n
        self.loss_func = CrossEntropyLossFlat()  # what make_dls' Categorize gives the Learner

    def __len__(self):
        return self.n


class SyntheticBatches:
    """The same on-device batch `n` times: a torch-DataLoader-like iterable (fastai's Learner takes those)."""

    def __init__(self, x, y, n: int):
        self.x, self.y, self.n = x, y, n
        self.dataset = _SynthDataset(n * len(x))
        self.device = x.device
        self.vocab = list(range(N_CLASSES))  # make_learner caps top-k by the class count

    def __len__(self):
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield self.x, self.y

    def to(self, device):
        self.x, self.y, self.device = self.x.to(device), self.y.to(device), device
        return self


def synthetic_dls(batch_size: int, img_size: int, n_train: int, n_valid: int, device, seed: int = 0):
    import torch  # deferred: see the module docstring
    from fastai.data.core import DataLoaders
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, img_size, img_size, generator=g).to(device)
    y = torch.randint(0, N_CLASSES, (batch_size,), generator=g).to(device)
    return DataLoaders(SyntheticBatches(x, y, n_train), SyntheticBatches(x, y, n_valid))


# --- measurement helpers


def synchronizer(device):
    import torch  # deferred: see the module docstring
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


class PeakMemory:
    """Peak memory of what runs between start() and stop(), in MB.

    CUDA: `torch.cuda.max_memory_allocated` (tensors only, not the caching allocator's reserve), absolute.
    CPU: peak resident set size minus the RSS at `baseline()` (taken before the model is built, so params, grads,
    optimizer state and activations all count). The kernel's high-water mark (VmHWM) is reset through
    /proc/self/clear_refs so earlier peaks (imports, other models) do not hide this one; where that is not allowed,
    getrusage's ru_maxrss is used and the figure is a lower bound (method `ru_maxrss_delta`)."""

    def __init__(self, device):
        self.device = device
        self.base = 0.0
        self.method = "cuda_max_allocated" if device.type == "cuda" else "cpu_rss_hwm_delta"

    @staticmethod
    def _status(key: str) -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB -> MB
        except OSError:
            pass
        return None

    def baseline(self):
        if self.device.type != "cuda":
            rss = self._status("VmRSS")
            if rss is None:
                self.method, rss = "ru_maxrss_delta", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.base = rss

    def start(self):
        import torch  # deferred: see the module docstring
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        if self.method == "cpu_rss_hwm_delta":
            try:
                Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS
            except OSError:
                self.method = "ru_maxrss_delta"

    def stop(self) -> float:
        import torch  # deferred: see the module docstring
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.method == "cpu_rss_hwm_delta":
            peak = self._status("VmHWM")
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return max(0.0, (peak or 0.0) - self.base)


def count_gmacs(model, img_size: int) -> float | None:
    """Multiply-accumulates per image, in G, by fvcore on a CPU copy of the model in eval mode. fvcore counts one fused
    multiply-add as one "flop" (conv: N*Cout*H*W*Cin*k*k/groups), so its total is MACs (tests check this on a
    conv). It also counts BatchNorm/pooling elementwise work at one per element (small next to convs) and skips other
    elementwise ops. Returns None where tracing fails (some timm models), rather than failing the benchmark."""
    import torch  # deferred: see the module docstring
    from fvcore.nn import FlopCountAnalysis
    m = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).float().eval()
    try:
        with torch.no_grad():
            fca = FlopCountAnalysis(m, torch.zeros(1, 3, img_size, img_size))
            fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return fca.total() / 1e9
    except Exception:
        return None


def make_clock(warmup: int, sync, mem: PeakMemory):
    """A fastai callback that times the training batches after `warmup`, then stops the fit (no validation)."""
    from fastai.callback.core import Callback, CancelFitException  # deferred: see the module docstring

    class Clock(Callback):
        order = 100  # after every harness callback: their per-batch work is inside the timed region

        def before_fit(self):
            mem.start()
            self.t_start = time.perf_counter()
            self.t0 = self.t1 = None

        def before_train(self):
            if warmup == 0:
                self._mark()

        def after_batch(self):
            if self.training and self.iter + 1 == warmup:
                self._mark()

        def _mark(self):
            sync()
            self.t0 = time.perf_counter()

        def after_train(self):
            sync()
            self.t1 = time.perf_counter()
            raise CancelFitException  # the valid set is not part of the training figure

    return Clock()


def autocast_ctx(device_type: str, precision: str):
    import torch  # deferred: see the module docstring
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type, dtype=getattr(torch, DTYPES[precision]))


def time_inference(model, x, precision: str, channels_last: bool, steps: int, warmup: int, sync) -> float:
    """Seconds for `steps` forward passes after `warmup` untimed ones."""
    import torch  # deferred: see the module docstring
    model.eval()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast_ctx(x.device.type, precision):
        for _ in range(warmup):
            model(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync()
    return time.perf_counter() - t0
