"""benchmarks/calibration.py's worlds and its scoring of verdicts against test images, on data the tests make."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cal():
    spec = importlib.util.spec_from_file_location("calibration", ROOT / "benchmarks" / "calibration.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def sc(cal):
    import calibration_score  # beside calibration.py, which put its folder on sys.path
    return calibration_score


def fake_source(root: Path, per_class: int = 7, n_test: int = 3) -> Path:
    for split, n in (("train", per_class), ("test", n_test)):
        for c in ("bag", "coat"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                (root / split / c / f"{c}{i:03d}.png").write_bytes(f"{split}{c}{i}".encode())
    return root


def test_worlds_are_disjoint_draws_that_share_the_test_images(cal, tmp_path):
    src = fake_source(tmp_path / "src")
    worlds = cal.draw_worlds(src, tmp_path / "worlds", n_worlds=3, per_class=2, seed=1)
    trains = [sorted(p.relative_to(w).as_posix() for p in (w / "train").rglob("*.png")) for w in worlds]
    assert [len(t) for t in trains] == [4, 4, 4]
    assert len(set().union(*trains)) == 12  # no image in two worlds
    tests = [sorted(p.relative_to(w).as_posix() for p in (w / "test").rglob("*.png")) for w in worlds]
    assert tests[0] == tests[1] == tests[2] and len(tests[0]) == 6
    assert (worlds[1] / tests[0][0]).stat().st_ino == (src / tests[0][0]).stat().st_ino  # a link, not a copy
    again = cal.draw_worlds(src, tmp_path / "again", n_worlds=3, per_class=2, seed=1)
    assert [sorted(p.name for p in (w / "train").rglob("*.png")) for w in again] == \
        [[Path(p).name for p in t] for t in trains]  # seeded
    with pytest.raises(SystemExit, match="need 8 images"):
        cal.draw_worlds(src, tmp_path / "big", n_worlds=4, per_class=2)


def runs_and_test(gaps: dict[str, float], n_test: int = 2000, seeds=("1", "2", "3")):
    """Runs of candidates A (best), B, C..., and test outcomes in which each is `gaps[c]` below A on every seed."""
    rng = np.random.default_rng(0)
    rows, test = [], {}
    items = pd.Index([f"test/x/{i}.png" for i in range(n_test)])
    base = rng.random(n_test)
    for c, g in {"A": 0.0, **gaps}.items():
        for s in seeds:
            rid = f"{c}{s}"
            correct = (base < 0.8 - g).astype(float)
            test[rid] = pd.Series(correct, index=items)
            rows.append(dict(candidate=c, seed=s, fold="0", run_id=rid, final_accuracy=0.8, n_valid=200,
                             test_accuracy=correct.mean(), train_s=10.0))
    return pd.DataFrame(rows), test


def test_test_gap_is_the_same_models_on_the_test_images(sc):
    runs, test = runs_and_test({"B": 0.02})
    g, se = sc.test_gap(runs, test, "A", "B")
    acc = runs.groupby("candidate").test_accuracy.mean()
    assert g == pytest.approx(acc["A"] - acc["B"]) and 0.015 < g < 0.025 and 0 < se < 0.005
    g1, _ = sc.test_gap(runs, test, "A", "B", seeds=["1"])
    assert g1 == pytest.approx(g)


@pytest.mark.parametrize("claim, gap, se, contradicted, unconfirmed", [
    ("worse", 0.01, 0.002, False, False),      # confirmed on the test images
    ("worse", 0.002, 0.002, False, True),      # right direction, the test images cannot confirm it
    ("worse", -0.001, 0.002, True, True),      # the candidate is at least as good on new images
    ("equivalent", 0.001, 0.001, False, False),
    ("equivalent", 0.008, 0.001, True, True),
    ("not separated", 0.05, 0.001, False, False),  # no claim made, none to contradict
])
def test_claims_against_the_test_gap(sc, claim, gap, se, contradicted, unconfirmed):
    row = sc.claim_row("w", "report", claim, "A", "B", (gap, se), 0.005, lo=0.0, hi=0.004)
    assert (row["contradicted"], row["unconfirmed"]) == (contradicted, unconfirmed)
    assert row["covered"] == (0.0 <= gap <= 0.004)


def fake_verdict(kind, pick, comparisons, equivalent=(), tied=()):
    def verdict(runs, outcomes, *, alpha, margin, cost):
        assert set(runs.columns) == {"candidate", "seed", "fold", "run_id", "final_accuracy", "n_valid"}
        return SimpleNamespace(kind=kind, pick=pick, equivalent=list(equivalent), tied=list(tied), words=kind,
                               comparisons=pd.DataFrame(comparisons))
    return verdict


def test_a_report_verdict_is_scored_against_the_truly_best(sc):
    runs, test = runs_and_test({"B": 0.003, "C": 0.05})
    comps = [dict(candidate="B", versus="A", claim="worse", lo=0.004, hi=0.02, level=0.01, n=3),
             dict(candidate="C", versus="A", claim="worse", lo=0.03, hi=0.07, level=0.01, n=3)]
    truth = sc.truly_best(runs)
    claims, v = sc.score_verdict("w1", "report", runs, {}, test, fake_verdict("use", "A", comps), 0.05, 0.005, truth)
    assert [c["contradicted"] for c in claims] == [False, False]
    assert [c["covered"] for c in claims] == [False, True]   # B's gap (0.3 pp) lies below its printed interval
    assert v["holds_best"] and v["truly_best"] == "A"
    # picking C (5 pp behind on the test images) does not hold the best; picking B (0.3 pp) does, within 0.5 pp
    _, v = sc.score_verdict("w1", "report", runs, {}, test, fake_verdict("use", "C", []), 0.05, 0.005, truth)
    assert not v["holds_best"]
    _, v = sc.score_verdict("w1", "report", runs, {}, test, fake_verdict("equivalent", "B", [],
                                                                          equivalent=["B", "C"]), 0.05, 0.005, truth)
    assert v["holds_best"] and v["chosen"] == "B;C"


def test_race_looks_and_final_verdict_are_held_against_the_seeds_it_ran(sc, tmp_path):
    runs, test = runs_and_test({"B": -0.01, "C": 0.05})  # B is truly best
    (tmp_path / "races").mkdir()
    rounds = [dict(instance=f"seed {s} fold 0", best="", eliminated="", equivalent="", failed="", survivors="A;B;C",
                   racing="A;B;C", decision="continue", runs_used=3 * s, full_factorial_runs=9) for s in (1, 2)]
    rounds[1].update(best="A", eliminated="B", equivalent="C", survivors="A;C", racing="A")
    rounds.append(dict(rounds[1], instance="seed 3 fold 0", eliminated="", equivalent="", racing="",
                       decision="winner", runs_used=7))
    pd.DataFrame(rounds).to_csv(tmp_path / "races" / "calibration.csv", index=False)
    seen = []

    def verdict(runs, outcomes, **kw):
        seen.append(sorted(zip(runs.candidate, runs.seed)))
        return SimpleNamespace(kind="use", pick="A", equivalent=[], tied=[], words="Use A", comparisons=pd.DataFrame(
            [dict(candidate="B", versus="A", claim="worse", lo=0.0, hi=0.02, level=0.01, n=2)]))
    claims, v = sc.score_race("w1", tmp_path, runs, {}, test, verdict, 0.05, 0.005)
    # A ran all three seeds, B and C the first two (C was equivalent and stopped; B eliminated)
    assert seen == [[("A", "1"), ("A", "2"), ("A", "3"), ("B", "1"), ("B", "2"), ("C", "1"), ("C", "2")]]
    looks = [(c["source"], c["claim"], c["candidate"], c["contradicted"]) for c in claims]
    assert looks == [("race look", "worse", "B", True), ("race look", "equivalent", "C", True),
                     ("race", "worse", "B", True)]
    assert not v["holds_best"] and v["kind"] == "winner" and v["runs_used"] / v["full_runs"] == pytest.approx(7 / 9)
    summary = sc.summarise(pd.DataFrame(claims), pd.DataFrame([v]))
    row = summary[summary.world == "all"].iloc[0]
    assert row.worse_contradicted.startswith("2/2 = 100 %") and row.cost_pct == "78 %"
    assert row.verdicts_with_a_contradicted_worse.startswith("1/1 = 100 %")


def test_benchs_own_verdict_is_scored(cal, sc):
    """The default verdict function (bench.stats.verdict) fits the scoring: its comparisons come back as claims."""
    runs, test = runs_and_test({"B": 0.002, "C": 0.2}, seeds=("1", "2", "3", "4", "5"))
    valid = {rid: s.iloc[:400].set_axis([f"train/x/{i}.png" for i in range(400)]) for rid, s in test.items()}
    claims, v = sc.score_verdict("w1", "report", runs, valid, test, cal.load_verdict(None), 0.05, 0.005,
                                 sc.truly_best(runs))
    assert {c["candidate"] for c in claims} == {"B", "C"} and v["truly_best"] == "A"
    c = next(c for c in claims if c["candidate"] == "C")
    assert c["claim"] == "worse" and not c["contradicted"] and c["covered"]


def test_subsets_are_every_candidate_group_on_every_three_seeds_all_ran(sc):
    runs, test = runs_and_test({"B": 0.01, "C": 0.05}, seeds=("1", "2", "3", "4"))
    runs = runs[~((runs.candidate == "C") & (runs.seed == "4"))]  # C has not run seed 4 yet: left out everywhere
    calls = []

    def verdict(runs, outcomes, **kw):
        calls.append((tuple(sorted(runs.candidate.unique())), tuple(sorted(runs.seed.unique()))))
        return SimpleNamespace(kind="tie", pick=None, equivalent=[], tied=sorted(runs.candidate.unique()), words="",
                               comparisons=pd.DataFrame(columns=["candidate", "versus", "claim", "lo", "hi", "level",
                                                                 "n"]))
    _, verdicts = sc.score_subsets("w", runs, {}, test, verdict, 0.05, 0.005)
    assert len(calls) == len(verdicts) == 4 and {s for _, s in calls} == {("1", "2", "3")}
    assert {g for g, _ in calls} == {("A", "B"), ("A", "C"), ("B", "C"), ("A", "B", "C")}


def test_error_sd_is_one_for_intervals_as_wide_as_the_errors(sc):
    rng = np.random.default_rng(0)
    err = rng.normal(0, 0.02, 4000)  # validation gap - test gap, sd 2 pp; intervals printed with se 2 pp at 95 %
    c = pd.DataFrame(dict(valid_gap=0.01 + err, test_gap=0.01, lo=err - 0.0392, hi=err + 0.0392, level=0.05))
    assert sc.error_sd(c) == pytest.approx(1, abs=0.05)
    assert sc.error_sd(c.assign(lo=c.lo - 0.0392, hi=c.hi + 0.0392)) == pytest.approx(0.5, abs=0.03)
