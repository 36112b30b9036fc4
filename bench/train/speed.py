"""`bench speed`: training and inference throughput of one architecture on synthetic input, through the harness.

Training runs the real fastai Learner from `make_learner` (same optimizer, metrics, ChannelsLast / MixedPrecision
callbacks and memory-format choice as `bench run`; no progress bar, as `bench run` has none but one line per epoch), so
the figure is what a `bench run` epoch costs per image minus data loading.
Inference is the same model in eval mode under `torch.inference_mode` (+ autocast, channels_last input). The batch is
one fixed random tensor already on the device: data loading and augmentation are not measured here.

Warm-up steps (allocator, oneDNN/cuDNN plan selection, torch.compile) are run first and excluded; the clock starts after
a device synchronize and stops after another, so queued CUDA work is never counted as done.
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

from ..config import ConfigError

SPEED_FIELDS = [
    "timestamp", "arch", "family", "source", "img_size", "batch_size", "precision", "channels_last",
    "memory_format", "compile", "device", "threads", "train_img_s", "infer_img_s", "train_step_ms", "infer_step_ms",
    "params", "params_1k",
    "gmacs", "peak_mem_mb", "mem_method", "n_classes", "warmup_steps", "steps", "warmup_s", "deterministic",
    "status", "error", "python", "torch", "torchvision", "fastai", "timm", "pytorchcv", "geffnet", "git_sha", "host",
]
# The head is sized for ImageNet's 1000 classes so GMACs and params sit next to published figures; the class count
# changes the cost of one Linear(512, n) only.
N_CLASSES = 1000
DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def speed_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "speed.csv"


# --- synthetic data that the fastai Learner accepts as DataLoaders


class _SynthDataset:
    def __init__(self, n: int):
        from fastai.losses import CrossEntropyLossFlat
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
    import torch
    from fastai.data.core import DataLoaders
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, img_size, img_size, generator=g).to(device)
    y = torch.randint(0, N_CLASSES, (batch_size,), generator=g).to(device)
    return DataLoaders(SyntheticBatches(x, y, n_train), SyntheticBatches(x, y, n_valid))


# --- measurement helpers


def synchronizer(device):
    import torch
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
                import resource
                self.method, rss = "ru_maxrss_delta", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.base = rss

    def start(self):
        import torch
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        if self.method == "cpu_rss_hwm_delta":
            try:
                Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS
            except OSError:
                self.method = "ru_maxrss_delta"

    def stop(self) -> float:
        import torch
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.method == "cpu_rss_hwm_delta":
            peak = self._status("VmHWM")
        else:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return max(0.0, (peak or 0.0) - self.base)


def count_gmacs(model, img_size: int) -> float | None:
    """Multiply-accumulates per image, in G, by fvcore on a CPU copy of the model in eval mode. fvcore counts one fused
    multiply-add as one "flop" (conv: N*Cout*H*W*Cin*k*k/groups), so its total is MACs (tests check this on a
    conv). It also counts BatchNorm/pooling elementwise work at one per element (small next to convs) and skips other
    elementwise ops. Returns None where tracing fails (some timm models), rather than failing the benchmark."""
    import copy
    import torch
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
    from fastai.callback.core import Callback, CancelFitException

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


def _count(name: str, value) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None


def measure(arch: str, img_size: int | None = None, batch_size: int | None = None, precision: str = "fp32",
            channels_last: str | bool = "auto", compile: bool = False, steps: int | None = None,
            warmup: int | None = None, device: str = "auto", results_dir: str | Path = "results", write: bool = True,
            macs: bool = True) -> dict:
    """Benchmark one architecture; returns the row (also appended to results/speed.csv when `write`).
    Bad settings raise ConfigError before anything is built; a failure while measuring is recorded as a
    `failed` row and re-raised."""
    import torch
    from ..config import make_config
    from ..logs import append_rows, git_sha, host, versions
    from .learner import check_device
    from .record import device_name
    cfg = make_config(arch=arch, img_size=img_size, batch_size=batch_size, precision=precision,
                      channels_last=channels_last, device=device, pretrained="false", results_dir=str(results_dir))
    dev = check_device(cfg.device)
    steps, warmup = _count("steps", steps), _count("warmup", warmup)
    steps = (20 if dev.type == "cuda" else 5) if steps is None else steps
    warmup = (5 if dev.type == "cuda" else 2) if warmup is None else warmup
    if steps < 1 or warmup < 0:
        raise ConfigError(f"steps must be >= 1 and warmup >= 0 (got {steps}, {warmup})")
    from .archs import get_arch
    spec = get_arch(cfg.arch)  # unknown names: ConfigError with the closest names
    from .fastpath import memory_format
    row = dict(arch=cfg.arch, family=spec.family, source=spec.source, img_size=cfg.img_size,
               batch_size=cfg.batch_size, precision=cfg.precision, channels_last=cfg.channels_last,
               memory_format=memory_format(cfg.channels_last, dev), compile=compile,
               device=device_name(dev), threads=torch.get_num_threads(), n_classes=N_CLASSES, warmup_steps=warmup,
               steps=steps, deterministic=True, git_sha=git_sha(), host=host(), **versions())
    try:
        row.update(_measure(cfg, spec, dev, steps, warmup, compile, macs), status="ok", error="")
    except BaseException as e:
        from .record import one_line
        row.update(status="failed", error=one_line(e))
        raise
    finally:
        row["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if write:
            append_rows(speed_path(results_dir), [row], SPEED_FIELDS)
    return row


def _measure(cfg, spec, dev, steps: int, warmup: int, compile: bool, macs: bool = True) -> dict:
    import torch
    from .archs import count_params_1k
    from .learner import build_model, make_learner, seed_all
    sync, mem = synchronizer(dev), PeakMemory(dev)
    out: dict = {}
    mem.baseline()
    seed_all(cfg.seed)  # the harness's settings, deterministic algorithms included: we time what `bench run` runs
    built = build_model(cfg, N_CLASSES)
    out["params"] = sum(p.numel() for p in built.model.parameters())
    out["params_1k"] = count_params_1k(spec)
    gmacs = count_gmacs(built.model, cfg.img_size) if macs else None
    out["gmacs"] = round(gmacs, 4) if gmacs is not None else ""

    dls = synthetic_dls(cfg.batch_size, cfg.img_size, warmup + steps, 1, dev, seed=cfg.seed)
    clock = make_clock(warmup, sync, mem)
    learn = make_learner(cfg, dls, built, cbs=[clock])
    learn.unfreeze()  # time the whole network training (phase 2); phase 1 is cheaper
    if compile:
        learn.create_opt()  # the splitter indexes the Sequential: build param groups before wrapping it
        learn.model = torch.compile(learn.model)
    with learn.no_bar(), learn.no_logging():  # no epoch bar or table: the row is the output
        learn.fit(1, 1e-4)
    out["peak_mem_mb"], out["mem_method"] = round(mem.stop(), 1), mem.method
    train_s = clock.t1 - clock.t0
    out["warmup_s"] = round(clock.t0 - clock.t_start, 3)
    out["train_step_ms"] = round(1000 * train_s / steps, 2)
    out["train_img_s"] = round(steps * cfg.batch_size / train_s, 2)

    infer_s = time_inference(learn.model, dls.train.x, cfg.precision, learn.memory_format == "channels_last", steps,
                             warmup, sync)
    out["infer_step_ms"] = round(1000 * infer_s / steps, 2)
    out["infer_img_s"] = round(steps * cfg.batch_size / infer_s, 2)
    return out


def autocast_ctx(device_type: str, precision: str):
    import torch
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type, dtype=getattr(torch, DTYPES[precision]))


def time_inference(model, x, precision: str, channels_last: bool, steps: int, warmup: int, sync) -> float:
    """Seconds for `steps` forward passes after `warmup` untimed ones."""
    import torch
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


def format_row(r: dict) -> str:
    gm = f"{float(r['gmacs']):.2f} GMACs" if r.get("gmacs") not in ("", None) else "GMACs n/a"
    mem = "peak mem" if r["mem_method"] == "cuda_max_allocated" else "peak RSS +"
    opts = [r["precision"], r["memory_format"]] + (["compile"] if r["compile"] else [])
    return (f"{r['arch']} {r['img_size']}px bs{r['batch_size']} {'/'.join(opts)} on {r['device']} "
            f"({r['threads']} threads): train {r['train_img_s']:.1f} img/s, infer {r['infer_img_s']:.1f} img/s, "
            f"{r['params'] / 1e6:.1f} M params, {gm}/img, {mem} {r['peak_mem_mb']:.0f} MB")


def cmd_speed(ns: argparse.Namespace) -> int:
    from .record import one_line
    try:
        row = measure(ns.arch, img_size=ns.size, batch_size=ns.bs, precision=ns.precision,
                      channels_last=ns.channels_last, compile=ns.compile, steps=ns.steps, warmup=ns.warmup,
                      device=ns.device, results_dir=ns.results_dir)
    except ConfigError:
        raise
    except Exception as e:
        print(f"bench: speed {ns.arch} failed: {one_line(e)} (recorded in {speed_path(ns.results_dir)})",
              file=sys.stderr)
        return 1
    print(format_row(row))
    print(f"bench: appended to {speed_path(ns.results_dir)}", file=sys.stderr)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("speed", help="training/inference images/s, params, GMACs and peak memory of one arch",
                       description="Throughput on synthetic input through the harness's Learner; one row appended "
                                   "to RESULTS_DIR/speed.csv.")
    p.add_argument("--arch", required=True, help="registry name or timm:<name> (`bench list`)")
    # values are checked by make_config (one-line errors, exit 2), not argparse
    p.add_argument("--size", default=None, help="image side in px (default 224)")
    p.add_argument("--bs", default=None, help="batch size (default 64)")
    p.add_argument("--precision", default="fp32", help="fp32 | bf16 | fp16 (autocast on the device)")
    p.add_argument("--channels-last", nargs="?", const="true", default="auto", metavar="auto|true|false",
                   help="model and input in channels_last memory format (bare flag: true; default auto: what "
                        "measured faster on this device class, see docs/benchmarks.md)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (compile time is in warmup_s)")
    p.add_argument("--steps", default=None, help="timed batches (default 20 on CUDA, 5 on CPU)")
    p.add_argument("--warmup", default=None, help="untimed batches first (default 5 on CUDA, 2 on CPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--results-dir", default="results")
    p.set_defaults(func=cmd_speed)
