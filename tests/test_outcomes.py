"""Per-image outcomes (docs/SCHEMA.md): one gzipped CSV per run, written whole or not at all, through a Ray spool
too, and read back by the report."""
from __future__ import annotations

import gzip
import os

import pandas as pd
import pytest

from bench.report.outcomes import correct_by_item, read_outcomes
from bench.sinks import FileSink, RowSpool, replay, write_rows
from bench.train.outcomes import OUTCOME_FIELDS
from conftest import tiny_config

ROWS = [dict(split="valid", item="a/1.png", label="a", pred="b", p_true=0.25),
        dict(split="valid", item="b/2.png", label="b", pred="b", p_true=0.9)]


def test_a_gz_write_replaces_the_whole_file_with_the_same_bytes_each_time(tmp_path):
    path = tmp_path / "ds" / "outcomes" / "r.csv.gz"
    write_rows(path, ROWS, OUTCOME_FIELDS)
    first = path.read_bytes()
    write_rows(path, ROWS, OUTCOME_FIELDS)  # a second attempt of the run: replaced, not appended
    assert path.read_bytes() == first
    assert gzip.decompress(first).decode().splitlines() == [
        "split,item,label,pred,p_true", "valid,a/1.png,a,b,0.25", "valid,b/2.png,b,b,0.9"]


def test_a_failed_write_leaves_no_half_file_nor_a_temporary(tmp_path, monkeypatch):
    import bench.sinks as sinks
    path = tmp_path / "outcomes" / "r.csv.gz"

    def killed(*a):
        raise KeyboardInterrupt  # stands for the process stopping between writing and renaming
    monkeypatch.setattr(sinks.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_rows(path, ROWS, OUTCOME_FIELDS)
    assert os.listdir(path.parent) == []


def test_outcomes_travel_through_a_spool_to_the_driver(tmp_path):
    spool = RowSpool(tmp_path / "spool.jsonl")
    spool.write("ds/outcomes/r.csv.gz", ROWS, OUTCOME_FIELDS)
    spool.write("runs.csv", [dict(run_id="r", outcomes="ds/outcomes/r.csv.gz")], ["run_id", "outcomes"])
    replay(RowSpool.load(tmp_path / "spool.jsonl"), tmp_path / "results")
    got = read_outcomes(tmp_path / "results", {"outcomes": "ds/outcomes/r.csv.gz"})
    assert got.to_dict("records") == ROWS


def test_a_row_without_outcomes_reads_as_none(tmp_path):
    assert read_outcomes(tmp_path, {"outcomes": float("nan")}) is None
    assert read_outcomes(tmp_path, {}) is None
    assert read_outcomes(tmp_path, {"outcomes": "gone/outcomes/x.csv.gz"}) is None


@pytest.mark.slow
def test_a_run_scores_every_validation_image_in_order_and_repeats_exactly(tiny_folder, results_dir, tmp_path):
    from bench.train.prepare import prepare
    from bench.train.protocol import run
    cfg = tiny_config(tiny_folder, results_dir, seed=3)
    spool = RowSpool(tmp_path / "spool.jsonl")
    row = run(cfg, sink=spool)  # as a Ray task runs: nothing under results_dir until the driver replays
    assert row["status"] == "ok" and not (results_dir / row["outcomes"]).exists()
    replay(RowSpool.load(tmp_path / "spool.jsonl"), results_dir)
    out = read_outcomes(results_dir, row)
    valid = prepare(cfg).items.query("is_valid")
    assert list(out.columns) == OUTCOME_FIELDS and len(out) == int(row["n_valid"]) == len(valid)
    assert out["item"].tolist() == valid["path"].tolist() and (out["split"] == "valid").all()
    assert out["label"].tolist() == valid["label"].tolist()
    assert abs((out["pred"] == out["label"]).mean() - float(row["final_accuracy"])) < 1e-9
    assert out["p_true"].between(0, 1).all()
    again = run(cfg, sink=FileSink(results_dir))  # the same run id again, written directly: the same outcomes
    assert again["outcomes"] == row["outcomes"]
    pd.testing.assert_frame_equal(read_outcomes(results_dir, again), out)
    assert correct_by_item(out).index.tolist() == valid["path"].tolist()


@pytest.mark.slow
def test_a_run_that_fails_while_writing_its_outcomes_is_failed_and_leaves_no_file(tiny_folder, results_dir,
                                                                                   monkeypatch):
    import bench.sinks as sinks
    from bench.files import read_rows
    from bench.train.protocol import run
    from bench.train.record import index_path

    replace = os.replace

    def full_disk(src, dst):  # only the outcomes file's rename fails (os is one module: the split file uses it too)
        if str(dst).endswith(".csv.gz"):
            raise OSError(28, "No space left on device")
        replace(src, dst)
    monkeypatch.setattr(sinks.os, "replace", full_disk)
    with pytest.raises(OSError):
        run(tiny_config(tiny_folder, results_dir, head_epochs=0))
    rows = read_rows(index_path(results_dir))
    assert [r["status"] for r in rows] == ["failed"] and rows[0]["outcomes"] == ""
    folder = results_dir / rows[0]["dataset"] / "outcomes"
    assert not folder.exists() or os.listdir(folder) == []
