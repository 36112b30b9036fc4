"""The one comparison behind every verdict (`bench report`, `bench race`): how far apart two candidates are on the
images they were both scored on, with an uncertainty that counts both sources of noise, and the verdict drawn from
all the comparisons of one group of candidates.

Two sources of noise (issue 24; docs/benchmarks.md, "Calibration on new images"):
- the training randomness: another seed (or another machine's kernels, bench/identity.py) trains another model;
- the sampling of the scored images: every seed of a fold is scored on the same validation images, so their luck is
  shared by all of that fold's instances and no number of seeds averages it away. What the user's next images bring
  is this term.

For two candidates on the (seed, fold) instances they share, with per-image outcomes (0/1 correct), fold f gives the
matrix D[s, i] = correct_a - correct_b over its shared seeds s and its validation images i. Its mean is the gap, and
its variance is estimated as a two-way crossed design: var(seed means) / S + var(image means) / N (each with its own
degrees of freedom, combined by Welch-Satterthwaite). That counts the seed-by-image interaction twice, so it errs on
the wide side; it is the closed form of the paired bootstrap over images within folds and over instances. Folds are
averaged with equal weight. Across two or more folds the training sets overlap (any two of five share 3/4 of their
images), so the spread of the fold gaps is also taken with Nadeau & Bengio's correction (1/F + n_valid/n_train) and
the larger of the two variances is used. Rows without per-image outcomes (older runs) bound the image term by the
largest discordance their error rates allow (conservative), and the words say so.

Claims (two-sided test, Student t): each comparison is tested at alpha / m, where m = k(k-1)/2 counts every pair
of the k candidates the leader was picked from (the leader is chosen from the data, so every pair could have been
the one reported; Bonferroni over the pairs keeps the family-wise rate of false "worse" claims at alpha whoever
leads). "Worse beyond noise" when that test rejects; "equivalent within the margin" when the printed interval
(1 - alpha/m) lies inside +-margin; otherwise "not separated".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

import numpy as np
import pandas as pd

ALPHA = 0.05
MARGIN = 0.005          # 0.5 pp: under this two candidates are practically the same (`--margin`)
MIN_INSTANCES = 3       # shared (seed, fold) instances below which two candidates are not compared
INSTANCE = ["seed", "fold"]
CLAIMS = ("worse", "equivalent", "not separated")


@dataclass
class Gap:
    """best - other on their shared instances, and its uncertainty (accuracy units)."""
    diff: float
    var: float
    df: float
    n: int                 # shared instances
    folds: int
    images: int            # scored images per fold (the mean over folds)
    var_seed: float = 0.0  # the two components of `var` (the within-fold estimate), for projections
    var_image: float = 0.0
    per_image: bool = True  # False: no per-image outcomes, the image term is a bound

    def p(self) -> float:
        """Two-sided p of 'no difference'."""
        from scipy import stats
        if self.var <= 0:
            return 1.0 if self.diff == 0 else 0.0
        return float(2 * stats.t.sf(abs(self.diff) / np.sqrt(self.var), self.df))

    def interval(self, level: float) -> tuple[float, float]:
        """The two-sided interval at confidence 1 - level."""
        from scipy import stats
        if self.var <= 0:
            return self.diff, self.diff
        h = float(stats.t.ppf(1 - level / 2, self.df)) * np.sqrt(self.var)
        return self.diff - h, self.diff + h


def _satterthwaite(parts: list[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of variance estimates [(v, df)]."""
    num = sum(v for v, _ in parts) ** 2
    den = sum(v * v / d for v, d in parts if d > 0 and v > 0)
    return num / den if den > 0 else float("inf")


def _fold_gap(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float, float]:
    """One fold: a, b are seeds x images correctness. (mean gap, seed var term, its df, image var term, its df)."""
    d = a.astype(float) - b.astype(float)
    s, n = d.shape
    v_seed = d.mean(axis=1).var(ddof=1) / s if s > 1 else 0.0
    img = d.mean(axis=0)
    v_img = img.var(ddof=1) / n if n > 1 else 0.0
    # only the images the two disagree on carry information: with a handful of them the t reference needs their
    # count, not the number of images, as its degrees of freedom (as McNemar's exact test would: 4 of 400 is p 0.125)
    return float(d.mean()), v_seed, s - 1, v_img, max(int(np.count_nonzero(img)) - 1, 1)


def _fold_gap_bound(acc_a: np.ndarray, acc_b: np.ndarray, n_images: int) -> tuple[float, float, float, float, float]:
    """One fold without per-image outcomes: the image term is bounded by the largest discordance the error rates
    allow (every error of one where the other is right)."""
    d = acc_a - acc_b
    s = len(d)
    v_seed = d.var(ddof=1) / s if s > 1 else 0.0
    q = min(1.0, float(np.mean((1 - acc_a) + (1 - acc_b))))
    v_img = max(q - float(d.mean()) ** 2, 0.0) / max(n_images, 1)
    return float(d.mean()), v_seed, s - 1, v_img, max(n_images - 1, 1)


def gap(a: pd.DataFrame, b: pd.DataFrame, outcomes: dict | None = None, n_train: float | None = None) -> Gap | None:
    """a - b over the instances both have. `a`, `b`: one row per instance (seed, fold, run_id, final_accuracy,
    n_valid); `outcomes`: run_id -> Series of 0/1 correctness indexed by image (validation). None: nothing shared."""
    outcomes = outcomes or {}
    shared = a.merge(b, on=INSTANCE, suffixes=("_a", "_b"))
    if shared.empty:
        return None
    folds, parts, n_images, per_image = [], [], [], True
    for _, f in shared.groupby("fold", sort=True, dropna=False):
        ra, rb = f.run_id_a.tolist(), f.run_id_b.tolist()
        have = all(r in outcomes for r in ra + rb)
        if have:
            items = outcomes[ra[0]].index
            for r in ra + rb:
                items = items.intersection(outcomes[r].index)
            have = len(items) > 0
        if have:
            ma = np.stack([outcomes[r].reindex(items).to_numpy(float) for r in ra])
            mb = np.stack([outcomes[r].reindex(items).to_numpy(float) for r in rb])
            g = _fold_gap(ma, mb)
            n_images.append(len(items))
        else:
            per_image = False
            n = int(pd.to_numeric(f.n_valid_a, errors="coerce").fillna(0).max())
            g = _fold_gap_bound(f.final_accuracy_a.to_numpy(float), f.final_accuracy_b.to_numpy(float), n)
            n_images.append(n)
        folds.append(g[0])
        parts.append(g[1:])
    k = len(folds)
    diff = float(np.mean(folds))
    v_seed = sum(p[0] for p in parts) / k ** 2
    v_img = sum(p[2] for p in parts) / k ** 2
    within = v_seed + v_img
    df = _satterthwaite([(p[0] / k ** 2, p[1]) for p in parts] + [(p[2] / k ** 2, p[3]) for p in parts])
    var = within
    if k >= 2:
        ratio = (np.mean(n_images) / n_train) if n_train else 1 / 4  # 5 folds: valid / train = 1/4
        across = (1 / k + ratio) * float(np.var(folds, ddof=1))
        if across > within:
            var, df = across, k - 1
    if not np.isfinite(df):
        df = 1e6
    return Gap(diff, var, max(df, 1.0), len(shared), k, int(round(np.mean(n_images))), v_seed, v_img, per_image)


@dataclass
class Comparison:
    candidate: str
    versus: str            # the leader
    gap: Gap | None        # leader - candidate; None: fewer than MIN_INSTANCES shared
    level: float           # the two-sided level this comparison is tested at
    claim: str             # worse | equivalent | not separated | not compared

    def row(self) -> dict:
        g = self.gap
        lo, hi = g.interval(self.level) if g else (np.nan, np.nan)
        return dict(candidate=self.candidate, versus=self.versus, n=g.n if g else 0, diff=g.diff if g else np.nan,
                    lo=lo, hi=hi, p=g.p() if g else np.nan, level=self.level, claim=self.claim,
                    per_image=g.per_image if g else False)


def claim(g: Gap, level: float, margin: float) -> str:
    lo, hi = g.interval(level)
    if g.p() < level and g.diff > 0:
        return "worse"
    if -margin < lo and hi < margin:
        return "equivalent"
    return "not separated"


def pair_level(k: int, alpha: float = ALPHA) -> float:
    """Each comparison's two-sided level: alpha over every pair of the k candidates."""
    return alpha / max(comb(k, 2), 1)


@dataclass
class Verdict:
    kind: str                          # use | equivalent | tie | incomplete | single | none
    words: str
    leader: str | None = None
    pick: str | None = None            # what to use: the separated best, or the cheapest of an equivalent set
    equivalent: list[str] = field(default_factory=list)   # the leader and every candidate equivalent to it
    tied: list[str] = field(default_factory=list)         # the leader and every candidate not separated from it
    not_ranked: list[str] = field(default_factory=list)   # fewer than MIN_INSTANCES instances
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    means: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # on the instances each was compared on
    alpha: float = ALPHA
    margin: float = MARGIN

    @property
    def method(self) -> str:
        return METHOD


METHOD = ("paired over shared (seed, fold) instances and images: seed and image-sampling noise both counted "
          "(crossed variance, Nadeau-Bengio across folds), two-sided t, Bonferroni over all pairs")


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _pp(v: float) -> str:
    return f"{100 * v:.1f} pp"


def _by_candidate(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    ok = runs[pd.to_numeric(runs.final_accuracy, errors="coerce").notna()].copy()
    ok["final_accuracy"] = ok.final_accuracy.astype(float)
    ok["seed"], ok["fold"] = ok.seed.astype(str), ok.fold.astype(str)
    ok = ok.drop_duplicates(["candidate", *INSTANCE], keep="last")
    return {c: d for c, d in ok.groupby("candidate", sort=True)}


def _leader(cands: dict[str, pd.DataFrame], ranked: list[str], outcomes, cost) -> tuple[str | None, list]:
    """The candidate no other ranked candidate leads on their shared instances (>= MIN_INSTANCES). None with the
    cycle's members when every one is led by another (never decided by name)."""
    ahead = {m: [o for o in ranked if o != m and _shares(cands[m], cands[o]) >= MIN_INSTANCES
                 and _mean_gap(cands[o], cands[m]) > 1e-12] for m in ranked}
    unbeaten = [m for m in ranked if not ahead[m]]
    if not unbeaten:
        return None, ranked
    # several unbeaten: two that never shared MIN_INSTANCES instances cannot be told apart (no verdict: picking one
    # would be picking by count or by name); otherwise they tie exactly: the most evidence, then the cheapest
    if any(_shares(cands[a], cands[b]) < MIN_INSTANCES for i, a in enumerate(unbeaten) for b in unbeaten[i + 1:]):
        return None, unbeaten
    return min(unbeaten, key=lambda m: (-len(cands[m]), _cost_key(cost, m), m)), []


def _shares(a: pd.DataFrame, b: pd.DataFrame) -> int:
    return len(a.merge(b, on=INSTANCE))


def _mean_gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
    s = a.merge(b, on=INSTANCE, suffixes=("_a", "_b"))
    return float((s.final_accuracy_a - s.final_accuracy_b).mean()) if len(s) else 0.0


def _cost_key(cost: dict | None, m: str) -> tuple:
    c = (cost or {}).get(m) or {}
    return (c.get("train_s", np.inf), c.get("params", np.inf))


def compare_all(runs: pd.DataFrame, outcomes: dict | None = None, *, alpha: float = ALPHA, margin: float = MARGIN,
                cost: dict | None = None, n_train: float | None = None, level: float | None = None) -> tuple:
    """(candidates, ranked, not_ranked, leader, cycle, comparisons): the building blocks of `verdict` and of the
    race's looks. `level` overrides the per-comparison level (a race spends alpha over its looks)."""
    cands = _by_candidate(runs)
    ranked = [c for c, d in cands.items() if len(d) >= MIN_INSTANCES]
    not_ranked = [c for c in cands if c not in ranked]
    leader, cycle = _leader(cands, ranked, outcomes, cost) if ranked else (None, [])
    level = level if level is not None else pair_level(len(ranked), alpha)
    comps = []
    for c in ranked:
        if c == leader or leader is None:
            continue
        g = gap(cands[leader], cands[c], outcomes, n_train) if _shares(cands[leader], cands[c]) >= MIN_INSTANCES \
            else None
        comps.append(Comparison(c, leader, g, level, claim(g, level, margin) if g else "not compared"))
    return cands, ranked, not_ranked, leader, cycle, comps


def _cheaper(cost: dict | None, pick: str, ref: str) -> str:
    """How much cheaper `pick` is than `ref`: training time, then parameters (only ratios of 1.1x or more)."""
    a, b = (cost or {}).get(pick) or {}, (cost or {}).get(ref) or {}
    parts = []
    for key, words in (("train_s", "faster to train"), ("params", "fewer parameters")):
        x, y = a.get(key), b.get(key)
        if x and y and x > 0 and y / x >= 1.1:
            parts.append(f"{y / x:.1f}× {words}")
    return ", ".join(parts)


def _gap_words(r: dict) -> str:
    return f"{_pp(r['diff'])} behind on {r['n']} instances, interval [{_pp(r['lo'])}, {_pp(r['hi'])}]"


def verdict(runs: pd.DataFrame, outcomes: dict | None = None, *, alpha: float = ALPHA, margin: float = MARGIN,
            cost: dict | None = None, n_train: float | None = None) -> Verdict:
    """The verdict on one group of candidates scored on the same images. `runs`: one row per finished instance with
    candidate, seed, fold, run_id, final_accuracy, n_valid; `outcomes`: run_id -> 0/1 correctness per validation
    image; `cost`: candidate -> {train_s, params}. The report and the race both print `.words`."""
    cands, ranked, not_ranked, leader, cycle, comps = compare_all(runs, outcomes, alpha=alpha, margin=margin,
                                                                  cost=cost, n_train=n_train)
    means = pd.Series({c: float(d.final_accuracy.mean()) for c, d in cands.items()}, dtype=float)
    table = pd.DataFrame([c.row() for c in comps]) if comps else pd.DataFrame(
        columns=["candidate", "versus", "n", "diff", "lo", "hi", "p", "level", "claim", "per_image"])
    v = Verdict("none", "No finished runs yet.", leader, not_ranked=not_ranked, comparisons=table, means=means,
                alpha=alpha, margin=margin)
    if not cands:
        return v
    if len(cands) == 1:
        (only, d), = cands.items()
        v.kind, v.leader = "single", only
        v.words = (f"Only {only} has finished runs on these images ({_pct(means[only])}, n={len(d)}): nothing to "
                   "compare it with.")
        return v
    if len(ranked) < 2:
        v.kind = "incomplete"
        v.words = (f"No verdict yet: fewer than two candidates have {MIN_INSTANCES} (seed, fold) instances "
                   f"({', '.join(f'{c} {len(d)}' for c, d in cands.items())}); run them on the same seeds and folds.")
        return v
    if leader is None:
        v.kind = "incomplete"
        led = all(any(_shares(cands[m], cands[o]) >= MIN_INSTANCES and _mean_gap(cands[o], cands[m]) > 1e-12
                      for o in ranked if o != m) for m in cycle)
        why = ("each trail another on the instances they share (a cycle, possible only when they ran different "
               "instances)" if led else f"lead, but never ran {MIN_INSTANCES} instances in common")
        v.words = f"No verdict: {', '.join(sorted(cycle))} {why}; run every candidate on the same instances."
        return v
    threats = [c for c in not_ranked + table[table.claim == "not compared"].candidate.tolist()
               if _shares(cands[c], cands[leader]) and _mean_gap(cands[c], cands[leader]) > 0]
    if threats:
        v.kind = "incomplete"
        v.words = (f"No verdict yet: {', '.join(threats)} lead{'s' if len(threats) == 1 else ''} {leader} on the "
                   f"few instances they share (fewer than {MIN_INSTANCES}); run "
                   f"{'it' if len(threats) == 1 else 'them'} on more seeds or folds before choosing.")
        return v
    compared = table[table.claim != "not compared"]
    if compared.empty:  # nothing to hold the leader against: no "use" from a lack of rivals
        v.kind = "incomplete"
        v.words = (f"No verdict yet: no other candidate shares {MIN_INSTANCES} (seed, fold) instances with the leader "
                   f"{leader}; run them on the same seeds and folds.")
        return v
    worse = compared[compared.claim == "worse"]
    eq = compared[compared.claim == "equivalent"]
    open_ = compared[compared.claim == "not separated"]
    level = pair_level(len(ranked), alpha)
    how = (f"(per comparison: two-sided, level α/{comb(len(ranked), 2)} = {level:.2g}, intervals at that level; "
           f"seed and image noise counted)")
    lead = f"{leader} ({_pct(means[leader])}, n={len(cands[leader])})"
    if open_.empty and eq.empty:
        v.kind, v.pick = "use", leader
        r = worse.sort_values("diff").iloc[0].to_dict()
        v.words = (f"Use {leader}: every other candidate is worse beyond noise on the images and instances it shares "
                   f"with {lead}; the runner-up {r['candidate']} {_gap_words(r)} {how}.")
    elif open_.empty:
        v.kind = "equivalent"
        v.equivalent = [leader, *eq.candidate]
        v.pick = min(v.equivalent, key=lambda m: (_cost_key(cost, m), m != leader))
        dearest = max(v.equivalent, key=lambda m: (_cost_key(cost, m), m == leader))
        cheaper = f"{_cheaper(cost, v.pick, dearest)} than {dearest}" if _cheaper(cost, v.pick, dearest) else ""
        v.words = (f"{', '.join(v.equivalent)} are equivalent within {_pp(margin)} (leader {lead}); use the "
                   f"cheapest, {v.pick}" + (f" ({cheaper})" if cheaper else "") + f" {how}.")
        if len(worse):
            v.words += f" Worse beyond noise: {', '.join(worse.candidate)}."
    else:
        v.kind = "tie"
        v.tied = [leader, *open_.candidate]
        detail = "; ".join(f"{r['candidate']} {_gap_words(r)}" for r in open_.sort_values("diff").to_dict("records"))
        v.words = (f"No single best: {lead} leads, not separated from {detail} {how}. Neither a difference nor "
                   f"equivalence within {_pp(margin)} is shown: more seeds narrow the seed noise, more folds (or "
                   "more images) the image noise.")
        if len(eq):
            v.words += f" Equivalent to {leader} within {_pp(margin)}: {', '.join(eq.candidate)}."
        if len(worse):
            v.words += f" Worse beyond noise: {', '.join(worse.candidate)}."
    v.tied = v.tied or [leader, *eq.candidate]
    if not_ranked:
        v.words += f" Not ranked (fewer than {MIN_INSTANCES} instances): {', '.join(not_ranked)}."
    thin = table[table.claim == "not compared"].candidate.tolist()
    if thin:
        v.words += f" Not compared (fewer than {MIN_INSTANCES} instances shared with {leader}): {', '.join(thin)}."
    if not compared.per_image.all():
        v.words += " Some runs have no per-image outcomes: their image noise is bounded from the error rates."
    return v
