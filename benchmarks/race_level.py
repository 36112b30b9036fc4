"""Does the race hold its stated level? Simulated races, no training (seconds on a CPU).

1. Noisy ties: k equal candidates (binomial accuracies on 90 validation images around a per-instance difficulty drawn
   from U(0.6, 0.9)), 25 instances, 100 races: how often the race names a sole winner, and how often it eliminates
   any of the equal candidates.
2. Held-out-like tables (the issue 16 case): 6 archs x 15 instances, the top two equal in truth, the other four 8-15
   points below, accuracies in steps of one image; of the first 150 generator seeds, those whose top two are not
   separated by the full table (paired t and Wilcoxon p both in 0.07-0.15); each raced in the file order and 19
   random orders: how often the race names a sole winner.

Runs on the code it is started with, so the same script measures an older bench too (it then passes plain floats,
as the older `race` expected):

    .venv/bin/python benchmarks/race_level.py
"""
from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sweep.experiment import Experiment, load_experiment  # noqa: E402
from bench.sweep import race as race_module  # noqa: E402

ARCHS = ["resnet18", "resnet34", "xresnet18", "resnet50", "resnet101", "xresnet34"]
N_VALID = 90
Score = getattr(race_module, "Score", None)


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
        values = [float(acc[c.arch][where[(c.seed, c.fold)]]) for c in configs]
        return [Score(v, N_VALID) for v in values] if Score else values
    return race_module.race(exp, evaluate)


def noisy_ties(k: int, reps: int = 100) -> str:
    exp = experiment(ARCHS[:k], range(25), [0])
    winners = dropped = 0
    for rep in range(reps):
        rng = np.random.default_rng(rep)
        difficulty = rng.uniform(0.6, 0.9, 25)
        res = run(exp, {a: rng.binomial(N_VALID, difficulty) / N_VALID for a in ARCHS[:k]})
        winners += res.decision == "winner"
        dropped += len(res.survivors) < k
    return f"noisy tie, {k} equal candidates x 25 instances: sole winner {winners}/{reps}, any equal one " \
           f"eliminated {dropped}/{reps}"


def heldout_like(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    base = rng.normal(0.80, 0.03, 15)
    gaps = [0, 0, -0.08, -0.10, -0.12, -0.15]
    return {a: np.round((base + g + rng.normal(0, 0.028, 15)) * N_VALID) / N_VALID for a, g in zip(ARCHS, gaps)}


def heldout(seeds: int = 150, orders: int = 20) -> str:
    from scipy import stats
    exp = experiment(ARCHS, range(5), range(3))
    tables = wins = 0
    for seed in range(seeds):
        acc = heldout_like(seed)
        p = stats.ttest_rel(acc["resnet18"], acc["resnet34"]).pvalue
        w = stats.wilcoxon(acc["resnet18"], acc["resnet34"]).pvalue
        if not (0.07 < p < 0.15 and 0.07 < w < 0.15):
            continue
        tables += 1
        for o in range(orders):
            order = None if o == 0 else random.Random(o).sample(exp.instances, len(exp.instances))
            wins += run(exp, acc, order).decision == "winner"
    return f"held-out-like, 6 archs x 15 instances, top two tied: sole winner in {wins}/{tables * orders} races " \
           f"({tables} tables x {orders} orders)"


if __name__ == "__main__":
    print(noisy_ties(2))
    print(noisy_ties(6))
    print(heldout())
