"""Protocol facts on real ImageNet weights (issue 17 items 2 and 5), paired over seeds at the transfer demo's settings.

    python benchmarks/transfer.py --results /tmp/transfer [--seeds 101 102 103] [--arch tf_efficientnet_lite0]

Runs, for each seed, the demo's pretrained run of `--arch` (experiments/transfer.yaml's protocol) and four variants
that change one thing each:
- `imagenet_stats`: inputs normalized with ImageNet's statistics instead of the 0.5 / 0.5 the weights were trained
  with (what bench fed every body before);
- `custom_groups`: `layer_groups=custom` (stem + two stages / rest / head) instead of the default split;
- `manual_head`: the hand-built head (plain BatchNorm1d) instead of fastai's create_head;
- `random_init`: the same body from random init.
Prints per variant the paired differences (variant - baseline) of phase-1 and final accuracy: mean, sd, n, and the
per-seed values; the phase-2 gain (final - phase 1) of the baseline too. Each variant has its own results folder
under --results (the statistics variant has the baseline's run id: the identity follows the architecture).
`--baseline DIR` takes the baseline and random-init runs from a finished `bench sweep experiments/transfer.yaml
--results-dir DIR` instead of running them again (same configs, same run ids). A run already in its folder is read,
not trained again: variants can be measured by several processes, then summarised by one more call.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {"baseline": {}, "imagenet_stats": {}, "custom_groups": {"layer_groups": "custom"},
            "manual_head": {"head": "manual"}, "random_init": {"pretrained": "false"}}


def demo_config(arch: str, seed: int, results: Path, **over):
    """The run experiments/transfer.yaml makes for (arch, seed), with `over` applied."""
    from bench.sweep.experiment import load_experiment
    exp = load_experiment(Path(__file__).resolve().parents[1] / "experiments" / "transfer.yaml")
    base = next(c for c in exp.configs if c.arch == arch and c.pretrained == "true")
    return base.replace(seed=seed, results_dir=str(results), **over)


def phase_accuracy(results: Path, row: dict, phase: int) -> float:
    with open(results / row["epoch_log"]) as f:
        return float([r for r in csv.DictReader(f) if r["phase"] == str(phase)][-1]["accuracy"])


def from_sweep(results: Path, cfg) -> dict | None:
    """The ok row of exactly this run (by run id) in `results`, if it has one."""
    from bench.train.prepare import prepare
    run_id = prepare(cfg).run_id
    path = results / "runs.csv"
    rows = [r for r in csv.DictReader(open(path)) if r["run_id"] == run_id and r["status"] == "ok"] \
        if path.is_file() else []
    return rows[-1] if rows else None


def run_variant(name: str, cfg) -> dict:
    from bench.train import archs
    from bench.train.protocol import run
    original = archs.ArchSpec.input_stats
    if name == "imagenet_stats":  # what bench fed every body before: ImageNet's statistics
        from fastai.vision.core import imagenet_stats
        archs.ArchSpec.input_stats = lambda self: (tuple(imagenet_stats[0]), tuple(imagenet_stats[1]))
    try:
        return run(cfg)
    finally:
        archs.ArchSpec.input_stats = original


def summary(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):+.3f} ± {sd:.3f} (n={len(values)}; {', '.join(f'{v:+.3f}' for v in values)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--arch", default="tf_efficientnet_lite0")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--baseline", type=Path, help="a finished sweep of experiments/transfer.yaml")
    ns = ap.parse_args()
    acc: dict[str, dict[int, tuple[float, float, float]]] = {v: {} for v in ns.variants}
    for name in ns.variants:  # in the order given: with --baseline, put baseline last (the sweep may still run)
        for seed in ns.seeds:
            results = ns.results / name
            if ns.baseline and name in ("baseline", "random_init"):
                results = ns.baseline
            cfg = demo_config(ns.arch, seed, results, **VARIANTS[name])
            row = from_sweep(results, cfg) or run_variant(name, cfg)
            acc[name][seed] = (phase_accuracy(results, row, 1), float(row["final_accuracy"]),
                               float(row["total_seconds"]))
            print(f"{time.strftime('%H:%M:%S')} seed {seed} {name}: phase 1 {acc[name][seed][0]:.4f}, final "
                  f"{acc[name][seed][1]:.4f}, {acc[name][seed][2]:.0f} s, normalize {row['normalize']}", flush=True)
    base = acc.get("baseline", {})
    if base:
        print(f"baseline phase-2 gain (final - phase 1): {summary([base[s][1] - base[s][0] for s in ns.seeds])}")
    for name in ns.variants:
        if name == "baseline" or not base:
            continue
        for i, what in ((0, "phase 1"), (1, "final")):
            print(f"{name} - baseline, {what}: {summary([acc[name][s][i] - base[s][i] for s in ns.seeds])}")


if __name__ == "__main__":
    main()
