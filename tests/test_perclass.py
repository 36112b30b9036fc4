"""Baselines and per-class results from per-image outcomes (bench.report.perclass)."""
from __future__ import annotations

import pandas as pd
import pytest

from bench.report import perclass
from bench.sinks import write_rows
from bench.train.outcomes import OUTCOME_FIELDS

LABELS = ["a"] * 70 + ["b"] * 20 + ["c"] * 10  # 70 % one class: "always a" scores 70 %


def _outcomes(preds, labels=LABELS, split="valid", prefix="v"):
    return [dict(split=split, item=f"{prefix}{i}", label=t, pred=p, p_true=0.5)
            for i, (t, p) in enumerate(zip(labels, preds))]


def _section(tmp_path, runs):
    """runs: (model, run_id, outcome rows, extra row columns) -> (section rows, loaded outcomes)."""
    rows = []
    for model, rid, out, extra in runs:
        rel = f"ds/outcomes/{rid}.csv.gz"
        write_rows(tmp_path / rel, out, OUTCOME_FIELDS)
        rows.append(dict(model=model, run_id=rid, outcomes=rel, **extra))
    ok = pd.DataFrame(rows)
    return ok, perclass.load(tmp_path, ok)


def test_majority_baseline_flags_a_model_that_only_predicts_the_largest_class(tmp_path):
    always_a = ["a"] * 100
    good = list(LABELS[:95]) + ["a"] * 5  # 95 % right: the 5 errors are c -> a
    ok, outs = _section(tmp_path, [("lazy", "r1", _outcomes(always_a), {}), ("lazy", "r2", _outcomes(always_a), {}),
                                   ("good", "r3", _outcomes(good), {}), ("old", "r4", [], {})])
    ok.loc[ok.run_id == "r4", "outcomes"] = ""  # a row from before outcomes existed
    sc = perclass.section_classes(ok, outs)
    b = sc.baseline
    assert b.n_images == 100 and b.majority == "a" and b.share == pytest.approx(0.7) and b.unbalanced
    m = sc.models.set_index("model")
    assert m.loc["lazy", "accuracy"] == pytest.approx(0.7) and not m.loc["lazy", "above"]
    assert m.loc["good", "above"] and m.loc["good", "p_above"] < 1e-6
    assert m.loc["lazy", "balanced"] == pytest.approx(1 / 3)  # recall 1, 0, 0
    assert m.loc["good", "recall_c"] == pytest.approx(0.5) and m.loc["good", "recall_b"] == 1
    assert sc.confusion["lazy"].loc["b", "a"] == 40  # summed over its two runs
    assert sc.confused_pairs("lazy")[0] == ("b", "a", 40, 1.0)
    assert sc.confused_pairs("good") == [("c", "a", 5, 0.5)]
    words = " ".join(perclass.sentences(sc))
    assert "Majority-class baseline: 70.0 % (always 'a'" in words
    assert "Not above it beyond noise (one-sided exact binomial test" in words and "lazy (70.0 %" in words
    assert "good" not in words.split("Not above")[1] and "1 run(s) have no per-image outcomes" in words


def test_balanced_classes_say_nothing_about_imbalance_and_test_results_are_separate(tmp_path):
    labels = ["a"] * 50 + ["b"] * 50
    preds = ["a"] * 50 + ["b"] * 40 + ["a"] * 10
    test = _outcomes(["a", "b", "b", "b"], ["a", "b", "b", "a"], split="test", prefix="t")
    ok, outs = _section(tmp_path, [("m", "r1", _outcomes(preds, labels) + test,
                                    dict(test_accuracy=0.5, test_n=4))])
    sc = perclass.section_classes(ok, outs)
    assert not sc.baseline.unbalanced and sc.baseline.n_images == 100  # the test images are not scored images
    assert sc.test_baseline.n_images == 4 and sc.test.test_accuracy.iloc[0] == 0.5
    cols = perclass.summary_columns(sc).set_index("model")
    assert cols.loc["m", "majority_acc"] == 0.5 and cols.loc["m", "test_acc"] == 0.5
    assert "unbalanced" not in " ".join(perclass.sentences(sc))


def test_no_outcomes_no_baseline(tmp_path):
    ok = pd.DataFrame([dict(model="m", run_id="r", outcomes="")])
    sc = perclass.section_classes(ok, perclass.load(tmp_path, ok))
    assert sc.baseline is None and sc.models.empty
    assert "No per-image outcomes" in perclass.sentences(sc)[0]
