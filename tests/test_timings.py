"""Recorded run times are training time only: a callback that is slow when a fit starts (as MLflow's tracker is on
a fresh store) or after each epoch changes none of them; and the sweep's per-run line says what it counts."""
from __future__ import annotations

import time

from conftest import tiny_config
from bench.files import read_rows
from bench.train.record import index_path

SLOW = 0.6  # seconds the fake tracker sleeps at each fit's start and after each epoch


def test_tracker_start_up_is_not_training_time(tiny_folder, results_dir, monkeypatch):
    from fastai.callback.core import Callback
    import bench.train.track as track
    from bench.train.protocol import run

    class SlowTracker(Callback):
        order = 71  # where MlflowTracker sits: after the epoch log

        def before_fit(self):
            time.sleep(SLOW)

        def after_epoch(self):
            time.sleep(SLOW)

        def finish(self, row):
            pass

    monkeypatch.setattr(track, "tracker_for", lambda cfg, row: SlowTracker())
    row = run(tiny_config(tiny_folder, results_dir, head_epochs=1, ft_epochs=2))
    epochs = read_rows(results_dir / row["epoch_log"])
    by_phase = {p: sum(float(e["seconds"]) for e in epochs if e["phase"] == p) for p in ("1", "2")}
    # the same clock readings, rounded per epoch (3 decimals) vs per phase: equal within the rounding; the old
    # wall clock around fit counted SLOW once per fit start and once per epoch
    assert abs(row["phase1_seconds"] - by_phase["1"]) < 0.005
    assert abs(row["phase2_seconds"] - by_phase["2"]) < 0.005
    assert abs(row["total_seconds"] - row["phase1_seconds"] - row["phase2_seconds"]) < 0.002
    stored = read_rows(index_path(results_dir))[0]
    assert float(stored["total_seconds"]) == row["total_seconds"]


def test_sweep_line_says_what_its_seconds_count():
    from bench.sweep.plan import run_seconds
    line = run_seconds({"seconds": 11.2, "row": {"total_seconds": "3.04"}})
    assert line == "training 3 s (11 s in all with the worker's start-up)"
    assert run_seconds({"seconds": 11.2, "row": {"total_seconds": ""}}) == "11 s in all with the worker's start-up"
