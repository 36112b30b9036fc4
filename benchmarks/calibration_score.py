"""benchmarks/calibration.py's scoring: a verdict's claims held against the same trained models' test images.

The truth of a comparison is the test-set gap of the models the verdict compared (same images, same seeds): mean over
their shared seeds of test accuracy (best - candidate), with its standard error over the test images (from the
per-image outcomes).
- a "worse" claim (the report's "worse beyond noise", a race's elimination) is *contradicted* when the test gap is
  <= 0 (the candidate is at least as good on new images) and *unconfirmed* when the test images cannot confirm it
  (a one-sided 95 % test on them does not reject; contradicted claims included);
- an "equivalent" claim is contradicted when the test gap is outside +-margin, unconfirmed when the test images
  cannot put it inside;
- a printed interval [lo, hi] covers when it holds the test gap (stated level: 1 - the comparison's level);
- a verdict holds the truly best when its pick (use), its equivalent set (equivalent) or its tied set (tie) holds a
  model within the margin of the best on the test images (mean over all 5 seeds);
- a race costs runs_used / the full factorial's runs; its final verdict (bench.stats.verdict on the runs it made)
  is scored as the report's is, and every look's eliminations and equivalences as claims of their own.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

Z95 = 1.6448536269514722  # one-sided 95 %
VERDICT_COLUMNS = ["candidate", "seed", "fold", "run_id", "final_accuracy", "n_valid"]
CLAIM_COLUMNS = ["world", "source", "claim", "best", "candidate", "seeds", "valid_gap", "test_gap", "test_se", "lo",
                 "hi", "level", "covered", "contradicted", "unconfirmed"]


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
              lo: float = np.nan, hi: float = np.nan, level: float = np.nan, seeds: int = 0,
              valid_gap: float = np.nan) -> dict:
    g, se = gap
    row = dict(world=world, source=source, claim=claim, best=best, candidate=cand, seeds=seeds, valid_gap=valid_gap,
               test_gap=g,
               test_se=se, lo=lo, hi=hi, level=level, covered=bool(lo <= g <= hi) if np.isfinite(lo) else np.nan)
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


def chosen_of(v) -> list[str]:
    """What a verdict tells the user to pick from: the pick (use), the equivalent set, the tied set (tie)."""
    if v.kind == "use":
        return [v.pick]
    if v.kind == "equivalent":
        return list(v.equivalent)
    return list(getattr(v, "tied", None) or [])


def score_verdict(world: str, source: str, runs: pd.DataFrame, valid: dict, test: dict, verdict_fn, alpha: float,
                  margin: float, truth: pd.Series) -> tuple[list[dict], dict]:
    """The verdict on `runs`, its comparisons held against the test images; `truth`: truly_best of every run."""
    cost = {c: {"train_s": float(d.train_s.mean())} for c, d in runs.groupby("candidate")}
    v = verdict_fn(runs[VERDICT_COLUMNS], valid, alpha=alpha, margin=margin, cost=cost)
    claims = []
    for r in v.comparisons.to_dict("records"):
        if r["claim"] != "not compared":
            claims.append(claim_row(world, source, r["claim"], r["versus"], r["candidate"],
                                    test_gap(runs, test, r["versus"], r["candidate"]), margin, r["lo"], r["hi"],
                                    r["level"], seeds=int(r["n"]), valid_gap=r.get("diff", np.nan)))
    chosen = chosen_of(v)
    return claims, dict(world=world, source=source, kind=v.kind, **family(claims), pick=v.pick or "",
                        chosen=";".join(chosen),
                        truly_best=truth.index[0], best_test=truth.iloc[0],
                        chosen_test=float(truth[chosen].max()) if chosen else np.nan,
                        holds_best=holds_best(chosen, truth, margin),
                        pick_holds_best=holds_best([v.pick], truth, margin) if v.pick else np.nan,
                        runs_used=len(runs), full_runs=len(runs), words=v.words)


def family(claims: list[dict]) -> dict:
    """Per verdict: did any of its "worse" claims fail on the test images (the family-wise error alpha bounds)?"""
    worse = [c for c in claims if c["claim"] == "worse"]
    return dict(worse_claims=len(worse), any_worse_contradicted=any(c["contradicted"] for c in worse),
                any_worse_unconfirmed=any(c["unconfirmed"] for c in worse))


def race_log(results: Path) -> pd.DataFrame | None:
    logs = sorted((results / "races").glob("*.csv"), key=lambda p: p.stat().st_mtime)
    return pd.read_csv(logs[-1], dtype=str, keep_default_na=False) if logs else None


def _names(cell: str) -> list[str]:
    return [x for x in str(cell).split(";") if x]


def race_runs(log: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The runs the race made: every candidate in round 1, then those the previous round left racing (`racing`;
    an older log without it: its survivors)."""
    seeds = [s.split()[1] for s in log["instance"]]  # "seed S fold F"
    col = "racing" if "racing" in log.columns else "survivors"
    ran = {c: [seeds[0]] for c in runs.candidate.unique()}
    for prev, seed in zip(log.to_dict("records"), seeds[1:]):
        for c in _names(prev[col]):
            ran.setdefault(c, []).append(seed)
    keep = [(c, s) in {(c, s) for c, ss in ran.items() for s in ss} for c, s in zip(runs.candidate, runs.seed)]
    return runs[keep].reset_index(drop=True)


def score_race(world: str, results: Path, runs: pd.DataFrame, valid: dict, test: dict, verdict_fn, alpha: float,
               margin: float) -> tuple[list[dict], dict]:
    """The race's looks (each elimination and equivalence against that round's leader, on the seeds seen so far)
    and its final verdict on the runs it made; {} when the world was not raced."""
    log = race_log(results)
    if log is None or log.empty:
        return [], {}
    seeds = [s.split()[1] for s in log["instance"]]
    claims = []
    for i, r in enumerate(log.to_dict("records")):
        for claim, col in (("worse", "eliminated"), ("equivalent", "equivalent")):
            for cand in _names(r.get(col, "")):
                if cand not in _names(r["failed"]):
                    claims.append(claim_row(world, "race look", claim, r["best"], cand,
                                            test_gap(runs, test, r["best"], cand, seeds[:i + 1]), margin,
                                            seeds=i + 1))
    final, v = score_verdict(world, "race", race_runs(log, runs), valid, test, verdict_fn, alpha, margin,
                             truly_best(runs))
    last = log.iloc[-1]
    v.update(kind=last["decision"], runs_used=int(last["runs_used"]), full_runs=int(last["full_factorial_runs"]),
             **family(claims + final))  # the looks' eliminations are the race's claims too
    return claims + final, v


def score_subsets(world: str, runs: pd.DataFrame, valid: dict, test: dict, verdict_fn, alpha: float,
                  margin: float, n_seeds: int = 3) -> tuple[list[dict], list[dict]]:
    """The report's verdict on every group of >= 2 of the world's candidates x every `n_seeds` of its seeds (the
    quick sweep's 3): many more verdicts from the same runs, correlated within a world (they share runs). Each is
    held against the truth of its own runs (the same candidates and seeds on the test images)."""
    from itertools import combinations
    cands = sorted(runs.candidate.unique())
    seeds = sorted(set.intersection(*(set(d.seed) for _, d in runs.groupby("candidate"))))  # every candidate ran
    claims, verdicts = [], []
    for k in range(2, len(cands) + 1):
        for group in combinations(cands, k):
            for chosen in combinations(seeds, n_seeds):
                sub = runs[runs.candidate.isin(group) & runs.seed.isin(chosen)].reset_index(drop=True)
                c, v = score_verdict(world, "subsets", sub, valid, test, verdict_fn, alpha, margin, truly_best(sub))
                claims += c
                verdicts.append(dict(v, candidates=";".join(group), seeds_used=";".join(chosen)))
    return claims, verdicts


def share(flags: pd.Series) -> str:
    """'x/n = p % [lo, hi]' with the exact (Clopper-Pearson) 95 % interval: the counts here are small."""
    from scipy.stats import binomtest
    flags = flags.dropna().astype(bool)
    if flags.empty:
        return "none"
    k, n = int(flags.sum()), len(flags)
    ci = binomtest(k, n).proportion_ci()
    return f"{k}/{n} = {100 * k / n:.0f} % [{100 * ci.low:.0f}, {100 * ci.high:.0f}]"


def error_sd(c: pd.DataFrame) -> float:
    """Root mean square of (validation gap - test gap) in units of the standard error the printed interval implies
    (its half-width over the normal quantile of its level): about 1 if the intervals are as wide as the errors need,
    < 1 when wider (conservative), > 1 when narrower."""
    from scipy.stats import norm
    c = c[np.isfinite(c.lo.astype(float)) & (c.hi > c.lo)]
    if len(c) < 2:
        return np.nan
    se = (c.hi - c.lo) / (2 * norm.ppf(1 - c.level.astype(float) / 2))
    return float(np.sqrt((((c.valid_gap - c.test_gap) / se) ** 2).mean()))


def summarise(claims: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per world and source (report; race = its final verdict and its looks' claims; subsets), and pooled
    ('all')."""
    rows = []
    for world in [*sorted(verdicts.world.unique()), "all"]:
        for source in ("report", "race", "subsets"):
            c = claims[claims.source.str.startswith(source) & ((claims.world == world) | (world == "all"))]
            v = verdicts[(verdicts.source == source) & ((verdicts.world == world) | (world == "all"))]
            if v.empty:
                continue
            worse, eq, cov = c[c.claim == "worse"], c[c.claim == "equivalent"], c[c.covered.notna()]
            rows.append(dict(
                world=world, source=source, verdicts=len(v),
                kinds=" ".join(f"{k} {n}" for k, n in v.kind.value_counts().items()),
                worse_claims=len(worse), worse_contradicted=share(worse.contradicted),
                worse_unconfirmed=share(worse.unconfirmed),
                verdicts_with_a_contradicted_worse=share(v.any_worse_contradicted),
                verdicts_with_an_unconfirmed_worse=share(v.any_worse_unconfirmed), equivalent_claims=len(eq),
                equivalent_contradicted=share(eq.contradicted), intervals=len(cov), coverage=share(cov.covered),
                stated_coverage=f"{100 * (1 - cov.level.astype(float).max()):.1f} %" if len(cov) else "",
                median_halfwidth_pp=round(50 * float((cov.hi - cov.lo).median()), 1) if len(cov) else np.nan,
                error_sd_in_printed_se=round(error_sd(cov), 2),
                holds_best=share(v.holds_best), pick_holds_best=share(v.pick_holds_best),
                cost_pct=f"{100 * v.runs_used.sum() / v.full_runs.sum():.0f} %"))
    return pd.DataFrame(rows)
