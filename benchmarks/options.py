"""Memory format and precision on this machine: training (and inference) img/s of the harness's own Learner for
fp32 / channels_last / bf16 / bf16+channels_last (and torch.compile), measured so that load from other users
cancels out. These figures decide `channels_last=auto` (bench/train/fastpath.py, docs/benchmarks.md).

Why not one `bench speed` per option: on a shared 2-core machine a measurement taken a minute later sees another
load (we saw 10x swings between rounds), and building a model per measurement adds minutes of warm-up. So every
option gets its own Learner (`make_learner`: same callbacks, ChannelsLast / MixedPrecision as `bench run`) on the
same weights, built once; then short bursts of training steps alternate between the options, in a rotated order,
round after round. Options compared within one round saw nearly the same load, so the per-round ratio to fp32 is
robust; its median over rounds is reported, with the best-of ratio (fastest burst of each option: the least
disturbed figure of each) beside it.

    .venv/bin/python benchmarks/options.py [--archs resnet18 resnext50_32x4d tf_efficientnet_b3 --size 128 --bs 32
                                            --rounds 8 --burst 2 --options fp32 channels_last bf16]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

OPTIONS = {  # name -> RunConfig settings
    "fp32": dict(channels_last="false"),
    "channels_last": dict(channels_last="true"),
    "bf16": dict(precision="bf16", channels_last="false"),
    "bf16+channels_last": dict(precision="bf16", channels_last="true"),
}


def make_option(arch: str, size: int, bs: int, burst: int, settings: dict):
    """A Learner (and its clock) that trains `burst` steps of one fixed batch per fit, then stops (no validation)."""
    import torch
    from bench.config import make_config
    from bench.train.learner import build_model, make_learner, seed_all
    from bench.train.timing import N_CLASSES, PeakMemory, make_clock, synchronizer, synthetic_dls
    cfg = make_config(arch=arch, img_size=size, batch_size=bs, pretrained="false", device="cpu", **settings)
    seed_all(cfg.seed)  # same weights and batch for every option
    dev = torch.device("cpu")
    clock = make_clock(0, synchronizer(dev), PeakMemory(dev))
    learn = make_learner(cfg, synthetic_dls(bs, size, burst, 1, dev, seed=cfg.seed), build_model(cfg, N_CLASSES),
                         cbs=[clock])
    learn.unfreeze()
    return cfg, learn, clock


def train_burst(learn, clock) -> float:
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-4)
    return clock.t1 - clock.t0


def infer_burst(cfg, learn, steps: int) -> float:
    from bench.train.timing import time_inference
    x = learn.dls.train.x
    return time_inference(learn.model, x, cfg.precision, learn.memory_format == "channels_last", steps, 0,
                          lambda: None) if steps else 0.0


def compare(arch: str, a) -> None:
    names = a.options
    opts = {o: make_option(arch, a.size, a.bs, a.burst, OPTIONS[o]) for o in names}
    for o in names:  # warm-up: allocator, oneDNN primitive selection
        train_burst(*opts[o][1:])
    train = {o: [] for o in names}
    infer = {o: [] for o in names}
    n_img = a.burst * a.bs
    for r in range(a.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for o in order:
            cfg, learn, clock = opts[o]
            train[o].append(n_img / train_burst(learn, clock))
            if a.infer_steps:
                infer[o].append(a.infer_steps * a.bs / infer_burst(cfg, learn, a.infer_steps))
        print(f"{arch} round {r + 1}: " + ", ".join(f"{o} {train[o][-1]:.1f}" for o in names) + " train img/s "
              f"(load {Path('/proc/loadavg').read_text().split()[0]})", flush=True)
    base = "fp32" if "fp32" in names else names[0]
    print(f"\n| {arch} {a.size}px bs{a.bs} | train img/s median (min–max) | × {base} median of per-round "
          f"ratios (IQR) | × {base} best-of | infer img/s median | × {base} |\n|---|---|---|---|---|---|")
    for o in names:
        ratios = [t / b for t, b in zip(train[o], train[base])]
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        inf = (f"{statistics.median(infer[o]):.1f} | {statistics.median(infer[o]) / statistics.median(infer[base]):.2f}"
               if infer[o] else " | ")
        print(f"| {o} | {statistics.median(train[o]):.1f} ({min(train[o]):.1f}–{max(train[o]):.1f}) | "
              f"{statistics.median(ratios):.2f} ({q[0]:.2f}–{q[2]:.2f}) | {max(train[o]) / max(train[base]):.2f} | "
              f"{inf} |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["resnet18", "resnext50_32x4d", "tf_efficientnet_b3"])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--burst", type=int, default=2, help="training steps per option per round")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--infer-steps", type=int, default=0, help="also time this many inference batches per round")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    ap.add_argument("--options", nargs="+", default=["fp32", "channels_last", "bf16", "bf16+channels_last"],
                    choices=list(OPTIONS))
    a = ap.parse_args(argv)
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"# {a.size}px bs{a.bs}, bursts of {a.burst} training steps, {a.rounds} rounds, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {time.strftime('%H:%M')}", flush=True)
    for arch in a.archs:
        compare(arch, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
