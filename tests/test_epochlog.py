"""The epoch log is a fastai callback of its own (bench.train.epochlog.EpochLog): usable on any Learner, one row per
epoch in the columns the protocol writes, one console line per epoch."""
from __future__ import annotations

import io

from bench.files import read_rows
from bench.train.epochlog import EPOCH_FIELDS, EpochLog


def test_epoch_log_on_a_plain_learner(tmp_path):
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    from fastai.test_utils import synth_learner
    stream = io.StringIO()
    log = EpochLog(tmp_path / "epochs.csv", "run1", "a1", total=2, console="lines", stream=stream)
    learn = synth_learner(n_trn=4, n_val=2, cbs=[log])
    learn.fit_one_cycle(2, 1e-2)
    rows = read_rows(tmp_path / "epochs.csv")
    assert list(rows[0]) == EPOCH_FIELDS
    assert [(r["run_id"], r["attempt"], r["epoch"], r["phase"]) for r in rows] == [("run1", "a1", "1", "1"),
                                                                                    ("run1", "a1", "2", "1")]
    assert log.rows[-1]["train_loss"] is not None and log.train_images > 0 and log.phase_seconds[1] > 0
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("bench: epoch 2/2 (phase 1 frozen 2/2): train loss")
