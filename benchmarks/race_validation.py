"""Does the race reach the full factorial's decision at a fraction of its compute, at its stated level?

For each dataset (the embedded digits, and a harder one generated here: the same digits shrunk, rotated up to 30
degrees, moved, tinted and noisy), the full factorial of experiments/race.yaml (6 architectures x 5 seeds x 5 folds =
150 runs) is trained once, in this process, into ordinary result rows (or read from a runs.csv: --runs). Then:
- `bench race` runs on the same results when every run it asks for already exists (same identity): it trains nothing
  and its decision is exactly the one a live race would reach; its log lands in <results>/<dataset>/races/race.csv;
- the same race is replayed on the recorded accuracies for 50 other random orders of the 25 (seed, fold) instances
  (and with --budget 40), to show how often it decides correctly and what it costs, not just for one lucky order;
  then again without the full factorial's best, a closer race on the same runs. Recorded runs without per-image
  outcomes (the committed CSVs predate them) are compared with bench.stats' bound on the image noise.

A race is correct when the full factorial's best (highest mean final accuracy) is among its survivors, or when every
survivor is statistically tied with that best over all 25 instances (two-sided paired t-test, p >= 0.05). A winner is
unsupported when the race names a winner although the full factorial's best is tied with another candidate: the
claim the race-wide level is there to prevent. Compute is counted in runs (and in training seconds of the
runs used) as a share of the full factorial.

    .venv/bin/python benchmarks/race_validation.py [--results results/race-validation --orders 50 --threads 1]
    .venv/bin/python benchmarks/race_validation.py --runs digits=results/race-validation/digits/runs.csv  # no training
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_CONSOLE", "off")  # one line per run from here, not per epoch
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

def make_noisy_digits(root: Path, seed: int = 0) -> Path:
    """Made once: scikit-learn's 1,797 digits, each shrunk to 24 px, rotated up to 30 degrees, placed at a random spot
    of a 36 px canvas, given random dark/bright grey levels with a tint, and Gaussian noise (sd 30)."""
    from PIL import Image
    from sklearn.datasets import load_digits
    if (root / ".complete").exists():
        return root
    rng = np.random.default_rng(seed)
    digits = load_digits()
    for i, (img, target) in enumerate(zip(digits.images, digits.target)):
        (root / str(target)).mkdir(parents=True, exist_ok=True)
        glyph = Image.fromarray((img * 255 / 16).astype("uint8"), "L").resize((24, 24), Image.BILINEAR)
        glyph = glyph.rotate(rng.uniform(-30, 30), Image.BILINEAR, expand=True)
        canvas = Image.new("L", (36, 36))
        canvas.paste(glyph, tuple(int(v) for v in rng.integers(0, 36 - glyph.size[0] + 1, 2)))
        mask = np.asarray(canvas, np.float32)[..., None] / 255
        bg = rng.uniform(0, 80) + rng.uniform(0, 30, 3)
        fg = rng.uniform(170, 230) + rng.uniform(0, 25, 3)
        arr = bg * (1 - mask) + fg * mask + rng.normal(0, 30, (36, 36, 3))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(root / str(target) / f"{i:04d}.png")
    (root / ".complete").touch()
    return root


def full_factorial(exp) -> dict:
    """Train every run not recorded yet (in this process: no worker start-up per run), then read back
    {config: (final accuracy or None, training seconds)} from the latest row of each run id."""
    from bench.config import make_config
    from bench.files import read_rows
    from bench.sweep.plan import plan
    from bench.train.protocol import run
    from bench.train.record import index_path
    p = plan(exp.configs, exp.name)
    t0 = time.monotonic()
    for i, job in enumerate(p.jobs, 1):
        cfg = make_config(**job["config"])
        try:
            row = run(cfg)
            print(f"  {i}/{len(p.jobs)} {cfg.arch} seed {cfg.seed} fold {cfg.fold}: {float(row['final_accuracy']):.3f}"
                  f" in {float(row['total_seconds']):.1f} s ({time.monotonic() - t0:.0f} s so far)", flush=True)
        except Exception as e:  # recorded as a failed row by run(); the race treats it as a failed candidate
            print(f"  {i}/{len(p.jobs)} {cfg.arch} seed {cfg.seed} fold {cfg.fold}: FAILED {e}", flush=True)
    latest = {r["run_id"]: r for r in read_rows(index_path(exp.configs[0].results_dir)) if r.get("status") == "ok"}
    out = {}
    for cfg, run_id in zip(exp.configs, p.ids):
        r = latest.get(run_id)
        out[cfg] = (float(r["final_accuracy"]), float(r["total_seconds"]), int(float(r["n_valid"]))) if r \
            else (None, 0.0, 0)
    return out


PROTOCOL = ("img_size", "item_size", "pct_images", "batch_size", "head_epochs", "ft_epochs", "pretrained")


def recorded(exp, runs_csv: Path) -> dict:
    """{config: (final accuracy or None, training seconds, n_valid)} from a full factorial's runs.csv, matched on
    (arch, seed, fold) and the protocol settings rather than the run id, so results made before the run identity
    changed still count; the latest ok row of each wins."""
    from bench.files import read_rows
    rows = [r for r in read_rows(runs_csv) if r.get("status") == "ok"]
    out = {}
    for cfg in exp.configs:
        want = {k: str(getattr(cfg, k)) for k in PROTOCOL}
        match = [r for r in rows if (r.get("arch"), r.get("seed"), r.get("fold")) == (cfg.arch, str(cfg.seed),
                 str(cfg.fold)) and all(_same(r.get(k), v) for k, v in want.items() if k in r)]
        r = match[-1] if match else None
        out[cfg] = (float(r["final_accuracy"]), float(r["total_seconds"]), int(float(r["n_valid"]))) if r \
            else (None, 0.0, 0)
    return out


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).lower() == str(b).lower()


def restrict(exp, labels, instances):
    """The same experiment with some of its candidates, and its instances in another order."""
    from bench.sweep.experiment import Experiment
    configs = tuple(exp.cell(label, inst) for label in labels for inst in instances)
    return Experiment(exp.name, exp.path, configs, tuple(labels), tuple(instances))


def replay(exp, values: dict, budget: float = 100):
    """The race on recorded results: (result, share of the training seconds used)."""
    from bench.sweep.race import Score, race
    used = []

    def evaluate(configs):
        used.extend(configs)
        return [Score(values[c][0], values[c][2]) if values[c][0] is not None else None for c in configs]
    res = race(exp, evaluate, budget_pct=budget)
    return res, 100 * sum(values[c][1] for c in used) / sum(values[c][1] for c in exp.configs)


def validate(title: str, exp, values: dict, n_orders: int) -> None:
    """The full factorial's ranking, then the race replayed in the file's order and n_orders random orders."""
    from scipy import stats
    acc = {lab: np.array([values[exp.cell(lab, i)][0] for i in exp.instances], dtype=float) for lab in exp.labels}
    means = {lab: float(np.nanmean(a)) for lab, a in acc.items()}
    best = max(means, key=means.get)
    tied = {lab for lab in exp.labels if lab == best or stats.ttest_rel(acc[best], acc[lab]).pvalue >= 0.05}
    print(f"{title}\n| arch | mean final accuracy | sd | vs best (paired t, {len(exp.instances)} instances) |")
    for lab in sorted(means, key=means.get, reverse=True):
        p = stats.ttest_rel(acc[best], acc[lab]).pvalue if lab != best else 1.0
        print(f"| {lab} | {100 * means[lab]:.1f} % | {100 * np.nanstd(acc[lab], ddof=1):.1f} | "
              f"{'best' if lab == best else f'p = {p:.2g}, ' + ('tied' if lab in tied else 'worse')} |")

    def correct(res):
        return best in res.survivors or set(res.survivors) <= tied

    def unsupported(res):
        return res.decision == "winner" and len(tied) > 1
    rng = random.Random(0)
    orders = [list(exp.instances)] + [rng.sample(exp.instances, len(exp.instances)) for _ in range(n_orders)]
    for budget in (100, 40):
        runs, secs, ok, decisions, bad = [], [], 0, {}, 0
        for order in orders:
            res, sec = replay(restrict(exp, exp.labels, order), values, budget)
            runs.append(res.compute_pct)
            secs.append(sec)
            ok += correct(res)
            bad += unsupported(res)
            decisions[res.decision] = decisions.get(res.decision, 0) + 1
        first, first_sec = replay(exp, values, budget)
        how = "bench.stats" + (f" --budget {budget}" if budget < 100 else "")
        print(f"{how}: file order -> {first.decision} {', '.join(first.survivors)} "
              f"({'correct' if correct(first) else 'WRONG'}), {first.compute_pct:.0f} % of runs, {first_sec:.0f} % "
              f"of training seconds | {len(orders)} orders: correct {ok}/{len(orders)}, unsupported winners "
              f"{bad}/{len(orders)}, decisions {decisions}, "
              f"runs median {statistics.median(runs):.0f} % (range {min(runs):.0f}-{max(runs):.0f} %), "
              f"training seconds median {statistics.median(secs):.0f} %", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/race-validation")
    ap.add_argument("--orders", type=int, default=50, help="random instance orders replayed per test")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--datasets", default="digits,noisy-digits")
    ap.add_argument("--runs", action="append", default=[], metavar="DATASET=RUNS_CSV",
                    help="read that dataset's full factorial from a runs.csv instead of training it")
    args = ap.parse_args()
    import torch
    from bench.cli import main as bench
    from bench.sweep.experiment import load_experiment
    from bench.sweep.plan import plan
    torch.set_num_threads(args.threads)
    results = Path(args.results)
    given = dict(item.split("=", 1) for item in args.runs)
    for name in args.datasets.split(","):
        rdir = results / name
        spec = "digits" if name == "digits" else str(make_noisy_digits(results / "data" / "noisy-digits"))
        exp = load_experiment(ROOT / "experiments" / "race.yaml", dataset=spec, results_dir=str(rdir))
        print(f"== {name}: full factorial {len(exp.configs)} runs", flush=True)
        values = recorded(exp, Path(given[name])) if name in given else full_factorial(exp)
        missing = sum(v[0] is None for v in values.values())
        if missing:
            print(f"{name}: {missing} of {len(values)} runs missing or failed; skipped", flush=True)
            continue
        # the real command, on the recorded runs, only when it would train nothing (every run of its identity exists)
        todo = len(plan(exp.configs, exp.name).jobs)
        if todo:
            print(f"(live `bench race` skipped: {todo} of its runs are not in {rdir} under today's run identity)")
        else:
            bench(["race", str(ROOT / "experiments" / "race.yaml"), "--dataset", spec, "--results-dir", str(rdir)])
        validate(f"{name}, all {len(exp.labels)} candidates", exp, values, args.orders)
        # a closer race on the same runs: the full factorial's best left out
        means = {lab: np.nanmean([values[exp.cell(lab, i)][0] for i in exp.instances]) for lab in exp.labels}
        rest = [lab for lab in exp.labels if lab != max(means, key=means.get)]
        validate(f"{name}, without {max(means, key=means.get)}", restrict(exp, rest, exp.instances), values,
                 args.orders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
