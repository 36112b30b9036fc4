"""The race: elimination tests on synthetic result tables, the race loop and its log, resuming a race mid-way."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.config import ConfigError
from bench.sweep.experiment import load_experiment
from bench.sweep.race import LOG_FIELDS, Score, evaluate_runs, race
from bench.sweep.racestats import bonferroni, compare
from conftest import make_image_folder

ARCHS = ["resnet18", "resnet34", "xresnet18", "seresnet50"]


def table(means: dict[str, float], n: int, sd: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """Accuracies on n instances: a shared per-instance difficulty plus independent noise per candidate."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 0.03, n)
    return pd.DataFrame({c: m + difficulty + rng.normal(0, sd, n) for c, m in means.items()})


@pytest.mark.parametrize("test", ["friedman", "ttest"])
def test_a_clearly_worse_candidate_is_eliminated(test):
    t = table({"a": 0.90, "b": 0.90, "c": 0.70}, n=8)
    out = compare(t, 0.05, test)
    assert "c" in out.eliminated and out.best in ("a", "b") and out.p_value < 0.05


@pytest.mark.parametrize("test", ["friedman", "ttest"])
def test_a_tie_stays_a_tie(test):
    # the same mean and noise: whatever the instance count, nothing is significantly worse
    for seed in range(3):
        out = compare(table({"a": 0.9, "b": 0.9, "c": 0.9}, n=10, seed=seed), 0.05, test)
        assert out.eliminated == [], (seed, out)
    identical = pd.DataFrame({"a": [0.9] * 5, "b": [0.9] * 5})
    assert compare(identical, 0.05, test).eliminated == []


def test_two_survivors_use_wilcoxon_and_need_enough_instances():
    t = table({"a": 0.9, "b": 0.8}, n=8)
    four = compare(t.iloc[:4], test="friedman")
    assert four.test == "wilcoxon" and four.eliminated == []  # the exact one-sided p is >= 1/16 with four pairs
    assert four.p_value == pytest.approx(1 / 16)
    assert compare(t, test="friedman").eliminated == ["b"]


def test_bonferroni_multiplies_by_the_rivals_and_keeps_a_close_second_that_holm_would_drop():
    assert bonferroni([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.12, 0.09]) and bonferroni([0.5]) == [0.5]
    # b trails the data-picked leader a by one-sided p 0.029, c is far behind: Holm's second step would test b at the
    # full 0.05 and drop it; b's test against a picked leader is corrected for its two rivals (0.057) and it stays
    gap = pd.Series([3, -1, 3, 0, 1, 2, -1, 1, 3, 0]) / 90
    t = pd.DataFrame({"a": 0.8 + 0 * gap, "b": 0.8 - gap, "c": 0.5 - gap / 3})
    out = compare(t, 0.05, "ttest", resolution=1 / 90)
    assert out.best == "a" and out.eliminated == ["c"]


# --- the race loop on synthetic results (no training)
def exp_file(tmp_path: Path, archs=ARCHS, seeds=range(6), **extra) -> Path:
    import yaml
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"dataset": "digits", "archs": list(archs), "seeds": list(seeds), **extra}))
    return path


def scripted(means: dict[str, float], calls: list, sd: float = 0.005, n_valid: int = 360):
    """An evaluator answering from a fixed table of accuracies per (arch, seed, fold), on n_valid images."""
    def evaluate(configs):
        calls.append([c.arch for c in configs])
        return [Score(means[c.arch] + 0.02 * np.sin(c.seed + 10 * c.fold)
                      + sd * np.cos(7 * c.seed + sum(map(ord, c.arch)) % 5), n_valid) for c in configs]
    return evaluate


def read_log(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(path, newline="") as f:
        assert next(csv.reader(f)) == LOG_FIELDS
    return rows


@pytest.mark.parametrize("test,seeds", [("ttest", 6), ("permutation", 12), ("friedman", 12)])
def test_race_eliminates_after_the_minimum_and_names_the_winner(tmp_path, test, seeds):
    exp = load_experiment(exp_file(tmp_path, seeds=range(seeds)), results_dir=str(tmp_path / "res"))
    calls: list = []
    means = {"resnet18": 0.95, "resnet34": 0.80, "xresnet18": 0.78, "seresnet50": 0.60}
    log = tmp_path / "res" / "races" / "r.csv"
    res = race(exp, scripted(means, calls), min_instances=3, test=test, log=log)
    assert [len(c) for c in calls[:3]] == [4, 4, 4]  # everyone runs the first three instances
    rows = read_log(log)
    assert [r["eliminated"] for r in rows[:2]] == ["", ""] and rows[0]["test"] == ""  # no test before the minimum
    assert rows[2]["test"] == {"ttest": "ttest+bonferroni", "permutation": "permutation+bonferroni",
                               "friedman": "friedman+conover"}[test]
    looks = seeds - 3 + 1  # alpha spent evenly over the rounds that test
    assert [float(r["level"]) for r in rows] == pytest.approx([0.05 / looks] * len(rows))
    assert f"{looks} look(s)" in rows[0]["rule"]
    first_out = next(int(r["round"]) for r in rows if r["eliminated"])
    if test == "ttest":
        assert first_out == 3  # 15-point gaps, sd floored at 1/360: clear from the first test
    else:  # nothing can be out before 0.5^n < alpha / looks / 3 (Bonferroni over three rivals)
        assert 0.5 ** first_out < 0.05 / looks / 3 <= 0.5 ** (first_out - 1)
    assert res.decision == "winner" and res.survivors == ["resnet18"] and rows[-1]["decision"] == "winner"
    assert [r["decision"] for r in rows[:-1]] == ["continue"] * (len(rows) - 1)
    assert res.runs_used == sum(len(c) for c in calls) == int(rows[-1]["runs_used"])
    assert int(rows[-1]["full_factorial_runs"]) == 4 * seeds and res.compute_pct < 100
    out = [e for r in rows for e in r["eliminated"].split(";") if e]
    assert sorted(out) == ["resnet34", "seresnet50", "xresnet18"]
    gone: set[str] = set()
    for r in rows:  # survivors after each round never include anyone eliminated so far; the leader comes first
        gone |= {e for e in r["eliminated"].split(";") if e}
        assert not set(r["survivors"].split(";")) & gone and r["survivors"].startswith("resnet18")
        assert r["instance"].startswith("seed ") and float(r["alpha"]) == 0.05


def test_tied_candidates_end_in_a_tie_at_the_instance_budget(tmp_path):
    exp = load_experiment(exp_file(tmp_path, archs=["resnet18", "resnet34", "xresnet18"], seeds=range(4)))
    calls: list = []
    res = race(exp, scripted({"resnet18": 0.9, "resnet34": 0.9, "xresnet18": 0.5}, calls, sd=0.0), test="ttest")
    assert res.decision == "tie" and set(res.survivors) == {"resnet18", "resnet34"}
    assert len(res.rounds) == 4 and res.rounds[-1]["decision"] == "tie"


def test_budget_stops_the_race(tmp_path):
    exp = load_experiment(exp_file(tmp_path, archs=["resnet18", "resnet34"], seeds=range(10)))
    res = race(exp, scripted({"resnet18": 0.9, "resnet34": 0.9}, [], sd=0.0), budget_pct=50)
    assert res.decision == "budget" and res.runs_used <= 10 and res.rounds[-1]["decision"] == "budget"


def test_a_failed_run_takes_its_candidate_out(tmp_path):
    exp = load_experiment(exp_file(tmp_path, archs=["resnet18", "resnet34", "xresnet18"], seeds=range(4)))

    def evaluate(configs):
        return [None if c.arch == "resnet34" and c.seed == 1 else 0.9 for c in configs]
    res = race(exp, evaluate, test="ttest")
    assert res.rounds[1]["eliminated"] == "resnet34" and res.rounds[1]["test"] == ""
    assert res.decision == "tie" and res.survivors == ["resnet18", "xresnet18"]


def test_race_input_errors(tmp_path):
    one = load_experiment(exp_file(tmp_path, seeds=[0]))
    with pytest.raises(ConfigError, match="instance"):
        race(one, scripted({}, []))
    exp = load_experiment(exp_file(tmp_path))
    for kw, what in [({"alpha": 1.5}, "alpha"), ({"min_instances": 1}, "min-instances"), ({"test": "anova"}, "test"),
                     ({"budget_pct": 5}, "budget")]:
        with pytest.raises(ConfigError, match=what):
            race(exp, scripted({}, []), **kw)


def test_race_instances_default_to_every_fold_when_the_file_lists_none(tmp_path):
    exp = load_experiment(exp_file(tmp_path, seeds=[7]), all_folds=True)
    assert exp.instances == tuple((7, f) for f in range(5))
    assert {c.n_folds for c in exp.configs} == {5}
    assert load_experiment(exp_file(tmp_path, seeds=[7], folds=[1, 2]), all_folds=True).instances == ((7, 1), (7, 2))
    labels = load_experiment(exp_file(tmp_path, archs=["resnet18", {"resnet18": {"bs": 32}}])).labels
    assert labels == ("resnet18", "resnet18 (bs=32)")


def test_cli_race_errors_are_one_line(tmp_path, capsys):
    from bench.cli import main
    path = exp_file(tmp_path)
    for args in (["--alpha", "2"], ["--seeds", "a,b"], ["--set", "seed=1"], ["--budget", "0"]):
        assert main(["race", str(path), "--results-dir", str(tmp_path / "res"), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("bench: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "res").exists()


# --- a real race, stopped after two rounds and resumed
@pytest.mark.slow
def test_resume_mid_race_reuses_the_runs_and_writes_the_same_log(tmp_path, capsys):
    import yaml
    data = make_image_folder(tmp_path / "data", per_class=8)
    results = tmp_path / "res"
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "dataset": str(data), "profile": "quick", "archs": ["resnet18", "xresnet18"], "seeds": [0, 1, 2], "folds": [0],
        "protocol": {"img_size": 32, "item_size": 32, "batch_size": 8, "head_epochs": 0, "ft_epochs": 1,
                     "pretrained": "false", "n_folds": 3}}))
    exp = load_experiment(path, results_dir=str(results))
    log = results / "races" / "tiny.csv"
    evaluate = evaluate_runs(exp.name)
    calls = []

    def stop_in_round_3(configs):
        calls.append(len(configs))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(configs)
    with pytest.raises(KeyboardInterrupt):
        race(exp, stop_in_round_3, min_instances=2, log=log)
    first = read_log(log)
    assert len(first) == 2 and first[-1]["decision"] == "continue"
    runs = results / "runs.csv"
    before = list(csv.DictReader(open(runs)))
    assert len(before) == 4 and {r["status"] for r in before} == {"ok"}

    res = race(exp, evaluate, min_instances=2, log=log)
    after = list(csv.DictReader(open(runs)))
    assert len(after) == 6 and after[:4] == before  # rounds 1-2 reused, only round 3 trained
    rows = read_log(log)
    assert len(rows) == 3 and rows[-1]["decision"] == res.decision and res.decision in ("tie", "winner")
    drop = ("timestamp",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows[:2]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in first]
    assert rows[-1]["runs_used"] == str(res.runs_used) == "6" and rows[-1]["full_factorial_runs"] == "6"
    # the command on the finished race: trains nothing, says the decision and its compute share
    from bench.cli import main
    capsys.readouterr()
    assert main(["race", str(path), "--results-dir", str(results), "--min-instances", "2"]) == 0
    out = capsys.readouterr().out
    assert f"race tiny: {'winner' if res.decision == 'winner' else 'no winner'}" in out
    assert "6 of 6 runs = 100 % of the full factorial" in out
    assert list(csv.DictReader(open(runs))) == after and len(read_log(log)) == 3
