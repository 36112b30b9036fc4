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
from datetime import datetime, timezone
from pathlib import Path

from ..config import ConfigError, make_config
from ..console import one_line, recorded_or_exit
from ..files import append_rows, check_writable
from ..provenance import git_sha, host
from .archs import count_params_1k, get_arch
from .fastpath import keep_freed_memory, memory_format
from .libraries import VERSION_FIELDS, versions
from .timing import (N_CLASSES, PeakMemory, count_gmacs, make_clock, synchronizer, synthetic_dls,
                     time_inference)

SPEED_FIELDS = [
    "timestamp", "arch", "family", "source", "img_size", "batch_size", "precision", "channels_last",
    "memory_format", "compile", "device", "threads", "train_img_s", "infer_img_s", "train_step_ms", "infer_step_ms",
    "params", "params_1k", "gmacs", "peak_mem_mb", "mem_method", "n_classes", "warmup_steps", "steps", "warmup_s",
    "deterministic", "status", "error", *VERSION_FIELDS, "git_sha", "host",
]


def speed_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "speed.csv"


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
    import torch  # deferred, with the two below: `bench --help` imports this module to list `speed`
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
    spec = get_arch(cfg.arch)  # unknown names: ConfigError with the closest names
    if write:  # before minutes of measuring, not after
        check_writable(results_dir)
    keep_freed_memory(dev)  # as training runs do, so the speed measured is theirs
    row = dict(arch=cfg.arch, family=spec.family, source=spec.source, img_size=cfg.img_size,
               batch_size=cfg.batch_size, precision=cfg.precision, channels_last=cfg.channels_last,
               memory_format=memory_format(cfg.channels_last, dev, cfg.img_size), compile=compile,
               device=device_name(dev), threads=torch.get_num_threads(), n_classes=N_CLASSES, warmup_steps=warmup,
               steps=steps, deterministic=True, git_sha=git_sha(), host=host(), **versions())
    try:
        row.update(_measure(cfg, spec, dev, steps, warmup, compile, macs), status="ok", error="")
    except BaseException as e:
        row.update(status="failed", error=one_line(e))
        raise
    finally:
        row["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if write:
            append_rows(speed_path(results_dir), [row], SPEED_FIELDS)
    return row


def _measure(cfg, spec, dev, steps: int, warmup: int, compile: bool, macs: bool = True) -> dict:
    import torch  # deferred, as in measure
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


def format_row(r: dict) -> str:
    gm = f"{float(r['gmacs']):.2f} GMACs" if r.get("gmacs") not in ("", None) else "GMACs n/a"
    mem = "peak mem" if r["mem_method"] == "cuda_max_allocated" else "peak RSS +"
    opts = [r["precision"], r["memory_format"]] + (["compile"] if r["compile"] else [])
    return (f"{r['arch']} {r['img_size']}px bs{r['batch_size']} {'/'.join(opts)} on {r['device']} "
            f"({r['threads']} threads): train {r['train_img_s']:.1f} img/s, infer {r['infer_img_s']:.1f} img/s, "
            f"{params_label(r)}, {gm}/img, {mem} {r['peak_mem_mb']:.0f} MB")


def params_label(r: dict) -> str:
    """Both counts, each saying which head it has: `params_1k` (the library's own 1000-class model, as `bench
    list` and the report show it) and `params` (what was timed: the body with bench's fastai head for 1000
    classes, which is larger: AdaptiveConcatPool doubles the features and a 512-unit hidden layer is added)."""
    return (f"{int(r['params_1k']) / 1e6:.1f} M params (library's 1000-class model, as `bench list`; "
            f"{int(r['params']) / 1e6:.1f} M as timed, with bench's head)")


def cmd_speed(ns: argparse.Namespace) -> int:
    row, code = recorded_or_exit(
        f"speed {ns.arch}", speed_path(ns.results_dir),
        lambda: measure(ns.arch, img_size=ns.size, batch_size=ns.bs, precision=ns.precision,
                        channels_last=ns.channels_last, compile=ns.compile, steps=ns.steps, warmup=ns.warmup,
                        device=ns.device, results_dir=ns.results_dir))
    if row is None:
        return code
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
