"""The race on bench.stats (issue 24): its loop and log on synthetic runs with per-image outcomes, the decision that is
the report's verdict, the log keyed by what was raced, and a real race resumed mid-way."""
from __future__ import annotations

import csv
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.config import ConfigError
from bench.stats import verdict
from bench.sweep.experiment import load_experiment
from bench.sweep.race import LOG_FIELDS, Score, evaluate_runs, race
from conftest import make_image_folder

ARCHS = ["resnet18", "resnet34", "xresnet18", "seresnet50"]


def exp_file(tmp_path: Path, archs=ARCHS, seeds=range(6), **extra) -> Path:
    import yaml
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"dataset": "digits", "archs": list(archs), "seeds": list(seeds), **extra}))
    return path


def imaged(means: dict[str, float], calls: list | None = None, n: int = 300, fail=(), seen: list | None = None,
           world: int = 0, shift: float = 0.0):
    """An evaluator with per-image outcomes: each fold has n images whose difficulty every run on them shares (so
    runs agree on most images, as real ones do), plus each run's own noise. `fail`: (arch, seed) pairs whose run
    fails; `seen`: collects every run returned, as bench.stats.verdict's rows; `world`: another draw of everything;
    `shift`: the sd of a whole run's shift (logit), seed noise that more seeds average away."""
    def evaluate(configs):
        if calls is not None:
            calls.append([c.arch for c in configs])
        out = []
        for c in configs:
            if (c.arch, c.seed) in fail:
                out.append(None)
                continue
            difficulty = np.random.default_rng([c.fold, world]).normal(0, 2.5, n)
            rng = np.random.default_rng(zlib.crc32(f"{c.arch}/{c.seed}/{c.fold}/{world}".encode()))
            logit = np.log(means[c.arch] / (1 - means[c.arch])) + difficulty + rng.normal(0, 0.5, n) \
                + rng.normal(0, shift)
            correct = (logit > 0).astype(int)
            run_id = f"{c.arch}-{c.seed}-{c.fold}"
            out.append(Score(float(correct.mean()), n, run_id,
                             pd.Series(correct, index=[f"{c.fold}/{i}" for i in range(n)])))
            if seen is not None:
                seen.append((dict(candidate=c.arch, seed=str(c.seed), fold=str(c.fold), run_id=run_id,
                                  final_accuracy=out[-1].value, n_valid=n), out[-1].correct))
        return out
    return evaluate


def close_pair():
    """4 points apart with seed noise: not separated, nor futile, for 18 of this world's 20 instances."""
    return imaged({"resnet18": 0.9, "resnet34": 0.86}, world=6, shift=0.3)


def read_log(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(path, newline="") as f:
        assert next(csv.reader(f)) == LOG_FIELDS
    return rows


def test_race_eliminates_from_the_minimum_at_the_race_wide_level_and_names_a_separated_winner(tmp_path):
    exp = load_experiment(exp_file(tmp_path, seeds=range(6)), results_dir=str(tmp_path / "res"))
    calls: list = []
    means = {"resnet18": 0.95, "resnet34": 0.80, "xresnet18": 0.78, "seresnet50": 0.60}
    log = tmp_path / "res" / "races" / "r.csv"
    res = race(exp, imaged(means, calls), log=log)
    assert [len(c) for c in calls[:3]] == [4, 4, 4]  # everyone runs the first three instances
    rows = read_log(log)
    assert [r["eliminated"] for r in rows[:2]] == ["", ""] and rows[0]["test"] == ""  # no look before the minimum
    assert rows[2]["test"] == "bench.stats gap"
    looks, pairs = 6 - 3 + 1, 6  # alpha spent over the looks and every pair of the four candidates
    assert [float(r["level"]) for r in rows] == pytest.approx([0.05 / (looks * pairs)] * len(rows))
    assert f"{looks} look(s) x {pairs} pair(s)" in rows[0]["rule"] and "futile" in rows[0]["rule"]
    assert res.decision == "winner" and res.survivors == ["resnet18"] and rows[-1]["decision"] == "winner"
    assert res.words.startswith("Use resnet18") and rows[-1]["verdict"] == res.words
    assert res.runs_used == sum(len(c) for c in calls) == int(rows[-1]["runs_used"]) and res.compute_pct < 100
    gone: set[str] = set()
    for r in rows:  # survivors after each round never include anyone eliminated so far; the leader comes first
        gone |= set(r["eliminated"].split(";")) - {""}
        assert not set(r["survivors"].split(";")) & gone and r["survivors"].startswith("resnet18")


def test_a_noisy_tie_stops_early_by_futility_instead_of_running_the_whole_budget(tmp_path):
    # old main raced two equal candidates over all 15 instances (100 % of the factorial) to say "no winner"
    exp = load_experiment(exp_file(tmp_path, archs=["resnet18", "resnet34", "xresnet18"], seeds=range(15),
                                   folds=[0]))
    res = race(exp, imaged({"resnet18": 0.9, "resnet34": 0.9, "xresnet18": 0.5}))
    assert res.decision == "tie" and set(res.survivors) == {"resnet18", "resnet34"}
    assert len(res.rounds) < 15 and res.compute_pct < 50, (len(res.rounds), res.compute_pct)
    last = res.rounds[-1]
    other = ({"resnet18", "resnet34"} - {last["best"]}).pop()
    assert other in last["futile"].split(";") + last["equivalent"].split(";") and last["racing"] == ""
    assert res.words.startswith("No single best") and "xresnet18" in res.words  # worse beyond noise


def test_equivalent_candidates_stop_as_survivors(tmp_path):
    # exactly the same predictions: the interval is inside the margin at once; both stay, neither runs on
    exp = load_experiment(exp_file(tmp_path, archs=["resnet18", "resnet34"], seeds=range(10)))
    same = imaged({"resnet18": 0.9, "resnet34": 0.9})

    def evaluate(configs):
        return same([c.replace(arch="resnet18") for c in configs])
    res = race(exp, evaluate)
    assert res.decision == "equivalent" and len(res.rounds) == 3 and res.rounds[-1]["equivalent"] == "resnet34"
    assert "equivalent within 0.5 pp" in res.words


def test_budget_stops_the_race(tmp_path):
    exp = load_experiment(exp_file(tmp_path, archs=["resnet18", "resnet34"], seeds=range(20), folds=[0]))
    res = race(exp, close_pair(), budget_pct=30)
    assert res.decision == "budget" and res.runs_used <= 12 and res.rounds[-1]["decision"] == "budget"
    assert res.rounds[-1]["racing"] == "resnet18;resnet34"  # neither separated nor futile yet


def test_a_winner_by_its_rivals_failures_is_not_a_winner(tmp_path):
    # resnet34 runs with resnet18 until its run fails; old main named resnet18 the "winner" of the two left
    exp = load_experiment(exp_file(tmp_path, archs=["resnet18", "resnet34", "xresnet18"], seeds=range(6)))
    means = {"resnet18": 0.9, "resnet34": 0.9, "xresnet18": 0.3}
    early = race(exp, imaged(means, fail={("resnet34", 1)}))  # out after one run: never compared
    assert early.decision == "survivor" and early.survivors == ["resnet18"]
    assert "Not ranked" in early.words and "resnet34" in early.words
    assert early.rounds[1]["failed"] == "resnet34" and early.rounds[1]["test"] == ""
    late = race(exp, imaged(means, fail={("resnet34", 3)}))  # three runs, not separated, then a failure
    assert late.decision in ("tie", "survivor") and late.decision != "winner"
    assert late.words.startswith("No single best")


def test_the_race_decision_is_the_reports_verdict_on_the_race_runs(tmp_path):
    exp = load_experiment(exp_file(tmp_path, seeds=range(6)))
    seen: list = []
    res = race(exp, imaged({"resnet18": 0.92, "resnet34": 0.91, "xresnet18": 0.85, "seresnet50": 0.5}, seen=seen),
               margin=0.01)
    runs = pd.DataFrame([r for r, _ in seen])
    again = verdict(runs, {r["run_id"]: c for r, c in seen}, margin=0.01)
    assert res.words == again.words and len(runs) == res.runs_used
    assert set(runs.candidate) == set(ARCHS)  # the eliminated candidates' runs are in it


def test_race_input_errors(tmp_path):
    one = load_experiment(exp_file(tmp_path, seeds=[0]))
    with pytest.raises(ConfigError, match="instance"):
        race(one, imaged({}))
    exp = load_experiment(exp_file(tmp_path))
    for kw, what in [({"alpha": 1.5}, "alpha"), ({"min_instances": 2}, "min-instances: 2 is below 3"),
                     ({"margin": -0.1}, "margin"), ({"budget_pct": 5}, "budget")]:
        with pytest.raises(ConfigError, match=what):
            race(exp, imaged({}), **kw)


def test_race_instances_default_to_every_fold_when_the_file_lists_none(tmp_path):
    exp = load_experiment(exp_file(tmp_path, seeds=[7]), all_folds=True)
    assert exp.instances == tuple((7, f) for f in range(5))
    assert {c.n_folds for c in exp.configs} == {5}
    assert load_experiment(exp_file(tmp_path, seeds=[7], folds=[1, 2]), all_folds=True).instances == ((7, 1), (7, 2))


def test_candidates_are_labelled_by_what_differs(tmp_path):
    from bench.sweep.race import candidate_labels
    exp = load_experiment(exp_file(tmp_path, archs=["xresnet18", "tf_efficientnet_lite0",
                                                    {"tf_efficientnet_lite0": {"pretrained": "true"}}],
                                   protocol={"pretrained": "false"}))
    assert list(candidate_labels(exp)) == ["xresnet18 (pretrained=false)", "tf_efficientnet_lite0 (pretrained=false)",
                                           "tf_efficientnet_lite0 (pretrained=true)"]
    same = load_experiment(exp_file(tmp_path, archs=["resnet18", "xresnet18"]))
    assert list(candidate_labels(same)) == ["resnet18", "xresnet18"]


def test_cli_race_errors_are_one_line(tmp_path, capsys):
    from bench.cli import main
    path = exp_file(tmp_path)
    for args in (["--alpha", "2"], ["--seeds", "a,b"], ["--set", "seed=1"], ["--budget", "0"],
                 ["--min-instances", "2"], ["--margin", "-1"]):
        assert main(["race", str(path), "--results-dir", str(tmp_path / "res"), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("bench: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "res").exists()


# --- a real race, stopped after two rounds and resumed
@pytest.mark.slow
def test_resume_mid_race_reuses_the_runs_and_prints_the_reports_verdict(tmp_path, capsys):
    import yaml

    from bench.files import read_rows
    from bench.report.outcomes import correct_by_item, read_outcomes
    from bench.sweep.race import resolve_dataset
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
        race(exp, stop_in_round_3, log=log, dataset=resolve_dataset(exp))
    first = read_log(log)
    assert len(first) == 2 and first[-1]["decision"] == "continue"
    runs = results / "runs.csv"
    before = list(csv.DictReader(open(runs)))
    assert len(before) == 4 and {r["status"] for r in before} == {"ok"}

    res = race(exp, evaluate, log=log, dataset=resolve_dataset(exp))
    after = list(csv.DictReader(open(runs)))
    assert len(after) == 6 and after[:4] == before  # rounds 1-2 reused, only round 3 trained
    rows = read_log(log)
    assert len(rows) == 3 and rows[-1]["decision"] == res.decision
    drop = ("timestamp",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows[:2]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in first]
    # the race's words are bench.stats.verdict's on its own runs, read back from the index and their outcomes
    ok = [r for r in read_rows(runs) if r["status"] == "ok"]
    frame = pd.DataFrame([dict(candidate=r["arch"], seed=r["seed"], fold=r["fold"], run_id=r["run_id"],
                               final_accuracy=float(r["final_accuracy"]), n_valid=int(r["n_valid"])) for r in ok])
    outcomes = {r["run_id"]: correct_by_item(read_outcomes(results, r)).astype(int) for r in ok}
    assert len(outcomes) == 6
    assert res.words == verdict(frame, outcomes, cost={a: {"train_s": np.mean(
        [float(r["total_seconds"]) for r in ok if r["arch"] == a]), "params": float(next(
            r["params_total"] for r in ok if r["arch"] == a))} for a in ("resnet18", "xresnet18")},
        n_train=float(np.median([float(r["n_train"]) for r in ok]))).words
    # the command on the finished race: trains nothing, prints the decision, the verdict and the compute share
    from bench.cli import main
    capsys.readouterr()
    assert main(["race", str(path), "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 runs = 100 % of the full factorial" in out and res.words in out.splitlines()
    assert list(csv.DictReader(open(runs))) == after and len(read_log(log)) == 3


def test_the_futility_projection_on_the_instances_run_is_the_gap_itself():
    """racelook.projected follows bench.stats.gap's variance: projected onto the instances already run it gives the
    gap's own variance, with or without a fold effect (it assumed the old max(within, across) rule)."""
    import numpy as np
    import pandas as pd
    from bench.stats import gap
    from bench.sweep.racelook import projected
    rng = np.random.default_rng(3)
    rows, out = [], {}
    for f, shift in enumerate((0.0, 0.15, 0.0)):  # fold 1: B much worse there, a fold effect
        items = [f"f{f}/{i}" for i in range(300)]
        for c, p in (("A", 0.8), ("B", 0.75 - shift)):
            for s in range(2):
                rid = f"{c}{s}{f}"
                out[rid] = pd.Series((rng.random(300) < p).astype(int), index=items)
                rows.append(dict(candidate=c, seed=str(s), fold=str(f), run_id=rid,
                                 final_accuracy=out[rid].mean(), n_valid=300))
    runs = pd.DataFrame(rows)
    g = gap(runs[runs.candidate == "A"], runs[runs.candidate == "B"], out)
    shared = [(s, f) for f in range(3) for s in range(2)]
    var, df = projected(g, shared, shared)
    assert g.var > g.var_seed + g.var_image and var == pytest.approx(g.var) and df == pytest.approx(g.df, rel=0.5)
    # more seeds on the same folds shrink the seed part only: the fold effect stays
    more, _ = projected(g, shared, [(s, f) for f in range(3) for s in range(6)])
    assert g.var - g.var_seed * (1 - 2 / 6) == pytest.approx(more)
