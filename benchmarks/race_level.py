"""Does the race hold its stated level, and what do ties and close gaps cost it? Simulated races, no training
(minutes on a CPU).

1. Noisy ties without per-image outcomes: k equal candidates (binomial accuracies on 90 validation images around a
   per-instance difficulty drawn from U(0.6, 0.9)), 25 instances, 100 races: how often the race names a winner, how
   often it eliminates any of the equal candidates, and its compute.
2. Held-out-like tables (the issue 16 case): 6 archs x 15 instances, the top two equal in truth, the other four 8-15
   points below, accuracies in steps of one image; of the first 150 generator seeds, those whose top two are not
   separated by the full table (paired t and Wilcoxon p both in 0.07-0.15); each raced in the file order and 4
   random orders: how often the race names a winner.
3. With per-image outcomes (tests/test_race.py's `imaged`: 300 images a fold whose difficulty every run shares, each
   run's own noise, a seed shift of sd 0.3 logit): two candidates 0, 2 or 5 points apart (at 90 %), 15 seeds of one
   fold or 3 seeds x 5 folds, 20 worlds each: the decisions and the compute (the futility rule's trade: ties stop
   early, a true gap that starts small may stop as a tie).

    .venv/bin/python benchmarks/race_level.py
"""
from __future__ import annotations

import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.sweep.experiment import Experiment, load_experiment  # noqa: E402
from bench.sweep.race import Score, race  # noqa: E402

ARCHS = ["resnet18", "resnet34", "xresnet18", "resnet50", "resnet101", "xresnet34"]
N_VALID = 90


def experiment(archs, seeds, folds) -> Experiment:
    path = Path(tempfile.mkdtemp()) / "r.yaml"
    path.write_text(yaml.safe_dump({"dataset": "digits", "archs": archs, "seeds": list(seeds), "folds": list(folds)}))
    return load_experiment(path, results_dir=str(path.parent / "res"))


def run(exp: Experiment, acc: dict, order=None):
    where = {inst: i for i, inst in enumerate(exp.instances)}
    if order is not None:
        exp = Experiment(exp.name, exp.path, tuple(exp.cell(lab, i) for lab in exp.labels for i in order),
                         exp.labels, tuple(order))

    def evaluate(configs):
        return [Score(float(acc[c.arch][where[(c.seed, c.fold)]]), N_VALID) for c in configs]
    return race(exp, evaluate)


def noisy_ties(k: int, reps: int = 100) -> str:
    exp = experiment(ARCHS[:k], range(25), [0])
    winners = dropped = 0
    pct = []
    for rep in range(reps):
        rng = np.random.default_rng(rep)
        difficulty = rng.uniform(0.6, 0.9, 25)
        res = run(exp, {a: rng.binomial(N_VALID, difficulty) / N_VALID for a in ARCHS[:k]})
        winners += res.decision == "winner"
        dropped += len(res.survivors) < k
        pct.append(res.compute_pct)
    return (f"noisy tie, {k} equal candidates x 25 instances, no per-image outcomes: winner {winners}/{reps}, any "
            f"equal one eliminated {dropped}/{reps}, compute median {np.median(pct):.0f} %")


def heldout_like(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    base = rng.normal(0.80, 0.03, 15)
    gaps = [0, 0, -0.08, -0.10, -0.12, -0.15]
    return {a: np.round((base + g + rng.normal(0, 0.028, 15)) * N_VALID) / N_VALID for a, g in zip(ARCHS, gaps)}


def heldout(seeds: int = 150, orders: int = 5) -> str:
    from scipy import stats
    exp = experiment(ARCHS, range(5), range(3))
    tables = wins = 0
    decisions: Counter = Counter()
    for seed in range(seeds):
        acc = heldout_like(seed)
        p = stats.ttest_rel(acc["resnet18"], acc["resnet34"]).pvalue
        w = stats.wilcoxon(acc["resnet18"], acc["resnet34"]).pvalue
        if not (0.07 < p < 0.15 and 0.07 < w < 0.15):
            continue
        tables += 1
        for o in range(orders):
            order = None if o == 0 else random.Random(o).sample(exp.instances, len(exp.instances))
            res = run(exp, acc, order)
            wins += res.decision == "winner"
            decisions[res.decision] += 1
    return (f"held-out-like, 6 archs x 15 instances, top two tied, no per-image outcomes: winner in "
            f"{wins}/{tables * orders} races ({tables} tables x {orders} orders); decisions {dict(decisions)}")


def with_outcomes(worlds: int = 20) -> list[str]:
    from test_race import imaged
    lines = []
    for seeds, folds in ((range(15), [0]), (range(3), range(5))):
        exp = experiment(ARCHS[:2], seeds, folds)
        for gap in (0.0, 0.02, 0.05):
            decisions: Counter = Counter()
            pct = []
            for world in range(worlds):
                res = race(exp, imaged({"resnet18": 0.9, "resnet34": 0.9 - gap}, world=world, shift=0.3))
                decisions[res.decision] += 1
                pct.append(res.compute_pct)
            lines.append(f"per-image outcomes, 2 candidates {100 * gap:.0f} points apart, {len(exp.instances)} "
                         f"instances ({len(list(seeds))} seeds x {len(list(folds))} fold(s)), {worlds} worlds: "
                         f"{dict(decisions)}, compute mean {np.mean(pct):.0f} % (range {min(pct):.0f}-"
                         f"{max(pct):.0f} %)")
    return lines


if __name__ == "__main__":
    for line in with_outcomes():
        print(line, flush=True)
    print(noisy_ties(2), flush=True)
    print(noisy_ties(6), flush=True)
    print(heldout(), flush=True)
