"""Do bench's verdicts hold on new images? Small Fashion-MNIST worlds, the quick protocol, and the 10,000 test images.

Each world is drawn from Fashion-MNIST's 60,000 training images (`--per-class` a class, seeded; the worlds are
disjoint: no image is in two of them) and written as its own dataset, `train/` (the world) + `test/` (the same
10,000 test images in every world, hard links). experiments/calibration.yaml (the quick protocol: 4 architectures x
5 seeds on fold 0) is trained on it with `bench sweep` (resumable: finished runs are reused) and raced with
`bench race` (which then trains nothing). The validation images (fold 0 of the world, 1/5 of it) are all the
verdicts see; each run is also scored on the test images, which no decision uses. The truth of a comparison is the
test-set gap of the same trained models (same images, same seeds): mean over the shared seeds of test accuracy
(best - candidate), with its standard error over the test images (from the per-image outcomes).

Scored (calibration_claims.csv, one row per claim; calibration_verdicts.csv, one row per verdict):
- a "worse" claim (the report's "worse beyond noise", a race's elimination) is *contradicted* when the test gap is
  <= 0 (the candidate is at least as good on new images) and *unconfirmed* when the test images cannot confirm it
  (one-sided 95 % test on the 10,000 images does not reject; contradicted ones included);
- an "equivalent" claim is contradicted when the test gap is outside +-margin;
- a printed interval [lo, hi] covers when it holds the test gap (its stated level: 1 - the comparison's level);
- a verdict holds the truly best when its pick (use / equivalent) or its tied set (tie; a race's survivors) holds a
  model within the margin of the best on the test images (all 5 seeds);
- a race costs runs_used / the full factorial's runs.

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
EXPERIMENT = ROOT / "experiments" / "calibration.yaml"
Z95 = 1.6448536269514722  # one-sided 95 %


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


def bench(*args: str) -> float:
    """One bench command (its own process, as a user types it); its wall seconds. A failure stops everything."""
    t0 = time.monotonic()
    cmd = [str(ROOT / ".venv" / "bin" / "bench"), *args]
    print("$", " ".join(cmd), flush=True)
    if subprocess.run(cmd, env={**os.environ, "BENCH_CONSOLE": "off"}).returncode:
        raise SystemExit(f"calibration: {' '.join(cmd)} failed")
    return time.monotonic() - t0


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


def test_gap(runs: pd.DataFrame, test: dict, a: str, b: str, seeds=None) -> tuple[float, float]:
    """(test accuracy of a - b, its standard error over the test images) on the seeds both ran (or `seeds`): the
    same trained models the verdict compared, scored on the 10,000 new images."""
    pa, pb = (runs[runs.candidate == c].set_index("seed") for c in (a, b))
    shared = [s for s in pa.index.intersection(pb.index) if seeds is None or s in seeds]
    ids = [(pa.run_id[s], pb.run_id[s]) for s in shared]
    if ids and all(i in test and j in test for i, j in ids):
        d = np.mean([test[i].to_numpy() - test[j].reindex(test[i].index).to_numpy() for i, j in ids], axis=0)
        return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
    gaps = [pa.test_accuracy[s] - pb.test_accuracy[s] for s in shared]  # no per-image file: no error bar
    return (float(np.mean(gaps)) if gaps else np.nan), np.nan


def claim_row(world: str, source: str, claim: str, best: str, cand: str, gap: tuple, margin: float,
              lo: float = np.nan, hi: float = np.nan, level: float = np.nan) -> dict:
    g, se = gap
    row = dict(world=world, source=source, claim=claim, best=best, candidate=cand, test_gap=g, test_se=se,
               lo=lo, hi=hi, level=level, covered=bool(lo <= g <= hi) if np.isfinite(lo) else np.nan)
    if claim == "worse":
        row["contradicted"] = bool(g <= 0)
        row["unconfirmed"] = bool(not (g - Z95 * se > 0)) if np.isfinite(se) else bool(g <= 0)
    elif claim == "equivalent":
        row["contradicted"] = bool(abs(g) > margin)
        row["unconfirmed"] = bool(not (abs(g) + Z95 * se < margin)) if np.isfinite(se) else bool(abs(g) > margin)
    else:
        row["contradicted"] = row["unconfirmed"] = False
    return row


def truly_best(runs: pd.DataFrame) -> pd.Series:
    """Each candidate's mean test accuracy over all its seeds, best first."""
    return runs.groupby("candidate").test_accuracy.mean().sort_values(ascending=False)


def holds_best(chosen: list[str], truth: pd.Series, margin: float) -> bool:
    return bool(chosen) and float(truth[chosen].max()) >= float(truth.iloc[0]) - margin


def score_report(world: str, runs: pd.DataFrame, valid: dict, test: dict, verdict_fn, alpha: float,
                 margin: float) -> tuple[list[dict], dict]:
    """The report's verdict on all of the world's runs, its claims held against the test images."""
    cost = {c: {"train_s": float(d.train_s.mean())} for c, d in runs.groupby("candidate")}
    v = verdict_fn(runs[["candidate", "seed", "fold", "run_id", "final_accuracy", "n_valid"]], valid,
                   alpha=alpha, margin=margin, cost=cost)
    claims = [claim_row(world, "report", r["claim"], r["versus"], r["candidate"],
                        test_gap(runs, test, r["versus"], r["candidate"]), margin, r["lo"], r["hi"], r["level"])
              for r in v.comparisons.to_dict("records") if r["claim"] != "not compared"]
    truth = truly_best(runs)
    chosen = [v.pick] if v.kind == "use" else list(v.equivalent) if v.kind == "equivalent" else \
        list(getattr(v, "tied", []) or [])
    return claims, dict(world=world, source="report", kind=v.kind, pick=v.pick or "", chosen=";".join(chosen),
                        truly_best=truth.index[0], best_test=truth.iloc[0],
                        chosen_test=float(truth[chosen].max()) if chosen else np.nan,
                        holds_best=holds_best(chosen, truth, margin),
                        pick_holds_best=holds_best([v.pick] if v.pick else [], truth, margin),
                        runs_used=len(runs), full_runs=len(runs), words=v.words)


def score_race(world: str, results: Path, runs: pd.DataFrame, test: dict, margin: float) -> tuple[list, dict]:
    """The race's log: each elimination (eliminated vs that round's leader, on the seeds seen so far) and the end."""
    logs = sorted((results / "races").glob("*.csv"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return [], {}
    log = pd.read_csv(logs[-1], dtype=str, keep_default_na=False)
    seeds = [s.split()[1] for s in log["instance"]]  # "seed S fold F"
    claims = []
    for i, r in enumerate(log.to_dict("records")):
        failed = set(filter(None, r["failed"].split(";")))
        for cand in filter(None, r["eliminated"].split(";")):
            if cand not in failed:
                claims.append(claim_row(world, "race", "worse", r["best"], cand,
                                        test_gap(runs, test, r["best"], cand, seeds[:i + 1]), margin))
    last = log.iloc[-1]
    survivors = [s for s in last["survivors"].split(";") if s]
    truth = truly_best(runs)
    chosen = survivors[:1] if last["decision"] in ("winner", "use") else survivors
    return claims, dict(world=world, source="race", kind=last["decision"], pick=survivors[0] if survivors else "",
                        chosen=";".join(chosen), truly_best=truth.index[0], best_test=truth.iloc[0],
                        chosen_test=float(truth[chosen].max()) if chosen else np.nan,
                        holds_best=holds_best(chosen, truth, margin),
                        pick_holds_best=holds_best(survivors[:1], truth, margin),
                        runs_used=int(last["runs_used"]), full_runs=int(last["full_factorial_runs"]),
                        words=f"{last['decision']}: {', '.join(survivors)}")


def share(flags: pd.Series) -> str:
    """'x/n = p %' with the exact (Clopper-Pearson) 95 % interval: the counts here are small."""
    from scipy.stats import binomtest
    flags = flags.dropna().astype(bool)
    if flags.empty:
        return "none"
    k, n = int(flags.sum()), len(flags)
    ci = binomtest(k, n).proportion_ci()
    return f"{k}/{n} = {100 * k / n:.0f} % [{100 * ci.low:.0f}, {100 * ci.high:.0f}]"


def summarise(claims: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per world and source (report, race), and pooled ('all'): the published figures."""
    rows = []
    for world in [*sorted(verdicts.world.unique()), "all"]:
        for source in ("report", "race"):
            c = claims[(claims.source == source) & ((claims.world == world) | (world == "all"))]
            v = verdicts[(verdicts.source == source) & ((verdicts.world == world) | (world == "all"))]
            if v.empty:
                continue
            worse, eq = c[c.claim == "worse"], c[c.claim == "equivalent"]
            cov = c[c.covered.notna()] if "covered" in c else c.iloc[:0]
            rows.append(dict(
                world=world, source=source, verdicts=len(v), kinds=" ".join(f"{k} {n}" for k, n in
                                                                          v.kind.value_counts().items()),
                worse_claims=len(worse), worse_contradicted=share(worse.contradicted),
                worse_unconfirmed=share(worse.unconfirmed), equivalent_claims=len(eq),
                equivalent_contradicted=share(eq.contradicted), intervals=len(cov), coverage=share(cov.covered),
                stated_coverage=f"{100 * (1 - cov.level.astype(float).max()):.1f} %" if len(cov) else "",
                holds_best=share(v.holds_best), pick_holds_best=share(v[v.pick != ""].pick_holds_best),
                cost_pct=f"{100 * v.runs_used.sum() / v.full_runs.sum():.0f} %"))
    return pd.DataFrame(rows)


def load_verdict(spec: str | None):
    """The verdict function scored: bench.stats.verdict, or MODULE:FUNCTION (another rule, same signature)."""
    import importlib
    module, _, name = (spec or "bench.stats:verdict").partition(":")
    return getattr(importlib.import_module(module), name or "verdict")


def score(worlds: list[Path], out: Path, labels: dict, verdict_fn, alpha: float, margin: float):
    """(claims, verdicts, truth): every world's report and race held against its test images."""
    claims, verdicts, truth = [], [], []
    for world in worlds:
        results = out / world.name
        runs, valid, test = world_runs(results, labels)
        if runs.empty:
            print(f"{world.name}: no runs yet", flush=True)
            continue
        truth.append(runs.drop(columns="run_id").assign(world=world.name))
        c, v = score_report(world.name, runs, valid, test, verdict_fn, alpha, margin)
        claims += c
        verdicts.append(v)
        c, v = score_race(world.name, results, runs, test, margin)
        claims += c
        verdicts += [v] if v else []
    cols = ["world", "source", "claim", "best", "candidate", "test_gap", "test_se", "lo", "hi", "level", "covered",
            "contradicted", "unconfirmed"]
    return pd.DataFrame(claims, columns=cols), pd.DataFrame(verdicts), pd.concat(truth, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=6)
    ap.add_argument("--per-class", type=int, default=100, help="training images a class in each world")
    ap.add_argument("--seed", type=int, default=0, help="draws the worlds")
    ap.add_argument("--out", default="results/calibration", help="worlds/ and one results folder per world")
    ap.add_argument("--data", default=str(ROOT / "benchmarks" / "data"), help="where the CSVs go")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--score-only", action="store_true", help="train nothing: score the runs that are there")
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
        t_sweep = bench("sweep", str(EXPERIMENT), *common)
        t_race = bench("race", str(EXPERIMENT), *common, "--alpha", str(args.alpha))
        with open(out / "timings.csv", "a") as f:
            f.write(f"{world.name},{t_sweep:.0f},{t_race:.0f},{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    exp = load_experiment(EXPERIMENT, dataset=str(worlds[0]), results_dir=str(out / worlds[0].name))
    labels = {cfg.arch: label for cfg, label in zip(exp.configs[::len(exp.instances)], exp.labels)}
    claims, verdicts, truth = score(worlds, out, labels, load_verdict(args.verdict), args.alpha, args.margin)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    truth.to_csv(data / "calibration_runs.csv", index=False, float_format="%.5g")
    claims.to_csv(data / "calibration_claims.csv", index=False, float_format="%.5g")
    verdicts.to_csv(data / "calibration_verdicts.csv", index=False, float_format="%.5g")
    summary = summarise(claims, verdicts)
    summary.to_csv(data / "calibration_summary.csv", index=False)
    print(summary.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
