"""The report's decision under real use (issue 16): instances counted once, only one protocol per ranking, and
every comparison paired — partial sweeps, ties, zero variance, duplicates, two dataset spellings, thread mixes and a
race's own log. Each of these failed on main before this change (see the docstrings)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import build as report
from bench.pairedtest import bonferroni_levels, exact_lower_bound, lower_bound, paired_p, sign_flip_p, versus_best
from test_report import run_row, write_csv


def build(tmp_path: Path, rows: list[dict], **kw):
    res = tmp_path / "results"
    write_csv(res / "runs.csv", rows)
    return report.build_report(res, **kw)


def rows_of(arch: str, accs: dict[int, float], **kw) -> list[dict]:
    """One ok row per seed (fold 0)."""
    return [run_row(arch, seed, acc, **kw) for seed, acc in accs.items()]


# --- the shared test itself (bench/stats.py)

def test_exact_sign_flip_test_matches_scipy_and_floors_at_one_over_two_to_the_n():
    from scipy import stats
    d = np.array([0.01, 0.03, -0.005, 0.02, 0.04, 0.01])
    ref = stats.permutation_test((d, np.zeros_like(d)), lambda x, y, axis: np.mean(x - y, axis=axis),
                                 permutation_type="samples", alternative="greater", n_resamples=np.inf)
    assert sign_flip_p(d) == pytest.approx(ref.pvalue)
    # a constant one-image gap (1/180) on 3 folds: p = 1/8, not 0 (a t-test's sd is 0 there)
    assert sign_flip_p(np.full(3, 1 / 180)) == pytest.approx(1 / 8)
    assert sign_flip_p(np.zeros(5)) == 1.0  # equal results: no evidence at all
    assert exact_lower_bound(np.full(3, 1 / 180), 0.05) == -np.inf  # 3 instances cannot bound a gap at 95 %


def test_the_floored_t_test_never_calls_a_constant_one_image_gap_certain():
    """The shared test: sd floored at one validation image. A plain t-test gives p = 0 for a constant gap."""
    one = 1 / 180
    assert paired_p(np.full(3, one), resolution=one) == pytest.approx(0.1127, abs=1e-3)  # t = 1.73, 2 df
    assert paired_p(np.full(3, one)) == pytest.approx(1 / 8)  # no known step: the exact sign-flip p
    assert paired_p(np.array([0.30, 0.35, 0.32]), resolution=one) < 0.01  # a large consistent gap separates on 3
    assert np.isnan(paired_p(np.array([0.1]))) and paired_p(np.zeros(4), resolution=one) == pytest.approx(0.5)


def test_lower_bound_is_the_test_inverted():
    rng = np.random.default_rng(1)
    for _ in range(20):
        d = rng.normal(0.01, 0.01, 7)
        for step in (0.0, 0.02):
            lo = lower_bound(d, 0.05, step)
            assert (lo > 0) == (paired_p(d, step) < 0.05)  # the bound is above 0 exactly when the test rejects
            assert paired_p(d - lo + 1e-9, step) < 0.05 <= paired_p(d - lo - 1e-9, step)
        lo = exact_lower_bound(d, 0.05)
        assert sign_flip_p(d, shift=lo - 1e-9) < 0.05 <= sign_flip_p(d, shift=lo + 1e-9)


def test_bonferroni_levels_against_a_data_picked_best():
    p = pd.Series({"a": 0.01, "b": 0.04, "c": 0.02})
    assert bonferroni_levels(p).to_dict() == pytest.approx({"a": 0.05 / 3, "b": 0.05 / 3, "c": 0.05 / 3})


def test_versus_best_gaps_are_never_negative_and_equal_means_tie():
    t = pd.DataFrame({"a": [0.8, 0.9, 0.85, 0.8, 0.9, 0.85], "b": [0.9, 0.8, 0.85, 0.9, 0.8, 0.85]})
    v = versus_best(t)
    assert v.best == "a" and v.gap["b"] == pytest.approx(0) and v.tied == ["a", "b"]
    t = pd.DataFrame({"a": [0.8] * 6, "b": [0.7] * 6, "c": [0.79] * 6})
    v = versus_best(t)
    assert (v.gap >= 0).all() and v.tied == ["a"] and set(v.beyond) == {"b", "c"}


# --- the report

def test_partial_sweep_does_not_recommend_the_model_with_the_easier_seeds(tmp_path):
    """Issue 16's case: main said "Use resnet34 … the runner-up resnet50 by -2.3 pp", from unpaired means."""
    rows = (rows_of("resnet34", {0: 0.95, 1: 0.95, 2: 0.80, 3: 0.80, 4: 0.80})
            + rows_of("resnet50", {2: 0.82, 3: 0.83, 4: 0.82}))
    result = build(tmp_path, rows)
    d = result.decisions["digits"]
    page = result.html.read_text()
    # resnet50 is ahead by 2-3 pp on every instance both ran: on paired evidence it is the better model
    assert "Use resnet34" not in page and d.pick == "resnet50" and d.tied == ["resnet50"]
    s = result.summary.set_index("model")
    assert s.loc["resnet34", "gap"] == pytest.approx(0.07 / 3) and s.loc["resnet34", "n_paired"] == 3
    assert s.p_best["resnet50"] == s.p_best.max()  # P(best) and rank agree
    # the report names what is missing and how to fill it
    assert s.loc["resnet50", "lacking"] == "seed 0 fold 0; seed 1 fold 0" and s.loc["resnet34", "lacking"] == ""
    assert "Missing: resnet50 lacks seed 0 fold 0; seed 1 fold 0." in d.sentence
    assert d.todo == [f"make sweep EXP=quick DATASET=digits RESULTS={tmp_path / 'results'}"] and d.todo[0] in page


def test_partial_bench_runs_get_one_bench_run_per_missing_instance(tmp_path):
    """Main named no missing instance and no command."""
    rows = (rows_of("resnet34", {s: 0.80 + 0.001 * s for s in range(8)}, experiment="")
            + rows_of("resnet50", {s: 0.85 + 0.001 * s for s in range(2, 8)}, experiment=""))
    result = build(tmp_path, rows)
    d = result.decisions["digits"]
    # ahead on all 6 shared instances: separated (p = 1/64) even though resnet34 has more seeds
    assert d.pick == "resnet50" and d.sentence.startswith("Use resnet50: best on paired evidence")
    assert len(d.todo) == 2 and all(c.startswith("bench run --arch resnet50 --dataset digits ") for c in d.todo)
    assert "--seed 0 --fold 0" in d.todo[0] and "--seed 1 --fold 0" in d.todo[1] and "--img-size 64" in d.todo[0]
    # the command is one `bench run` accepts, and it re-creates the runs' settings on the missing instance
    import shlex

    from bench.cli import build_parser, config_from_args
    cfg = config_from_args(build_parser("run").parse_args(shlex.split(d.todo[0])[1:]))
    assert (cfg.arch, cfg.seed, cfg.fold, cfg.img_size, cfg.item_size, cfg.ft_epochs) == ("resnet50", 0, 0, 64, 72, 2)


def test_tied_means(tmp_path):
    """Equal means: main said "Use resnet34: within noise of the most accurate": a "use" for a tie."""
    a = {0: 0.80, 1: 0.90, 2: 0.85, 3: 0.80, 4: 0.90, 5: 0.85}
    b = {0: 0.90, 1: 0.80, 2: 0.85, 3: 0.90, 4: 0.80, 5: 0.85}
    result = build(tmp_path, rows_of("resnet50", a) + rows_of("resnet34", b))
    d = result.decisions["digits"]
    s = result.summary.set_index("model")
    assert d.pick is None and sorted(d.tied) == ["resnet34", "resnet50"]
    other = d.tied[1]
    assert s.loc[other, "gap"] == 0 and s.loc[other, "noise"] == "within noise"
    assert "Use " not in d.sentence and d.cheapest == "resnet34"  # fewer parameters


def test_zero_variance_one_image_gap_is_not_beyond_noise(tmp_path):
    """A constant one-validation-image gap on 3 instances: main's interval had width 0 and said "Use resnet34"."""
    step = 1 / 180
    result = build(tmp_path, rows_of("resnet34", {0: 0.9, 1: 0.85, 2: 0.8}, n_valid=180)
                   + rows_of("resnet50", {0: 0.9 - step, 1: 0.85 - step, 2: 0.8 - step}, n_valid=180))
    d = result.decisions["digits"]
    assert d.pick is None and d.tied == ["resnet34", "resnet50"] and "Use resnet34" not in result.html.read_text()
    s = result.summary.set_index("model")
    # the sd is floored at one validation image: t = 1.73 on 2 df, p = 0.11 (a plain t-test: p = 0)
    assert s.loc["resnet50", "p_value"] == pytest.approx(0.1127, abs=1e-3) and s.loc["resnet50", "gap_lo"] < 0


def test_an_instance_recorded_twice_counts_once(tmp_path):
    """The same (seed, fold) under two run ids (an older id formula, a re-run): main counted n = 4 for 3."""
    rows = rows_of("resnet34", {0: 0.80, 1: 0.82, 2: 0.84})
    again = run_row("resnet34", 0, 0.86, run_id="0123456789ab", attempt="20250102T000000000000")
    result = build(tmp_path, rows + [again])
    s = result.summary.iloc[0]
    assert s.n == 3 and s.acc_mean == pytest.approx((0.86 + 0.82 + 0.84) / 3)  # the latest ok attempt kept
    assert any("1 result(s) repeat a (seed, fold) instance" in n and "counts once" in n for n in result.notes)
    assert "counts once, its latest ok attempt" in result.html.read_text()


@pytest.mark.parametrize("same_id", [False, True])
def test_one_instance_under_two_dataset_spellings_counts_once(tmp_path, same_id):
    """`digits` and a folder path of the same content: one fingerprint and split. Main reported two datasets."""
    rows = rows_of("resnet34", {0: 0.80, 1: 0.82, 2: 0.84})
    spelled = {**run_row("resnet34", 2, 0.85, dataset="digits-1a2b3c4d", attempt="20250102T000000000000"),
               "dataset_fingerprint": "fp-digits", "split_hash": "sh-digits"}
    if same_id:  # the identity contract: the resolved dataset, not the string typed, makes the run id
        spelled["run_id"] = rows[2]["run_id"]
    result = build(tmp_path, rows + [spelled])
    s = result.summary
    assert len(s) == 1 and s.n.iloc[0] == 3 and s.dataset.iloc[0] == "digits-1a2b3c4d"  # the newest name
    assert s.acc_mean.iloc[0] == pytest.approx((0.80 + 0.82 + 0.85) / 3)


def test_two_protocols_on_one_dataset_are_two_sections(tmp_path):
    """Issue 16: a 32 px random-init run and a 64 px run from a weights file were ranked together on main."""
    rows = (rows_of("resnet34", {0: 0.60, 1: 0.61, 2: 0.62}, img_size=32, ft_epochs=4)
            + rows_of("seresnet50", {0: 0.75, 1: 0.74, 2: 0.73}, img_size=64, ft_epochs=1,
                      weights_used="file:/w/lite0.pth#sha256:abcd"))
    result = build(tmp_path, rows)
    assert sorted(result.decisions) == [
        "digits (32 px (items 72 px), 1+4 epochs, random init, 100 % of digits, batch 64)",
        "digits (64 px (items 72 px), 1+1 epochs, weights from a file, 100 % of digits, batch 64)"]
    for d in result.decisions.values():
        assert d.pick is None and d.sentence.startswith("Only ") and "under this protocol" in d.sentence
    assert result.comparisons.empty and result.summary["rank"].isna().all()
    page = result.html.read_text()
    assert "leads" not in page and "← use" not in page
    assert "<p class=protocol>32 px (items 72 px), 1+4 epochs, random init, 100 % of digits, batch 64</p>" in page


def test_thread_count_mix_is_another_section_and_sweep_plus_race_count_once(tmp_path):
    """A sweep (1 thread per run) and a race (the same runs, same ids, later attempts) and one 2-thread run: main
    ranked the 2-thread run as a variant `resnet34 [cpu_threads=2]` beside the others."""
    accs = {"resnet34": [0.90, 0.91, 0.92, 0.90, 0.91, 0.92], "resnet50": [0.80, 0.81, 0.82, 0.80, 0.81, 0.82]}
    sweep = [run_row(a, s, v, threads="1") for a, vs in accs.items() for s, v in enumerate(vs)]
    race = [{**r, "attempt": "20250103T000000000000", "experiment": "race"} for r in sweep[:3] + sweep[6:9]]
    two = run_row("resnet34", 0, 0.95, threads="2", run_id="fedcba987654")
    result = build(tmp_path, sweep + race + [two])
    s = result.summary
    assert s.section.nunique() == 2
    main = s[s.n > 1].set_index("model")
    assert main.n.to_dict() == {"resnet34": 6, "resnet50": 6}  # the race's records of the same runs count once
    assert result.decisions[next(k for k in result.decisions if "threads=1" in k)].pick == "resnet34"
    lone = s[s.n == 1]
    assert lone.model.tolist() == ["resnet34"] and "threads=2" in lone.protocol_text.iloc[0]


def test_report_and_race_agree_on_the_race_log(tmp_path):
    """The report on `race.write_log`'s own output and the race's runs: main ranked the candidate eliminated after
    the easy instances first, by its unpaired mean, against the race's tie."""
    import yaml

    from bench.sweep.experiment import load_experiment
    from bench.sweep.race import race

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"dataset": "digits", "archs": ["resnet34", "resnet50", "seresnet50"],
                                    "seeds": list(range(12)), "folds": [0]}))
    res = tmp_path / "results"
    exp = load_experiment(path, results_dir=str(res))
    rows = []

    def evaluate(configs):
        out = []
        for c in configs:
            easy = 0.1 if c.seed < 6 else -0.1  # the first rounds are easy, the later ones hard
            noise = {"resnet34": 0.01, "resnet50": -0.01}.get(c.arch, 0.0) * (-1) ** c.seed
            acc = {"resnet34": 0.85, "resnet50": 0.85, "seresnet50": 0.83}[c.arch] + easy + noise
            rows.append(run_row(c.arch, c.seed, acc, fold=c.fold, experiment="r"))
            out.append(acc)
        return out

    outcome = race(exp, evaluate, min_instances=6, log=res / "races" / "r.csv")
    write_csv(res / "runs.csv", rows)
    assert outcome.decision == "tie" and sorted(outcome.survivors) == ["resnet34", "resnet50"]
    result = report.build_report(res)
    (logged,) = result.races
    assert logged.decision == "tie" and logged.out_at == {"seresnet50": 6}
    d = result.decisions["digits"]
    assert sorted(d.tied) == sorted(outcome.survivors) and d.pick is None
    s = result.summary.set_index("model")
    assert s.loc["seresnet50", "noise"] == "beyond noise" and s.loc["seresnet50", "n_paired"] == 6
    assert s.loc["seresnet50", "gap"] == pytest.approx(0.02) and s.loc["seresnet50", "lacking"].startswith("seed 6")
    assert "Worse beyond noise: seresnet50." in d.sentence
    filtered = report.build_report(res, experiment="r")
    assert filtered.html == res / "report-r.html" and (res / "report.html").exists()


def test_p_best_and_rank_never_point_at_different_models():
    """Issue 16: seresnet10 showed P(best) 1.00 while ranked third (P(best) and the rank came from different
    instance sets). Random ragged results: the ranked best always has the highest P(best)."""
    from bench.report.stats import rank
    rng = np.random.default_rng(7)
    archs = ["resnet34", "resnet50", "seresnet50", "xresnet50"]
    checked = 0
    for _ in range(40):
        rows = []
        for a in archs:
            seeds = sorted(rng.choice(12, size=int(rng.integers(6, 13)), replace=False))
            rows += [dict(model=a, seed=str(s), split_seed="101", fold="0",
                          final_accuracy=0.8 + 0.02 * rng.standard_normal() + 0.05 * (s % 3)) for s in seeds]
        r = rank(pd.DataFrame(rows))
        if not r.models:
            continue
        p = r.p_best.dropna()
        checked += len(p) > 1
        assert p.empty or p.idxmax() == r.models[0] or p.max() == p[r.models[0]], (r.models, p.to_dict())
        assert (r.versus.gap >= 0).all()
    assert checked > 10


def test_long_labels_are_cut_with_the_whole_text_on_hover(tmp_path):
    """Issue 19: a long weights label pushed the table's columns off screen."""
    long = "file:/data/checkpoints/" + "x" * 150 + ".pth#sha256:0123456789abcdef"
    rows = (rows_of("resnet34", {0: 0.8, 1: 0.81, 2: 0.82}, weights_used=long)
            + rows_of("resnet34", {0: 0.7, 1: 0.71, 2: 0.72}, weights_used=long.replace("x", "y")))
    result = build(tmp_path, rows)
    page = result.html.read_text()
    assert result.summary.section.nunique() == 1 and len(result.summary) == 2  # two checkpoints, one protocol
    label = result.summary.model.iloc[0]
    assert len(label) > 150 and f'class=clip title="{label}">{label}</td>' in page
    assert "td.clip{max-width:22em;overflow:hidden;text-overflow:ellipsis}" in page


def test_how_much_pretraining_gives_pairs_an_arch_with_itself_under_the_same_protocol(tmp_path):
    """Issue 17: the report says how much pretraining gives. Only ImageNet vs random init of one architecture, every
    other setting equal, on the instances both ran; other epochs or another arch are never paired with them."""
    imagenet = dict(weights_used="torchvision:IMAGENET1K_V1", pretrained="true")
    rows = (rows_of("resnet34", {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.93}, **imagenet)
            + rows_of("resnet34", {0: 0.50, 1: 0.55, 2: 0.52}, pretrained="false")
            + rows_of("resnet50", {0: 0.60, 1: 0.61, 2: 0.62}, pretrained="false")
            + rows_of("resnet50", {0: 0.99, 1: 0.99, 2: 0.99}, head_epochs=5, **imagenet))
    result = build(tmp_path, rows)
    g = result.pretraining
    assert list(g.arch) == ["resnet34"] and g.n_pairs.iloc[0] == 3  # seed 3 has no random-init twin
    assert g.gain.iloc[0] == pytest.approx(np.mean([0.40, 0.37, 0.39])) and g.gain_lo95.iloc[0] > 0.3
    page = result.html.read_text()
    assert "How much pretraining gives on digits" in page and "+38.7 pp" in page
    assert (tmp_path / "results" / "report" / "pretraining.csv").exists()
