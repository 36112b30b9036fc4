"""The report's verdict on awkward results (partial sweeps, repeats, spellings, ragged instance sets, a race's own
log, pretraining checkpoints): bench/stats.py's one comparison, per section of scored images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.report import build as report
from test_report import run_row, write_csv


def build(tmp_path: Path, rows: list[dict], **kw):
    res = tmp_path / "results"
    write_csv(res / "runs.csv", rows)
    return report.build_report(res, **kw)


def rows_of(arch: str, accs: dict[int, float], **kw) -> list[dict]:
    """One ok row per seed (fold 0)."""
    return [run_row(arch, seed, acc, **kw) for seed, acc in accs.items()]


def test_partial_sweep_compares_on_shared_instances_and_says_how_to_fill(tmp_path):
    """Issue 16's case: unpaired means recommended the model with the easier seeds."""
    rows = (rows_of("resnet34", {0: 0.95, 1: 0.95, 2: 0.70, 3: 0.70, 4: 0.70})
            + rows_of("resnet50", {2: 0.92, 3: 0.93, 4: 0.92}))
    result = build(tmp_path, rows)
    d = result.decisions["digits"]
    assert "Use resnet34" not in result.html.read_text() and d.pick == "resnet50"
    s = result.summary.set_index("model")
    assert s.loc["resnet34", "gap"] == pytest.approx(0.67 / 3) and s.loc["resnet34", "n_paired"] == 3
    assert s.loc["resnet50", "lacking"] == "seed 0 fold 0; seed 1 fold 0" and s.loc["resnet34", "lacking"] == ""
    assert "Missing: resnet50 lacks seed 0 fold 0; seed 1 fold 0." in d.sentence
    assert len(d.todo) == 1 and d.todo[0].startswith("make sweep EXP=quick DATASET=digits")


def test_partial_bench_runs_get_one_bench_run_per_missing_instance(tmp_path):
    rows = (rows_of("resnet34", {s: 0.70 + 0.001 * s for s in range(8)}, experiment="")
            + rows_of("resnet50", {s: 0.90 + 0.001 * s for s in range(2, 8)}, experiment=""))
    d = build(tmp_path, rows).decisions["digits"]
    assert d.pick == "resnet50" and d.sentence.startswith("Use resnet50")
    assert len(d.todo) == 2 and all(c.startswith("bench run --arch resnet50 --dataset digits ") for c in d.todo)
    assert "--seed 0 --fold 0" in d.todo[0] and "--seed 1 --fold 0" in d.todo[1]


def test_an_instance_recorded_twice_counts_once(tmp_path):
    rows = rows_of("resnet34", {0: 0.80, 1: 0.82, 2: 0.84})
    again = run_row("resnet34", 0, 0.86, run_id="0123456789ab", attempt="20250102T000000000000")
    result = build(tmp_path, rows + [again])
    s = result.summary.iloc[0]
    assert s.n == 3 and s.acc_mean == pytest.approx((0.86 + 0.82 + 0.84) / 3)  # the latest ok attempt kept


def test_one_instance_under_two_dataset_spellings_counts_once(tmp_path):
    rows = rows_of("resnet34", {0: 0.80, 1: 0.82, 2: 0.84})
    spelled = {**run_row("resnet34", 2, 0.85, dataset="digits-1a2b3c4d", attempt="20250102T000000000000"),
               "dataset_fingerprint": "fp-digits", "split_hash": "sh-digits"}
    s = build(tmp_path, rows + [spelled]).summary
    assert len(s) == 1 and s.n.iloc[0] == 3 and s.dataset.iloc[0] == "digits-1a2b3c4d"


def test_a_pretrained_and_a_random_init_candidate_get_one_verdict(tmp_path):
    """Issue 24: "pretrained lite0 or xresnet18?" was answered by the race and refused by the report (two
    sections). On the same scored images they are two candidates of one verdict, labelled by what differs."""
    rows = (rows_of("resnet34", {0: 0.60, 1: 0.61, 2: 0.62}, img_size=32, ft_epochs=4)
            + rows_of("seresnet50", {0: 0.95, 1: 0.94, 2: 0.96}, weights_used="torchvision:IMAGENET1K_V1"))
    result = build(tmp_path, rows)
    assert list(result.decisions) == ["digits"]
    labels = sorted(result.summary.model)
    assert labels == ["resnet34 (32 px, ft_epochs=4, random init)", "seresnet50 (64 px, ft_epochs=2, ImageNet)"]
    assert result.decisions["digits"].pick == labels[1]


def test_ragged_instance_sets_never_rank_by_name():
    """Random ragged results: the leader is the candidate no other leads on their shared instances (or no
    verdict), whatever the names."""
    from bench.stats import verdict
    import pandas as pd
    rng = np.random.default_rng(7)
    for _ in range(8):
        rows = []
        for a in ["a", "b", "c", "d"]:
            seeds = sorted(rng.choice(12, size=int(rng.integers(3, 13)), replace=False))
            rows += [dict(candidate=a, seed=str(s), fold="0", run_id=f"{a}{s}", n_valid=300,
                          final_accuracy=0.8 + 0.02 * rng.standard_normal() + 0.05 * (s % 3)) for s in seeds]
        frame = pd.DataFrame(rows)
        v = verdict(frame)
        renamed = verdict(frame.assign(candidate=frame.candidate.map({"a": "z", "b": "y", "c": "x", "d": "w"})))
        assert v.kind == renamed.kind
        if v.leader:
            assert {"a": "z", "b": "y", "c": "x", "d": "w"}[v.leader] == renamed.leader
            assert (v.comparisons[v.comparisons.claim != "not compared"]["diff"] >= -1e-12).all()


def test_pretraining_contrast_one_line_per_checkpoint(tmp_path):
    """Issue 24 case 9: an arch's ImageNet checkpoints (V1 91 %, V2 61 %) were reduced to the last-sorted one."""
    rows = (rows_of("resnet34", {0: 0.90, 1: 0.92, 2: 0.91}, weights_used="torchvision:IMAGENET1K_V1")
            + rows_of("resnet34", {0: 0.60, 1: 0.62, 2: 0.61}, weights_used="torchvision:IMAGENET1K_V2")
            + rows_of("resnet34", {0: 0.50, 1: 0.52, 2: 0.51}, pretrained="false"))
    g = build(tmp_path, rows).pretraining.set_index("checkpoint")
    assert sorted(g.index) == ["torchvision:IMAGENET1K_V1", "torchvision:IMAGENET1K_V2"]
    assert g.gain["torchvision:IMAGENET1K_V1"] == pytest.approx(0.40)
    assert g.gain["torchvision:IMAGENET1K_V2"] == pytest.approx(0.10)


def test_runs_from_two_machines_pool_and_the_page_says_so(tmp_path):
    """Issue 23: the context is recorded, not hashed; a section pooling two CPU models names them and lists each
    run with its machine."""
    ctx = {"AMD EPYC (avx512)": "AMD EPYC (avx512) · 1 thread · contiguous · 0 loader workers",
           "Intel Xeon (avx512)": "Intel Xeon (avx512) · 2 threads · contiguous · 0 loader workers"}
    rows = (rows_of("resnet34", {0: 0.80, 1: 0.82}, context=ctx["AMD EPYC (avx512)"])
            + rows_of("resnet34", {2: 0.84}, context=ctx["Intel Xeon (avx512)"]))
    result = build(tmp_path, rows)
    assert result.summary.n.tolist() == [3]  # one candidate: the machine is not a variant
    page = result.html.read_text()
    assert "runs from 2 CPU models, pooled (AMD EPYC (avx512): 2 runs; Intel Xeon (avx512): 1 run)" in page
    assert "3 run(s) and the machines that ran them" in page and ctx["Intel Xeon (avx512)"] in page
