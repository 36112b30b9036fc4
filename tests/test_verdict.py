"""The one comparison (bench/stats.py) and its verdict: the awkward cases of issue 24's review, each of which the old
rule (one-sided paired t over instances, sd floored at one image, Bonferroni over the best's rivals) got wrong."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.stats import MIN_INSTANCES, gap, pair_level, verdict

N_IMAGES = 400


def world(truth: dict[str, float], seeds=range(5), folds=(0,), rng=None, shared_luck=0.0, n=N_IMAGES):
    """Runs and per-image outcomes: candidate c is right on image i with probability truth[c] (+ that image's
    luck, shared by every candidate and seed of its fold)."""
    rng = rng or np.random.default_rng(0)
    rows, out = [], {}
    for f in folds:
        items = [f"f{f}/img{i}" for i in range(n)]
        luck = rng.normal(0, shared_luck, n)
        for c, p in truth.items():
            for s in seeds:
                rid = f"{c}-s{s}-f{f}"
                correct = (rng.random(n) < np.clip(p + luck, 0, 1)).astype(int)
                out[rid] = pd.Series(correct, index=items)
                rows.append(dict(candidate=c, seed=str(s), fold=str(f), run_id=rid, final_accuracy=correct.mean(),
                                 n_valid=n))
    return pd.DataFrame(rows), out


def test_image_noise_is_counted_not_only_the_seeds():
    """Five seeds scored on the same 400 images that agree on every image except a fixed few: the seeds' spread is
    zero, so a test over instances alone is certain; the images say 4 wins in 400 are not beyond noise."""
    items = [f"img{i}" for i in range(N_IMAGES)]
    rows, out = [], {}
    for c, extra in (("A", 4), ("B", 0)):
        for s in range(5):
            correct = np.zeros(N_IMAGES, int)
            correct[:300 + extra] = 1
            rid = f"{c}{s}"
            out[rid] = pd.Series(correct, index=items)
            rows.append(dict(candidate=c, seed=str(s), fold="0", run_id=rid, final_accuracy=correct.mean(),
                             n_valid=N_IMAGES))
    g = gap(pd.DataFrame(rows[:5]), pd.DataFrame(rows[5:]), out)
    assert g.var_seed == 0 and g.var_image > 0 and g.p() > 0.05
    v = verdict(pd.DataFrame(rows), out)
    assert v.kind == "tie" and v.pick is None


def test_a_large_gap_on_many_images_is_separated_and_equal_models_are_equivalent():
    runs, out = world({"A": 0.9, "B": 0.6, "C": 0.9})
    v = verdict(runs, out, margin=0.2)
    claims = v.comparisons.set_index("candidate").claim
    assert claims["B"] == "worse" and claims[[c for c in ("A", "C") if c != v.leader][0]] == "equivalent"
    assert v.kind == "equivalent" and set(v.equivalent) == {"A", "C"}


def test_the_cheapest_of_an_equivalent_set_is_the_pick():
    runs, out = world({"big": 0.9, "small": 0.9})
    v = verdict(runs, out, margin=0.2, cost={"big": {"train_s": 100, "params": 20}, "small": {"train_s": 10,
                                                                                             "params": 2}})
    assert v.kind == "equivalent" and v.pick == "small" and "10.0× faster to train" in v.words


def test_zero_variance_identical_candidates_are_equivalent():
    runs, out = world({"A": 0.8})
    twin = runs.assign(candidate="B", run_id=runs.run_id + "b")
    out.update({r + "b": out[r] for r in runs.run_id})
    v = verdict(pd.concat([runs, twin]), out)
    assert v.comparisons.claim.tolist() == ["equivalent"] and v.comparisons["diff"].iloc[0] == 0


def test_a_cycle_is_no_verdict_and_never_decided_by_name():
    """A beats B, B beats C, C beats A, each pair on 3 instances of its own: the old fallback dropped one by name
    (renaming A to D flipped "Use B" to "Use C")."""
    def rows(names):
        a, b, c = names
        spec = [(a, b, (0, 1, 2)), (b, c, (3, 4, 5)), (c, a, (6, 7, 8))]
        out = []
        for win, lose, seeds in spec:
            for s in seeds:
                out += [dict(candidate=win, seed=str(s), fold="0", run_id=f"{win}{s}", final_accuracy=0.9,
                             n_valid=100),
                        dict(candidate=lose, seed=str(s), fold="0", run_id=f"{lose}{s}", final_accuracy=0.7,
                             n_valid=100)]
        return pd.DataFrame(out)
    first, renamed = verdict(rows("ABC")), verdict(rows("DBC"))
    assert first.kind == renamed.kind == "incomplete" and first.pick is None and renamed.pick is None
    assert "cycle" in first.words


def test_an_unranked_candidate_that_leads_holds_the_verdict():
    """"Use A" was printed while D, with 2 instances, led it by 12 pp on both."""
    runs, out = world({"A": 0.8, "B": 0.6})
    d = pd.DataFrame([dict(candidate="D", seed=str(s), fold="0", run_id=f"D{s}", final_accuracy=0.95,
                           n_valid=N_IMAGES) for s in range(2)])
    v = verdict(pd.concat([runs, d]), out)
    assert v.kind == "incomplete" and v.pick is None and "D" in v.words
    # the same D trailing A does not hold it
    v2 = verdict(pd.concat([runs, d.assign(final_accuracy=0.5)]), out)
    assert v2.kind == "use" and v2.pick == "A" and "Not ranked" in v2.words


def test_multiplicity_counts_every_candidate_the_leader_was_picked_from():
    """Six equal candidates, one with 15 instances and five with 3: the level is alpha over all 15 pairs, not
    over the leader's comparable rivals (the old rule said "Use L" in 10 % of such worlds)."""
    assert pair_level(6) == pytest.approx(0.05 / 15) and pair_level(2) == pytest.approx(0.05)
    runs, out = world({c: 0.8 for c in "LMNOPQ"}, seeds=range(3))
    assert verdict(runs, out).comparisons.level.tolist() == pytest.approx([0.05 / 15] * 5)


@pytest.mark.parametrize("k", [2, 3, 6])
def test_false_worse_claims_stay_under_alpha_when_all_are_equal(k):
    """All candidates equal (each seed's model differs only by chance): the share of worlds with any "worse"
    claim is at most alpha (it was 0.10, 0.13, 0.17 for k = 2, 3, 6)."""
    rng = np.random.default_rng(k)
    worlds, false = 60, 0
    for _ in range(worlds):
        runs, out = world({f"m{i}": 0.75 for i in range(k)}, seeds=range(3), rng=rng, shared_luck=0.2, n=200)
        false += (verdict(runs, out).comparisons.claim == "worse").any()
    # binomial upper noise for 60 worlds at 5 %: <= 7 of 60 keeps the claim from being a fluke of the draw
    assert false / worlds <= 0.12


def test_failures_and_duplicates_do_not_count_as_results():
    runs, out = world({"A": 0.8, "B": 0.6})
    failed = runs.iloc[:1].assign(final_accuracy=np.nan)  # an ok row without an accuracy
    dup = runs.iloc[:1].assign(final_accuracy=0.1)         # the same instance recorded twice: the last counts
    v = verdict(pd.concat([runs, failed]), out)
    assert len(v.comparisons) == 1 and v.comparisons.n.iloc[0] == 5
    assert verdict(pd.concat([runs, dup]), out).comparisons.n.iloc[0] == 5


def test_unequal_instance_sets_compare_on_what_is_shared():
    runs, out = world({"A": 0.9, "B": 0.6}, seeds=range(5))
    fewer = runs[~((runs.candidate == "B") & (runs.seed.isin(["3", "4"])))]
    v = verdict(fewer, out)
    assert v.comparisons.set_index("candidate").n["B"] == 3 and v.kind == "use"


def test_folds_overlap_so_the_spread_across_folds_is_corrected():
    """Fold gaps that spread beyond their own noise add the training sets' effect with Nadeau and Bengio's factor."""
    runs, out = world({"A": 0.8, "B": 0.78}, seeds=range(1), folds=range(5), shared_luck=0.1)
    a, b = runs[runs.candidate == "A"].copy(), runs[runs.candidate == "B"].copy()
    g = gap(a, b, out)
    # shift two folds' B runs by 10 pp: the fold gaps now disagree far beyond their noise
    for f in ("1", "3"):
        for rid in b[b.fold == f].run_id:
            flip = out[rid].index[out[rid].to_numpy() == 0][:40]
            out[rid] = out[rid].copy()
            out[rid][flip] = 1
    b["final_accuracy"] = [out[r].mean() for r in b.run_id]
    spread = gap(a, b, out)
    fold_gaps = a.final_accuracy.to_numpy() - b.final_accuracy.to_numpy()
    assert spread.folds == 5 and spread.var > g.var and spread.df < g.df
    assert spread.var >= (1 / 5 + 1 / 4) * fold_gaps.var(ddof=1) - (spread.var_seed + spread.var_image) * 5


def test_a_large_consistent_gap_on_three_folds_is_separated():
    """The race's case: 27 pp on 3 folds of one seed each was 'not separated' ([-63, 117] pp) when the spread of
    three fold gaps alone, on 2 degrees of freedom, set the interval."""
    runs, out = world({"A": 0.9, "B": 0.63}, seeds=range(1), folds=range(3))
    v = verdict(runs, out)
    assert v.kind == "use" and v.pick == "A"


def test_too_few_instances_rank_nothing():
    runs, out = world({"A": 0.9, "B": 0.5}, seeds=range(MIN_INSTANCES - 1))
    v = verdict(runs, out)
    assert v.kind == "incomplete" and v.pick is None
