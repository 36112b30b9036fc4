"""Do bench's verdicts hold on new images? Small Fashion-MNIST worlds, the quick protocol, and the 10,000 test images.

Each world is drawn from Fashion-MNIST's 60,000 training images (`--per-class` a class, seeded; the worlds are
disjoint: no image is in two of them) and written as its own dataset, `train/` (the world) + `test/` (the same
10,000 test images in every world, hard links). experiments/calibration.yaml (the quick protocol: 4 architectures x
5 seeds on fold 0) is trained on it with `bench sweep` (resumable: finished runs are reused) and raced with
`bench race` (which then trains nothing). The validation images (fold 0 of the world, 1/5 of it) are all the
verdicts see; each run is also scored on the test images, which no decision uses. The truth of a comparison is the
test-set gap of the same trained models (same images, same seeds): mean over the shared seeds of test accuracy
(best - candidate), with its standard error over the test images (from the per-image outcomes).

What is scored, and how (calibration_score.py): each claim of the report's verdict on all of a world's runs and of
the race's (its looks and its final verdict) against the test gap of the same models; the CSVs go to
benchmarks/data/ (calibration_runs, _claims, _verdicts, _summary), the figures to docs/benchmarks.md.

    .venv/bin/python benchmarks/calibration.py --worlds 6 --per-class 100     # trains; resumable
    .venv/bin/python benchmarks/calibration.py --worlds 6 --score-only        # scores what is there
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_score import (CLAIM_COLUMNS, score_race, score_subsets, score_verdict, summarise,  # noqa: E402
                               truly_best)
EXPERIMENT = ROOT / "experiments" / "calibration.yaml"


def draw_worlds(source: Path, out: Path, n_worlds: int, per_class: int, seed: int = 0) -> list[Path]:
    """`n_worlds` disjoint worlds of `per_class` training images a class from source/train, each with all of
    source/test; hard links (copies where links fail). Written once each (a `.complete` marker)."""
    classes = sorted(d.name for d in (source / "train").iterdir() if d.is_dir())
    rng = np.random.default_rng(seed)
    order = {c: rng.permutation(sorted(p.name for p in (source / "train" / c).iterdir())) for c in classes}
    short = [c for c in classes if len(order[c]) < n_worlds * per_class]
    if short:
        raise SystemExit(f"calibration: {n_worlds} disjoint worlds of {per_class} a class need "
                         f"{n_worlds * per_class} images of class {short[0]}, which has {len(order[short[0]])}")
    worlds = []
    for w in range(n_worlds):
        world = out / f"world-{w + 1:02d}"
        worlds.append(world)
        if (world / ".complete").exists():
            continue
        for c in classes:
            _link(source / "train" / c, world / "train" / c, order[c][w * per_class:(w + 1) * per_class])
            _link(source / "test" / c, world / "test" / c, sorted(p.name for p in (source / "test" / c).iterdir()))
        (world / ".complete").touch()
    return worlds


def _link(src: Path, dest: Path, names) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (dest / name).exists():
            try:
                os.link(src / name, dest / name)
            except OSError:  # another file system
                import shutil
                shutil.copyfile(src / name, dest / name)


def bench(*args: str, fatal: bool = True) -> float:
    """One bench command (its own process, as a user types it); its wall seconds (nan if it failed and not fatal)."""
    t0 = time.monotonic()
    cmd = [str(ROOT / ".venv" / "bin" / "bench"), *args]
    print("$", " ".join(cmd), flush=True)
    if subprocess.run(cmd, env={**os.environ, "BENCH_CONSOLE": "off"}).returncode:
        if fatal:
            raise SystemExit(f"calibration: {' '.join(cmd)} failed")
        print(f"calibration: {' '.join(cmd)} failed; scored without it (--score-only --race again)", flush=True)
        return float("nan")
    return time.monotonic() - t0


def to_train(common: list[str]) -> int:
    """How many of the experiment's runs a sweep would train now (`bench sweep --dry-run --json`)."""
    import json
    cmd = [str(ROOT / ".venv" / "bin" / "bench"), "sweep", str(EXPERIMENT), *common, "--dry-run", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    return sum(json.loads(line).get("status") == "planned" for line in out.splitlines() if line.startswith("{"))


def world_runs(results: Path, labels: dict[str, str]) -> tuple[pd.DataFrame, dict, dict]:
    """(runs, valid outcomes, test outcomes) of one world: the latest ok row of each (arch, seed, fold), candidate =
    its arch's label; outcomes: run_id -> 0/1 Series by item."""
    from bench.files import read_rows
    from bench.report.outcomes import correct_by_item, read_outcomes
    rows = [r for r in read_rows(results / "runs.csv") if r.get("status") == "ok" and r.get("arch") in labels]
    df = pd.DataFrame(rows).drop_duplicates(["arch", "seed", "fold"], keep="last")
    valid, test = {}, {}
    for r in df.to_dict("records"):
        out = read_outcomes(results, r)
        if out is not None:
            valid[r["run_id"]] = correct_by_item(out, "valid").astype(float)
            test[r["run_id"]] = correct_by_item(out, "test").astype(float)
    runs = df.assign(candidate=df["arch"].map(labels), final_accuracy=pd.to_numeric(df["final_accuracy"]),
                     test_accuracy=pd.to_numeric(df.get("test_accuracy", np.nan), errors="coerce"),
                     n_valid=pd.to_numeric(df["n_valid"]), train_s=pd.to_numeric(df.get("total_seconds", np.nan)),
                     seed=df["seed"].astype(str), fold=df["fold"].astype(str))
    return runs[["candidate", "seed", "fold", "run_id", "final_accuracy", "n_valid", "test_accuracy",
                 "train_s"]].reset_index(drop=True), valid, test


def load_verdict(spec: str | None):
    """The verdict function scored: bench.stats.verdict, or MODULE:FUNCTION (another rule, same signature)."""
    import importlib
    module, _, name = (spec or "bench.stats:verdict").partition(":")
    return getattr(importlib.import_module(module), name or "verdict")


def score(worlds: list[Path], out: Path, labels: dict, verdict_fn, alpha: float, margin: float,
          subsets: bool = True):
    """(claims, verdicts, truth): every world's report and race held against its test images."""
    claims, verdicts, truth = [], [], []
    for world in worlds:
        results = out / world.name
        runs, valid, test = world_runs(results, labels)
        if runs.empty:
            print(f"{world.name}: no runs yet", flush=True)
            continue
        truth.append(runs.drop(columns="run_id").assign(world=world.name))
        c, v = score_verdict(world.name, "report", runs, valid, test, verdict_fn, alpha, margin, truly_best(runs))
        claims += c
        verdicts.append(v)
        c, v = score_race(world.name, results, runs, valid, test, verdict_fn, alpha, margin)
        claims += c
        verdicts += [v] if v else []
        if subsets and runs.groupby("candidate").size().min() >= 3:
            c, v = score_subsets(world.name, runs, valid, test, verdict_fn, alpha, margin)
            claims += c
            verdicts += v
    return pd.DataFrame(claims, columns=CLAIM_COLUMNS), pd.DataFrame(verdicts), pd.concat(truth, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=6)
    ap.add_argument("--per-class", type=int, default=100, help="training images a class in each world")
    ap.add_argument("--seed", type=int, default=0, help="draws the worlds")
    ap.add_argument("--out", default="results/calibration", help="worlds/ and one results folder per world")
    ap.add_argument("--data", default=str(ROOT / "benchmarks" / "data"), help="where the CSVs go")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--score-only", action="store_true", help="train nothing: score the runs that are there")
    ap.add_argument("--races-only", action="store_true",
                    help="race each world again on its runs (the old race log set aside), no sweep")
    ap.add_argument("--verdict", help="MODULE:FUNCTION to score instead of bench.stats:verdict")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--margin", type=float, default=0.005)
    args = ap.parse_args(argv)
    from bench.data.fashion import materialise_fashion_mnist
    from bench.sweep.experiment import load_experiment
    out = Path(args.out)
    worlds = draw_worlds(materialise_fashion_mnist(), out / "worlds", args.worlds, args.per_class, args.seed)
    for world in worlds if not args.score_only else []:
        results = out / world.name
        common = ["--dataset", str(world), "--results-dir", str(results), "--workers", str(args.workers)]
        if args.races_only:
            for old in (results / "races").glob("*.csv"):  # a race under another rule: a new race, not a replay
                old.rename(old.with_suffix(f".{int(old.stat().st_mtime)}.old"))
        t_sweep = 0.0 if args.races_only else bench("sweep", str(EXPERIMENT), *common)
        todo = to_train(common)
        if todo:  # the runs' identity changed since they were trained: the race would train them all again
            print(f"calibration: {world.name}: {todo} of its runs would be trained again; not raced", flush=True)
        t_race = bench("race", str(EXPERIMENT), *common, "--alpha", str(args.alpha), fatal=False) if not todo \
            else float("nan")
        with open(out / "timings.csv", "a") as f:
            f.write(f"{world.name},{t_sweep:.0f},{t_race:.0f},{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    exp = load_experiment(EXPERIMENT, dataset=str(worlds[0]), results_dir=str(out / worlds[0].name))
    labels = {cfg.arch: label for cfg, label in zip(exp.configs[::len(exp.instances)], exp.labels)}
    claims, verdicts, truth = score(worlds, out, labels, load_verdict(args.verdict), args.alpha, args.margin)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    truth.to_csv(data / "calibration_runs.csv", index=False, float_format="%.5g")
    claims.to_csv(data / "calibration_claims.csv", index=False, float_format="%.5g")
    verdicts.loc[verdicts.source == "subsets", "words"] = ""  # 110 a world: the CSV stays small
    verdicts.to_csv(data / "calibration_verdicts.csv", index=False, float_format="%.5g")
    summary = summarise(claims, verdicts)
    summary.to_csv(data / "calibration_summary.csv", index=False)
    print(summary.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
