"""The per-epoch log: a fastai callback that appends one row per epoch to the run's epoch log and shows progress.

It replaces fastai's ProgressCallback, which redraws its bar into log files: a vanishing batch bar on a terminal, one
line per epoch otherwise, nothing in a sweep worker (bench.console.console_mode). It also times the training batches
of each epoch (validation excluded) for the run's `train_img_per_s`, and each phase's epochs for its recorded times.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastcore.basics import noop
from tqdm.auto import tqdm

from ..console import console_mode, epoch_line
from ..files import append_rows

EPOCH_FIELDS = ["run_id", "attempt", "phase", "epoch", "phase_epoch", "train_loss", "valid_loss", "accuracy",
                "top_k_accuracy", "lr", "mom", "seconds", "train_seconds"]


class EpochLog(Callback):
    """One row per epoch to `path` (or `sink.write(path, ...)`, `path` relative to the sink's folder: bench.sinks;
    neither: rows kept in `rows` only) and progress on `stream` (`console`: a console_mode, else the stream's).
    `k`: the top-k really used; `total`: epochs over both phases (both only label the console line)."""
    order = 70  # after Recorder (50) has the epoch's metrics
    run_phase, run_epoch = 1, 0  # set by the protocol; the epoch count runs on across both phases

    def __init__(self, path: Path | None, run_id: str, attempt: str, k: int | None = None, total: int | None = None,
                 console: str | None = None, stream=None, sink=None):
        self.log_path, self.run_id, self.attempt, self.k, self.total = path, run_id, attempt, k, total
        self.stream, self.sink, self.mode = stream, sink, console or console_mode(stream)
        self.rows: list[dict] = []
        self.train_seconds, self.train_images = 0.0, 0
        # seconds of each phase's epochs (training batches + validation), unrounded: a run's recorded times.
        # A tracker's start-up (before_fit) or its per-epoch logging (after this callback) falls outside.
        self.phase_seconds: dict[int, float] = {}
        self.bar = None

    def after_create(self):
        self.learn.remove_cbs([cb for cb in self.learn.cbs if isinstance(cb, ProgressCallback)])
        self.learn.logger = noop  # Recorder would print each epoch's raw list

    def before_epoch(self):
        self.epoch_start, self.epoch_train_s = time.perf_counter(), 0.0

    def before_train(self):
        self.bar_start("train")
        self.sync()
        self.train_start = time.perf_counter()

    def after_batch(self):
        if self.training:
            self.train_images += len(self.learn.yb[0]) if self.learn.yb else 0
        if self.bar is not None:
            self.bar.update(1)

    def after_train(self):
        self.sync()  # CUDA: count the queued work of the last batches as training time
        self.epoch_train_s = time.perf_counter() - self.train_start
        self.train_seconds += self.epoch_train_s
        self.bar_stop()

    def before_validate(self):
        self.bar_start("valid")

    def after_validate(self):
        self.bar_stop()

    def after_epoch(self):
        self.run_epoch += 1
        seconds = time.perf_counter() - self.epoch_start
        self.phase_seconds[self.run_phase] = self.phase_seconds.get(self.run_phase, 0.0) + seconds
        row = self.epoch_row(seconds)
        self.rows.append(row)
        if self.sink is not None:
            self.sink.write(self.log_path, [row], EPOCH_FIELDS)
        elif self.log_path is not None:
            append_rows(self.log_path, [row], EPOCH_FIELDS)
        if self.mode != "off":
            print(epoch_line({**row, "phase_epochs": self.n_epoch}, self.k, self.total),
                  file=self.stream or sys.stderr, flush=True)

    def epoch_row(self, seconds: float) -> dict:
        """The epoch's row (EPOCH_FIELDS) from the Recorder's metrics and the optimizer's last hyper-parameters."""
        names = self.recorder.metric_names[1:-1]  # drop 'epoch' and 'time'
        vals = dict(zip(names, self.recorder.log[1:-1]))
        hyper = self.opt.hypers[-1]
        return dict(run_id=self.run_id, attempt=self.attempt, phase=self.run_phase, epoch=self.run_epoch,
                    phase_epoch=self.learn.epoch + 1, train_loss=vals.get("train_loss"),
                    valid_loss=vals.get("valid_loss"), accuracy=vals.get("accuracy"),
                    top_k_accuracy=vals.get("top_k_accuracy"), lr=hyper.get("lr"), mom=hyper.get("mom"),
                    seconds=round(seconds, 3), train_seconds=round(self.epoch_train_s, 3))

    def after_fit(self):
        self.bar_stop()

    def sync(self):
        dev = next(self.learn.model.parameters()).device
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def bar_start(self, what: str):
        if self.mode == "bar":
            self.bar = tqdm(total=len(self.dl), desc=f"epoch {self.run_epoch + 1} {what}", leave=False,
                            file=self.stream or sys.stderr, unit="batch", dynamic_ncols=True)

    def bar_stop(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
