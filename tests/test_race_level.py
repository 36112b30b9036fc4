"""The race at its stated level and its log: no elimination from a one-image gap, alpha held over the whole race
(noisy ties, a held-out-like table), a restart that replays its log, a log keyed by what it raced (dataset,
candidates, settings: a mismatch refused in one line), the report reading that log."""
from __future__ import annotations

import html
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from bench.config import ConfigError
from bench.files import read_rows
from bench.sweep.experiment import Experiment, load_experiment
from bench.sweep.race import Score, race
from test_race import close_pair, imaged

N_VALID = 90  # validation images per fold: accuracy moves in steps of 1/90
ARCHS = ["resnet18", "resnet34", "xresnet18", "resnet50", "resnet101", "xresnet34"]
DATA_A = {"name": "mine", "fingerprint": "a1b2c3d4e5f6a7b8", "split": "5f0e"}


def experiment(tmp_path: Path, archs=ARCHS, seeds=range(5), folds=(0,)) -> Experiment:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"dataset": "digits", "archs": list(archs), "seeds": list(seeds),
                                    "folds": list(folds)}))
    return load_experiment(path, results_dir=str(tmp_path / "res"))


def from_table(exp: Experiment, acc: dict[str, np.ndarray], calls: list | None = None):
    """An evaluator reading accuracies[arch][instance index in the file's order], on N_VALID images (no per-image
    outcomes: bench.stats bounds the image term)."""
    where = {inst: i for i, inst in enumerate(exp.instances)}

    def evaluate(configs):
        if calls is not None:
            calls.append([(c.arch, c.seed) for c in configs])
        return [Score(float(acc[c.arch][where[(c.seed, c.fold)]]), N_VALID) for c in configs]
    return evaluate


def reordered(exp: Experiment, order) -> Experiment:
    return Experiment(exp.name, exp.path, tuple(exp.cell(lab, i) for lab in exp.labels for i in order), exp.labels,
                      tuple(order))


def test_a_race_keeps_a_candidate_one_image_behind_on_every_fold(tmp_path):
    # old main's first test saw sd 0 and called a constant one-image gap certain (p = 0)
    exp = experiment(tmp_path, archs=["resnet18", "resnet34"], seeds=[0], folds=range(3))
    a = np.array([0.80, 0.70, 0.75])
    res = race(exp, from_table(exp, {"resnet18": a, "resnet34": a - 1 / N_VALID}))
    assert res.decision == "tie" and res.survivors == ["resnet18", "resnet34"]
    assert all(r["eliminated"] == "" for r in res.rounds)


# --- the level holds for the whole race
def test_a_noisy_tie_declares_a_winner_at_most_alpha_of_the_time(tmp_path):
    # Two equal candidates (binomial accuracies on 90 images, a difficulty per instance), 25 instances, 100 races.
    exp = experiment(tmp_path, archs=ARCHS[:2], seeds=range(25))
    winners = 0
    for rep in range(100):
        rng = np.random.default_rng(rep)
        difficulty = rng.uniform(0.6, 0.9, 25)
        acc = {a: rng.binomial(N_VALID, difficulty) / N_VALID for a in ARCHS[:2]}
        res = race(exp, from_table(exp, acc))
        winners += res.decision == "winner"
        assert res.decision in ("winner", "tie", "equivalent")
    assert winners <= 7  # expected <= 5; 7 leaves room for chance (old main at the full level per look: 24)


def test_equal_candidates_with_per_image_outcomes_are_rarely_separated_and_cheaply_raced(tmp_path):
    # 3 equal candidates, 12 seeds of one fold, per-image outcomes; each race its own images. Old main raced such
    # ties to the last instance (100 % of the runs); now futility stops them at the first look (25 %)
    exp = experiment(tmp_path, archs=ARCHS[:3], seeds=range(12))
    out = used = 0
    for rep in range(20):
        res = race(exp, imaged({a: 0.9 for a in ARCHS[:3]}, world=rep))
        out += any(r["eliminated"] for r in res.rounds)
        used += res.runs_used
        assert res.decision != "winner"
    assert out <= 2 and used / (20 * 36) < 0.5, (out, used)


def heldout_like(seed: int = 96) -> dict[str, np.ndarray]:
    """6 archs x 15 instances, the top two equal in truth (the others 8-15 points below), accuracies in steps of one
    image. Seed 96: the top two's full-factorial gap is 1.0 point, paired t p = 0.10, Wilcoxon p = 0.08."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.80, 0.03, 15)
    gaps = [0, 0, -0.08, -0.10, -0.12, -0.15]
    return {a: np.round((base + g + rng.normal(0, 0.028, 15)) * N_VALID) / N_VALID for a, g in zip(ARCHS, gaps)}


def test_held_out_like_top_two_not_separated_by_the_full_factorial_give_no_sole_winner(tmp_path):
    acc = heldout_like()
    assert stats.ttest_rel(acc["resnet18"], acc["resnet34"]).pvalue > 0.05  # the full factorial does not separate
    exp = experiment(tmp_path, seeds=range(5), folds=range(3))
    orders = [list(exp.instances)] + [random.Random(o).sample(exp.instances, 15) for o in range(1, 4)]
    for o, order in enumerate(orders):  # old main declared a sole winner in 4 of 20 such orders
        res = race(reordered(exp, order), from_table(exp, acc))
        assert res.decision != "winner" and {"resnet18", "resnet34"} <= set(res.survivors), (o, res.rounds[-1])


# --- restarting
def failing_once(exp: Experiment, acc, calls: list, fail: tuple[str, int] | None):
    inner = from_table(exp, acc, calls)

    def evaluate(configs):
        values = inner(configs)
        return [None if fail == (c.arch, c.seed) else v for c, v in zip(configs, values)]
    return evaluate


def test_a_restart_after_a_failed_run_replays_the_log_exactly(tmp_path):
    exp = experiment(tmp_path, archs=ARCHS[:3], seeds=range(8))
    rng = np.random.default_rng(0)
    acc = {a: np.round((0.8 + rng.normal(0, 0.02, 8)) * N_VALID) / N_VALID for a in ARCHS[:3]}
    log = tmp_path / "res" / "races" / "r.csv"
    first_calls: list = []
    first = race(exp, failing_once(exp, acc, first_calls, ("resnet34", 1)), log=log)
    assert first.rounds[1]["failed"] == "resnet34" and "resnet34" not in first.survivors
    logged = log.read_bytes()
    # the run would succeed now (old main asked for it again and put resnet34 back in the race)
    calls: list = []
    again = race(exp, from_table(exp, acc, calls), log=log)
    assert ("resnet34", 1) not in [x for c in calls for x in c] and "resnet34" not in again.survivors
    assert again.decision == first.decision and again.survivors == first.survivors
    assert again.rounds == read_rows(log) and log.read_bytes() == logged  # nothing new to write: the replay is the log
    # --retry-failed asks for the failed run again and races on from the round that failed
    calls.clear()
    retried = race(exp, from_table(exp, acc, calls), log=log, retry_failed=True)
    assert ("resnet34", 1) in calls[1] and "resnet34" in retried.rounds[1]["survivors"].split(";")
    assert retried.rounds[0]["timestamp"] == first.rounds[0]["timestamp"]  # round 1 replayed, not re-decided
    assert retried.rounds[1]["failed"] == ""


def refused(exp, log, **kw) -> str:
    with pytest.raises(ConfigError) as e:
        race(exp, imaged({a: 0.8 for a in ARCHS}), log=log, **kw)
    return str(e.value)


def test_a_restart_on_other_terms_is_refused_in_one_line_that_says_what_changed(tmp_path):
    exp = experiment(tmp_path, archs=ARCHS[:2], seeds=range(5))
    log = tmp_path / "res" / "races" / "r.csv"
    race(exp, imaged({a: 0.8 for a in ARCHS}), log=log, dataset=DATA_A)
    logged = log.read_bytes()
    # old main replayed this log on another dataset (its winner printed for the new images)
    other = {**DATA_A, "name": "theirs", "fingerprint": "ffff0000ffff0000"}
    msg = refused(exp, log, dataset=other)
    assert "the dataset's content changed (fingerprint a1b2c3d4e5f6 -> ffff0000ffff, mine -> theirs)" in msg
    assert "\n" not in msg
    assert "split changed (split 5f0e -> 9999)" in refused(exp, log, dataset={**DATA_A, "split": "9999"})
    assert "--alpha changed (0.05 -> 0.1)" in refused(exp, log, dataset=DATA_A, alpha=0.1)
    assert "--margin changed (0.005 -> 0.01)" in refused(exp, log, dataset=DATA_A, margin=0.01)
    assert "--min-instances changed (3 -> 4)" in refused(exp, log, dataset=DATA_A, min_instances=4)
    assert "the instances changed" in refused(reordered(exp, exp.instances[::-1]), log, dataset=DATA_A)
    # old main trained an added candidate in round 1 and then silently dropped it (the log's survivors stood)
    added = experiment(tmp_path, archs=ARCHS[:3], seeds=range(5))
    assert "candidate added: xresnet18" in refused(added, log, dataset=DATA_A)
    assert log.read_bytes() == logged
    race(exp, imaged({a: 0.8 for a in ARCHS}), log=log, dataset=DATA_A)  # the same terms: replayed
    assert log.read_bytes() == logged


def test_cli_race_on_another_dataset_is_refused_before_anything_runs(tmp_path, capsys):
    from bench.cli import main
    from bench.sweep.race import resolve_dataset
    from conftest import make_image_folder
    a, b = make_image_folder(tmp_path / "a", per_class=12), make_image_folder(tmp_path / "b", per_class=12, seed=1)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"dataset": str(a), "archs": ARCHS[:2], "seeds": [0, 1, 2], "folds": [0],
                                    "protocol": {"batch_size": 4}}))
    res = tmp_path / "res"
    exp = load_experiment(path, results_dir=str(res))
    race(exp, imaged({a: 0.8 for a in ARCHS}), log=res / "races" / "r.csv", dataset=resolve_dataset(exp))
    index = res / "runs.csv"
    capsys.readouterr()
    assert main(["race", str(path), "--results-dir", str(res), "--dataset", str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error:") and "dataset's content changed" in err[0], err
    assert not index.exists()  # nothing trained


def test_a_race_stopped_by_its_budget_goes_on_under_a_larger_one(tmp_path):
    exp = experiment(tmp_path, archs=ARCHS[:2], seeds=range(20))
    log = tmp_path / "res" / "races" / "r.csv"
    close = close_pair()
    stopped = race(exp, close, log=log, budget_pct=30)
    assert stopped.decision == "budget" and len(stopped.rounds) == 6  # 12 of 40 runs; the 7th round would pass it
    again = race(exp, close, log=log, budget_pct=30)  # same budget: the log's decision stands
    assert again.decision == "budget" and len(read_rows(log)) == 6
    more = race(exp, close, log=log)
    assert len(more.rounds) > 6 and more.decision != "budget" and read_rows(log)[5]["decision"] == "continue"


def test_a_log_whose_runs_are_gone_is_not_replayed(tmp_path):
    exp = experiment(tmp_path, archs=ARCHS[:2], seeds=range(4))
    log = tmp_path / "res" / "races" / "r.csv"
    acc = {a: np.full(4, 0.8) for a in ARCHS[:2]}
    race(exp, from_table(exp, acc), log=log)
    with pytest.raises(ConfigError, match="cannot be replayed"):  # resnet18's run of round 1 now fails
        race(exp, failing_once(exp, acc, [], ("resnet18", 0)), log=log)


def test_a_log_from_an_older_bench_is_raced_afresh(tmp_path):
    exp = experiment(tmp_path, archs=ARCHS[:2], seeds=range(4))
    log = tmp_path / "res" / "races" / "r.csv"
    log.parent.mkdir(parents=True)
    log.write_text("race,round,instance,survivors,eliminated,decision,rule\n"
                   "r,1,seed 0 fold 0,resnet18,resnet34,winner,old rule\n")
    said: list = []
    res = race(exp, from_table(exp, {a: np.full(4, 0.8) for a in ARCHS[:2]}), log=log, echo=said.append)
    assert res.decision in ("tie", "equivalent") and "older bench" in said[0]
    assert "key" in log.read_text().splitlines()[0]


# --- the report reads the race's own log
@pytest.mark.parametrize("kind", ["winner", "tie"])
def test_the_report_reads_race_write_log_output(tmp_path, kind):
    from bench.report.races import load_races, race_html, race_markdown
    exp = experiment(tmp_path, archs=ARCHS[:3], seeds=range(6))
    means = {"winner": [0.95, 0.75, 0.6], "tie": [0.9, 0.9, 0.6]}[kind]
    res = race(exp, imaged(dict(zip(ARCHS[:3], means))), log=tmp_path / "res" / "races" / "r.csv")
    notes: list = []
    races = load_races(tmp_path / "res", notes)
    assert notes == [] and len(races) == 1
    r = races[0]
    assert r.name == "r" and r.decision == res.decision == kind and set(r.candidates) == set(ARCHS[:3])
    assert r.runs_used == res.runs_used and r.full_runs == 18 and len(r.rounds) == len(res.rounds)
    assert set(r.out_at) == set(ARCHS[:3]) - set(res.survivors)
    assert res.survivors[0] in r.summary()
    assert all(f"| {k + 1} |" in race_markdown(r) for k in range(len(res.rounds)))
    assert r.rule and r.rule in race_markdown(r) and html.escape(r.rule) in race_html(r)
    levels = r.rounds["level"].dropna()
    assert len(levels) and (levels < 0.05 / 4).all()  # the per-comparison level: alpha over looks and pairs


def test_the_dataset_notes_are_said_once_per_race_not_every_round(tmp_path, capsys):
    # a race plans every round (loading the dataset each time): old main printed the duplicates line each round
    import shutil

    from bench.sweep.plan import plan
    from conftest import make_image_folder
    data = make_image_folder(tmp_path / "data", per_class=12)
    shutil.copy(data / "class_0" / "img_000.png", data / "class_0" / "copy_of_000.png")
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"dataset": str(data), "archs": ARCHS[:2], "seeds": [0, 1], "folds": [0],
                                    "protocol": {"batch_size": 4}}))
    exp = load_experiment(path, results_dir=str(tmp_path / "res"))
    capsys.readouterr()
    for instance in exp.instances:  # two rounds' plans
        plan([exp.cell(a, instance) for a in exp.labels], exp.name)
    err = capsys.readouterr().err
    assert err.count("1 exact duplicate file(s)") == 1, err
    # a worker started from here (it inherits BENCH_* settings) does not say it again
    import os
    import subprocess
    import sys
    code = f"from bench.data.dataset import load_dataset; load_dataset({str(data)!r}, {str(tmp_path / 'res')!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert out.returncode == 0 and "exact duplicate" not in out.stderr, out.stderr


@pytest.mark.parametrize("retry", [False, True])
def test_the_race_asks_the_planner_to_skip_runs_that_failed_before_unless_retry_failed(tmp_path, monkeypatch, retry):
    from bench.sweep import plan as planner
    from bench.sweep.race import evaluate_runs
    seen: list = []

    def fake_plan(configs, name="", skip_failed=False, **_):
        seen.append(skip_failed)
        return planner.Plan(name, [], [], [], 0, ids=["x" * 12 for _ in configs])
    monkeypatch.setattr(planner, "plan", fake_plan)
    exp = experiment(tmp_path, archs=ARCHS[:2], seeds=[0])
    assert evaluate_runs("r", retry_failed=retry)([exp.cell(a, (0, 0)) for a in exp.labels]) == [None, None]
    assert seen == [not retry]


def test_cli_restart_under_another_alpha_is_one_line_exit_2(tmp_path, capsys):
    from bench.cli import main
    exp = experiment(tmp_path, archs=ARCHS[:2], seeds=range(4))
    log = tmp_path / "res" / "races" / "r.csv"
    race(exp, from_table(exp, {a: np.full(4, 0.8) for a in ARCHS[:2]}), log=log,
         dataset={"name": "digits", "fingerprint": None, "split": None})
    logged = log.read_bytes()
    capsys.readouterr()
    assert main(["race", str(exp.path), "--results-dir", str(tmp_path / "res"), "--alpha", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error:") and "--alpha" in err[0] and "Traceback" not in err[0]
    assert log.read_bytes() == logged
