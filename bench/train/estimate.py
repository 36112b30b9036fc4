"""What a run will cost before it has run: seconds per batch from a few timed batches, times the batches of the
protocol's epochs.

Two users: `bench check` measures a few batches of each kind (frozen, unfrozen, validation) through the run's own
data pipeline and Learner (`measure`), and every training run carries `estimate_callback`, which times its first
training batches and says `bench: estimated ... per run` while the run has just begun. The callback sees only the
first phase's batches; the other kinds are scaled from them by ratios measured with `bench check` (UNFROZEN, VALID:
docs/benchmarks.md, "Estimates").
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..console import console_mode
from ..files import atomic_write
from .fastpath import keep_freed_memory

# An unfrozen (phase 2) training batch costs about this many frozen (phase 1) ones: with train_bn the gradient
# already flows through the whole body in phase 1, so the body's weight gradients and their optimizer step are what
# is added. A validation batch (forward only, no augmentation) costs about VALID frozen training batches. Medians of
# eight measurements (resnet18 and tf_efficientnet_lite0, 32-224 px: 1.27-2.17 and 0.14-0.54; docs/benchmarks.md,
# "Estimates"), so the first line can be off by a third either way; `bench check` measures every kind instead.
UNFROZEN = 1.7
VALID = 0.4
WARMUP = 1         # the first batch builds oneDNN's plans and starts the loaders: not timed
MIN_TIMED = 2      # timed batches at least ...
MAX_TIMED = 5      # ... and at most, stopping once TIMED_SECONDS are measured
TIMED_SECONDS = 3.0
ESTIMATES_ENV = "BENCH_ESTIMATES"  # a sweep's folder where its quiet workers leave their estimate


@dataclass
class RunCost:
    """Seconds per batch of each kind and the batches of one epoch; `setup` is what a run spends before its first
    batch (data loaders, model)."""
    frozen: float
    unfrozen: float
    valid: float
    train_batches: int
    valid_batches: int
    setup: float = 0.0
    measured: str = ""  # how the figures were had, for the line that shows them

    def epoch(self, phase: int) -> float:
        step = self.frozen if phase == 1 else self.unfrozen
        return self.train_batches * step + self.valid_batches * self.valid

    def run(self, head_epochs: int, ft_epochs: int) -> float:
        return self.setup + head_epochs * self.epoch(1) + ft_epochs * self.epoch(2)

    @classmethod
    def from_first_batches(cls, seconds: float, phase: int, train_batches: int, valid_batches: int,
                           measured: str = "") -> "RunCost":
        """The run's cost from one kind of batch (`phase`'s training batches), the others by the ratios above."""
        frozen = seconds if phase == 1 else seconds / UNFROZEN
        return cls(frozen, frozen * UNFROZEN, frozen * VALID, train_batches, valid_batches, measured=measured)


def duration(seconds: float) -> str:
    """`45 s`, `3 min 20 s`, `26 min`, `1 h 05 min`: as precise as an estimate deserves."""
    s = int(round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {round(s % 3600 / 60):02d} min"


def estimate_line(cost: RunCost, head_epochs: int, ft_epochs: int) -> str:
    return (f"bench: estimated {duration(cost.run(head_epochs, ft_epochs))} per run ({head_epochs}+{ft_epochs} "
            f"epochs of {cost.train_batches} training + {cost.valid_batches} validation batches; "
            f"{cost.epoch(1):.1f} s a frozen epoch, {cost.epoch(2):.1f} s an unfrozen one{cost.measured})")


def estimate_callback(head_epochs: int, ft_epochs: int, run_id: str = "", say=None):
    """A fastai callback that times the first training batches of a run's first fit (the data loading between them
    included) and says the run's estimated time once: one `bench: estimated ...` line on stderr, or, in a quiet sweep
    worker (BENCH_CONSOLE=off) given a folder in BENCH_ESTIMATES, a `<run_id>.json` there for the sweep to show.
    It never changes what trains."""
    from fastai.callback.core import Callback

    def tell(cost: RunCost) -> None:
        if say is not None:
            return say(cost)
        if console_mode() != "off":
            print(estimate_line(cost, head_epochs, ft_epochs), file=sys.stderr)
            return
        folder = os.environ.get(ESTIMATES_ENV)
        if folder and run_id and Path(folder).is_dir():  # not on a Ray node without the driver's disk
            data = {"run_id": run_id, "seconds": cost.run(head_epochs, ft_epochs), "line": estimate_line(
                cost, head_epochs, ft_epochs)}
            try:
                atomic_write(Path(folder) / f"{run_id}.json", json.dumps(data).encode())
            except OSError:  # the sweep has ended meanwhile: it shows no estimate
                pass

    class Estimate(Callback):
        order = 90  # after the epoch log's per-batch work, which is part of what a batch costs
        done = False

        def before_train(self):
            self.times = [time.perf_counter()] if not self.done else []

        def after_batch(self):
            if self.done or not self.training:
                return
            self.times.append(time.perf_counter())
            timed = len(self.times) - 1 - WARMUP
            if timed >= MAX_TIMED or (timed >= MIN_TIMED and self.times[-1] - self.times[WARMUP] >= TIMED_SECONDS):
                self._tell()

        def after_train(self):
            if not self.done and len(self.times) > 1:  # an epoch shorter than the timed batches
                self._tell()

        def _tell(self):
            self.done = True
            start = WARMUP if len(self.times) > WARMUP + 1 else 0
            n = len(self.times) - 1 - start
            per_batch = (self.times[-1] - self.times[start]) / n
            phase = 1 if head_epochs else 2  # the protocol's first fit is phase 1 unless it has no epochs
            tell(RunCost.from_first_batches(per_batch, phase, len(self.dls.train), len(self.dls.valid),
                                            f"; from {n} timed batch(es)"))

    return Estimate()


def measure(cfg, root: Path, items, stats=None, steps: int = MIN_TIMED) -> RunCost:
    """`cfg`'s seconds per batch of each kind on this machine, through the run's own pipeline (pre-resized images,
    item and batch transforms, Learner, memory format): `steps` timed batches of frozen training, unfrozen training
    and validation each, after WARMUP untimed ones, on as few images as that takes. Trains nothing that is kept."""
    import pandas as pd
    import torch
    from fastai.callback.core import Callback, CancelTrainException, CancelValidException
    from ..data.loaders import make_dls
    from .learner import build_model, make_learner, resolve_device, seed_all
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    keep_freed_memory(device)
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_all(cfg.seed)
    train, valid = items[~items["is_valid"]], items[items["is_valid"]]
    n_train = (WARMUP + steps) * cfg.batch_size
    sample = pd.concat([train.sample(min(n_train, len(train)), random_state=0),  # every class, not the first one's
                        valid.sample(min(steps * cfg.batch_size, len(valid)), random_state=0)], ignore_index=True)
    dls = make_dls(cfg, root, sample, device=device, stats=stats)
    learn = make_learner(cfg, dls, build_model(cfg, n_classes=len(dls.vocab)))
    setup = time.perf_counter() - t0
    times: dict[bool, list[float]] = {}

    class Clock(Callback):
        """Times the batches of each kind and stops each as soon as it is measured: after `steps` timed batches,
        or one when that one took TIMED_SECONDS already (a 224-px batch on 2 cores: tens of seconds each)."""
        order = 90

        def before_train(self):
            times[True] = [time.perf_counter()]

        def before_validate(self):
            if False in times:  # measured in the first fit
                raise CancelValidException
            times[False] = [time.perf_counter()]

        def after_batch(self):
            t = times[self.training]
            t.append(time.perf_counter())
            skip = WARMUP if self.training else 0  # the first validation batch is timed: the model is warm
            timed = len(t) - 1 - skip
            if timed >= steps or (timed >= 1 and t[-1] - t[skip] >= TIMED_SECONDS):
                raise CancelTrainException if self.training else CancelValidException

    def per_batch(t: list[float], skip: int) -> float:
        start = skip if len(t) > skip + 1 else 0
        return (t[-1] - t[start]) / max(1, len(t) - 1 - start)

    learn.add_cb(Clock())
    with learn.no_bar(), learn.no_logging():
        learn.freeze()
        learn.fit(1, cfg.head_lr)
        frozen, valid_s = per_batch(times[True], WARMUP), per_batch(times[False], 0)
        learn.unfreeze()
        learn.fit(1, cfg.ft_lr_max)
        unfrozen = per_batch(times[True], WARMUP)
    n_train_all = int((~items["is_valid"]).sum())
    n_valid_all = int(items["is_valid"].sum())
    return RunCost(frozen, unfrozen, valid_s, n_train_all // cfg.batch_size, -(-n_valid_all // cfg.batch_size),
                   setup=setup, measured="; measured")

