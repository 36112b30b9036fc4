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
from test_report import run_row, write_csv

ROOT = Path(__file__).resolve().parents[1]


def wide(**models) -> pd.DataFrame:
    return pd.DataFrame(models, index=pd.Index(range(len(next(iter(models.values())))), name="instance"))


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
    assert d.pick == "resnet34" and d.kind == "use"
    assert d.sentence.startswith("Use resnet34: every other candidate is worse beyond noise"), d.sentence
    assert "the runner-up resnet50 10.0 pp behind on 6 instances" in d.sentence and "α/3" in d.sentence
    page = result.html.read_text()
    # the decision comes before the ranked table, with accuracy, time and size
    assert page.index("class=decision") < page.index('class="sortable')
    block = page[page.index("class=decision"):page.index('class="sortable')]
    assert "resnet34 ← use" in block and "21.8" in block


def test_a_small_consistent_gap_on_three_seeds_is_not_separated(tmp_path):
    # one validation image behind on each of 3 seeds: the seeds agree, but 360 images cannot tell them apart
    step = 1 / 360
    result = build(tmp_path, {"resnet34": [0.90, 0.91, 0.92], "resnet50": [0.90 - step, 0.91 - step, 0.92 - step]})
    d = result.decisions["digits"]
    assert d.pick is None and d.tied == ["resnet34", "resnet50"] and d.kind == "tie"


def test_tie_names_the_tied_set_and_the_rest_beyond_noise(tmp_path):
    result = build(tmp_path, {"resnet50": [0.93, 0.86, 0.91, 0.88, 0.90, 0.89, 0.92],
                              "resnet34": [0.90, 0.92, 0.88, 0.87, 0.91, 0.90, 0.89],
                              "seresnet50": [0.60, 0.61, 0.62, 0.63, 0.60, 0.61, 0.62]},
                   seconds={"resnet50": 100, "resnet34": 40, "seresnet50": 10})
    d = result.decisions["digits"]
    s = result.summary.set_index("model")
    assert s.loc["resnet34", "noise"] == "within noise" and s.loc["seresnet50", "noise"] == "beyond noise"
    assert d.tied == ["resnet50", "resnet34"] and d.pick is None
    assert d.sentence.startswith("No single best: resnet50") and "Worse beyond noise: seresnet50." in d.sentence
    page = result.html.read_text()
    assert "Not separated (2 candidates)" in page and "← use" not in page


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


def test_a_finished_race_is_summarised_by_the_verdict_it_printed(tmp_path):
    """The race's decision is bench.stats.verdict's words: the report repeats them rather than its own reading of
    the log's decision code (which knew nothing of equivalent or futile survivors)."""
    import csv as _csv
    res = tmp_path / "results"
    write_csv(res / "runs.csv", [run_row("resnet34", s, 0.9) for s in range(3)])
    path = res / "races" / "r.csv"
    path.parent.mkdir(parents=True)
    said = "resnet34, resnet50 are equivalent within 0.5 pp (leader resnet34 (90.0 %, n=3)); use the cheapest, resnet34"
    with path.open("w", newline="") as f:
        w = _csv.writer(f)
        w.writerow(RACE_FIELDS + ["verdict"])
        w.writerow(["r", 3, "s2f0", 3, "resnet34;resnet50", "", "", "", "", 0.05, "equivalent", 6, 10,
                    "2025-01-01T00:00:00", said])
    (race,) = report.build_report(res).races
    assert said in race.summary() and "equivalent" in race.summary()
