"""The decision the report leads with: P(best) by paired bootstrap, the tied set and its sentence; the race section."""
from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import build as report
from bench.report.stats import compared_models, p_best
from test_report import run_row, write_csv

ROOT = Path(__file__).resolve().parents[1]


def wide(**models) -> pd.DataFrame:
    return pd.DataFrame(models, index=pd.Index(range(len(next(iter(models.values())))), name="instance"))


def test_p_best_clear_winner_is_near_one():
    p = p_best(wide(a=[0.90, 0.91, 0.92, 0.93, 0.94], b=[0.80, 0.85, 0.79, 0.84, 0.81], c=[0.5] * 5))
    assert p["a"] == 1.0 and p["b"] == 0.0 and p["c"] == 0.0


def test_p_best_tie_shares_the_win():
    # b is a per-instance mirror of a: same mean, so over resamples each is best about half the time
    a = [0.80, 0.90, 0.85, 0.88, 0.82, 0.86]
    b = [0.90, 0.80, 0.88, 0.85, 0.86, 0.82]
    p = p_best(wide(a=a, b=b, c=[0.6] * 6))
    assert p["a"] == pytest.approx(0.5, abs=0.08) and p["b"] == pytest.approx(0.5, abs=0.08)
    assert p.sum() == pytest.approx(1.0) and p["c"] == 0.0
    # identical results: exactly shared
    assert p_best(wide(a=a, b=a)).tolist() == [0.5, 0.5]


def test_p_best_is_paired_across_instances():
    # Instance difficulty varies by 20 pp but b is always 1 pp behind a: paired, a is best in every resample.
    hard = np.array([0.6, 0.8, 0.7, 0.9, 0.65])
    assert p_best(wide(a=hard + 0.01, b=hard))["a"] == 1.0


def test_compared_models_need_three_shared_instances():
    # a model with too few shared instances is left out; the others are compared on the instances they share
    models, common = compared_models(wide(a=[0.9] * 4, b=[0.8] * 4, c=[0.99, np.nan, np.nan, np.nan]))
    assert models == ["a", "b"] and len(common) == 4
    assert compared_models(wide(a=[0.9, 0.8], b=[0.7, 0.6]))[0] == []
    # leaving out c (2 instances) keeps 4 shared; leaving out a would keep only 2
    models, common = compared_models(wide(a=[0.9] * 4, b=[0.8, 0.8, np.nan, np.nan], c=[np.nan, np.nan, 0.7, 0.7],
                                          d=[0.6] * 4))
    assert models == ["a", "d"] and len(common) == 4


def build(tmp_path, accs: dict, seconds: dict | None = None, params: dict | None = None):
    rows = []
    for arch, values in accs.items():
        for seed, acc in enumerate(values):
            rows.append(run_row(arch, seed, acc, total_seconds=(seconds or {}).get(arch, 50),
                                **({"params_1k": params[arch]} if params else {})))
    res = tmp_path / "results"
    write_csv(res / "runs.csv", rows)
    return report.build_report(res)


def test_clear_winner_is_recommended_with_its_numbers(tmp_path):
    result = build(tmp_path, {"resnet34": [0.90, 0.91, 0.92, 0.90, 0.91, 0.92],
                              "resnet50": [0.80, 0.82, 0.81, 0.80, 0.82, 0.81],
                              "seresnet50": [0.70, 0.72, 0.71, 0.70, 0.72, 0.71]})
    d = result.decisions["digits"]
    assert d.pick == "resnet34" and d.tied == ["resnet34"] and d.cheapest is None
    assert d.sentence.startswith("Use resnet34: best on paired evidence, 91.0 ± 0.9 % over its 6 (seed, fold) "
                                 "instances, P(best) 1.00; every other ranked model is worse beyond noise on the "
                                 "instances it shares with resnet34 (one-sided paired t-test, sd floored at one "
                                 "validation image, Bonferroni, α 0.05), the runner-up resnet50 by 10.0 pp on 6 shared "
                                 "instances (≥ 9.1 pp)."), d.sentence
    page = result.html.read_text()
    # the decision comes before the ranked table, with accuracy, time and size
    assert page.index("class=decision") < page.index('class="sortable"')
    block = page[page.index("class=decision"):page.index('class="sortable"')]
    assert "resnet34 ← use" in block and "91.0 % (paired, n=6)" in block and "1.00" in block and "21.8" in block


def test_three_seeds_separate_a_large_consistent_gap_but_never_a_one_image_one(tmp_path):
    # 10 pp ahead on each of 3 seeds: the floored t-test separates it (an exact sign-flip test never could: p >= 1/8)
    result = build(tmp_path, {"resnet34": [0.90, 0.91, 0.92], "resnet50": [0.80, 0.82, 0.81]})
    d = result.decisions["digits"]
    assert d.pick == "resnet34" and d.tied == ["resnet34"]
    # one validation image behind on each of the 3 seeds: sd 0, but the floor keeps it a tie (p = 0.11, not 0)
    step = 1 / 360
    result = build(tmp_path, {"resnet34": [0.90, 0.91, 0.92], "resnet50": [0.90 - step, 0.91 - step, 0.92 - step]})
    d = result.decisions["digits"]
    assert d.pick is None and d.tied == ["resnet34", "resnet50"]
    assert result.summary.set_index("model").p_value["resnet50"] == pytest.approx(0.1127, abs=1e-3)


def test_tie_names_the_tied_set_and_its_cheapest(tmp_path):
    result = build(tmp_path, {"resnet50": [0.93, 0.86, 0.91, 0.88], "resnet34": [0.90, 0.92, 0.88, 0.87],
                              "seresnet50": [0.60, 0.61, 0.62, 0.63]},
                   seconds={"resnet50": 100, "resnet34": 40, "seresnet50": 10})
    d = result.decisions["digits"]
    s = result.summary.set_index("model")
    assert s.loc["resnet34", "noise"] == "within noise" and s.loc["seresnet50", "noise"] == "beyond noise"
    assert d.tied == ["resnet50", "resnet34"] and d.cheapest == "resnet34" and d.pick is None
    assert s.p_best["resnet50"] == s.p_best.max()  # P(best) and rank agree
    assert d.sentence.startswith("No single best on paired evidence: resnet50, resnet34 are within noise of the "
                                 "leader resnet50 (89.5 ± 3.1 % over its 4 (seed, fold) instances"), d.sentence
    assert d.sentence.endswith("The cheapest of the tied set is resnet34 (0.3 pp behind on 4 shared instances, and "
                               "it trains 2.5× faster and has 1.2× fewer parameters). Worse beyond noise: seresnet50.")
    page = result.html.read_text()
    assert "Tied for best (2 models)" in page and "resnet34 ← cheapest of the tie" in page and "← use" not in page


def test_tie_among_the_best_with_the_rest_beyond_noise(tmp_path):
    result = build(tmp_path, {"resnet50": [0.93, 0.86, 0.91, 0.88, 0.90, 0.89, 0.92],
                              "resnet34": [0.90, 0.92, 0.88, 0.87, 0.91, 0.90, 0.89],
                              "seresnet50": [0.60, 0.61, 0.62, 0.63, 0.60, 0.61, 0.62]},
                   seconds={"resnet50": 100, "resnet34": 40, "seresnet50": 10})
    d = result.decisions["digits"]
    assert d.tied == ["resnet50", "resnet34"] and d.cheapest == "resnet34" and d.pick is None
    s = result.summary.set_index("model")
    assert 0.2 < s.p_best["resnet34"] < 0.8 and s.p_best["seresnet50"] == 0 and s.p_best.sum() == pytest.approx(1)
    assert "Worse beyond noise: seresnet50." in d.sentence and "trains 2.5× faster and has 1.2× fewer" in d.sentence


RACE_FIELDS = ["race", "round", "instance", "n_instances", "survivors", "eliminated", "test", "statistic", "p_value",
               "alpha", "decision", "runs_used", "full_factorial_runs", "timestamp"]


def write_race(res: Path, name="quick"):
    rounds = [
        (1, "s0f0", 1, "a;b;c;d", "", "", "", "", "continue", 4),
        (2, "s1f0", 2, "a;b;c;d", "", "", "", "", "continue", 8),
        (3, "s2f0", 3, "a;b;c", "d", "friedman+holm", 7.4, 0.012, "continue", 12),
        (4, "s3f0", 4, "a", "b;c", "friedman+holm", 9.1, 0.004, "winner", 15),
    ]
    path = res / "races" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RACE_FIELDS)
        for r, inst, n, surv, elim, test, stat, p, dec, used in rounds:
            w.writerow([name, r, inst, n, surv, elim, test, stat, p, 0.05, dec, used, 40, "2025-01-01T00:00:00"])


def test_race_section_shows_survivors_by_round_decision_and_compute(tmp_path):
    res = tmp_path / "results"
    write_csv(res / "runs.csv", [run_row("resnet34", s, 0.9) for s in range(3)])
    write_race(res)
    (res / "races" / "broken.csv").write_text("foo,bar\n1,2\n")  # not a race log: noted, left out
    result = report.build_report(res)
    (race,) = result.races
    assert race.candidates == ["a", "b", "c", "d"] and race.out_at == {"d": 3, "b": 4, "c": 4}
    assert race.decision == "winner" and race.compute_pct == pytest.approx(37.5)
    assert race.summary() == ("Race quick: winner a after 4 round(s) on 4 instance(s); compute 15 of 40 runs = "
                              "38 % of the full factorial.")
    assert any("broken.csv: not a race log" in n for n in result.notes)
    page = result.html.read_text()
    grid = page[page.index("<h2>Races</h2>"):page.index("Tests by round")]
    rows = re.findall(r"<tr><td>(\w)</td>(.*?)</tr>", grid)
    marks = {m: re.findall(r'class="(alive|out)"', cells) for m, cells in rows}
    assert marks["a"] == ["alive"] * 4 and marks["d"] == ["alive", "alive", "out"]
    assert marks["b"] == ["alive"] * 3 + ["out"]
    assert page.index("<h2>Races</h2>") < page.index("<h2>digits</h2>")
    assert "### Race quick" in (res / "report" / "summary.md").read_text()


def test_race_filtered_by_experiment(tmp_path):
    res = tmp_path / "results"
    write_csv(res / "runs.csv", [run_row("resnet34", s, 0.9) for s in range(3)])
    write_race(res, "quick")
    write_race(res, "blog")
    assert [r.name for r in report.build_report(res, experiment="quick").races] == ["quick"]
    assert sorted(r.name for r in report.build_report(res).races) == ["blog", "quick"]


@pytest.mark.parametrize("args, flag", [([], None), (["EXP=blog"], "--experiment 'blog'"),
                                        (["FAMILY=resnet", "EXP=quick"], "--experiment 'quick'")])
def test_make_report_exp_filters_only_when_given(args, flag):
    out = subprocess.run(["make", "-n", "report", *args], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    line = next(line for line in out.splitlines() if "bench report" in line)
    assert ("--experiment" in line) == (flag is not None)  # the sweep's default EXP=quick is not a filter
    if flag:
        assert flag in line
