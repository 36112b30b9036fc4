"""What the report may average, what it keeps apart (stale rows) and where the article's figures may appear."""
from __future__ import annotations

import re

import numpy as np
import pytest

from html import escape as html_escape

from bench.report import build as report
from test_report import run_row, write_csv


def build(tmp_path, rows, **kw):
    res = tmp_path / "results"
    write_csv(res / "runs.csv", rows)
    return report.build_report(res, **kw)


def three(arch, base, **kw):
    return [run_row(arch, s, base + 0.01 * s, **kw) for s in range(3)]


@pytest.mark.parametrize("kw, label", [
    (dict(dataset_fingerprint="fp-other"), None),  # handled by staleness: see below
    (dict(precision="bf16"), "precision=bf16"),
    (dict(weights_used="torchvision:IMAGENET1K_V1"), "ImageNet weights"),
    (dict(cfg=dict(min_scale=0.35)), "min_scale=0.35"),
    (dict(cfg=dict(presize=False)), "presize=False"),
    # A setting that did not exist when the report was written: covered because the identity is the whole config.
    (dict(cfg=dict(optimizer="sgd")), "optimizer=sgd"),
    (dict(head="manual"), "head=manual"),
    (dict(item_size=512), "items 512 px"),
])
def test_never_averages_or_ranks_runs_of_another_protocol(tmp_path, kw, label):
    rows = three("resnet34", 0.80) + [{**r, "attempt": "20250101T000000000001"} for r in three("resnet34", 0.90, **kw)]
    result = build(tmp_path, rows)
    s = result.summary
    if label is None:  # another dataset version: the older rows are stale, never a variant averaged in
        assert list(s.model) == ["resnet34"] and s.n.iloc[0] == 3 and s.acc_mean.iloc[0] == pytest.approx(0.91)
        assert len(result.stale) == 3 and set(result.stale.final_accuracy.round(2)) == {0.80, 0.81, 0.82}
        return
    # Scored on the same images: one section, two candidates told apart by what differs, never averaged together
    # (issue 24: the user's question - this setting or that one? - gets one verdict).
    assert s.section.nunique() == 1 and len(set(s.model)) == 2 and (s.n == 3).all()
    assert sorted(s.acc_mean.round(2)) == [0.81, 0.91] and len(result.comparisons) == 1
    new = s[s.acc_mean.round(2) == 0.91].model.iloc[0]
    words = label.replace("ImageNet weights", "ImageNet").replace("items 512 px", "items 512 px")
    assert words in new and new != s[s.acc_mean.round(2) == 0.81].model.iloc[0]
    page = result.html.read_text()
    assert page.count("<section><h2>digits") == 1 and html_escape(new) in page


def test_architecture_only_settings_are_variants_ranked_together(tmp_path):
    # activation / self-attention / which weights file are the architecture: same section, told apart by label
    rows = three("xresnet50", 0.80, cfg=dict(activation="relu")) + three("xresnet50", 0.90, cfg=dict(activation="mish"))
    s = build(tmp_path, rows).summary
    assert s.section.nunique() == 1 and list(s.model) == ["xresnet50 (activation=mish)", "xresnet50 (activation=relu)"]
    assert s["rank"].tolist() == [1, 2]


@pytest.mark.parametrize("kw", [dict(memory_format="channels_last"), dict(device="cuda:NVIDIA H100"),
                                dict(threads="1")])
def test_the_execution_context_pools_with_the_instance(tmp_path, kw):
    """Memory format, device and threads are the context (issue 23): one model, its instances pooled."""
    rows = three("resnet34", 0.80) + [{**r, "attempt": "20250101T000000000001"} for r in three("resnet34", 0.90, **kw)]
    s = build(tmp_path, rows).summary
    assert list(s.model) == ["resnet34"] and s.n.iloc[0] == 3 and s.acc_mean.iloc[0] == pytest.approx(0.91)


def test_pools_what_does_not_change_the_numbers(tmp_path):
    # Worker count, results folder, experiment name, the dataset as typed, requested device and `pretrained` (when
    # what was loaded is recorded) do not make a variant; neither does the GPU model (the context, issue 23).
    rows = [run_row("resnet34", 0, 0.80, device="cuda:NVIDIA H100", cfg=dict(num_workers=8, device="cuda")),
            run_row("resnet34", 1, 0.82, device="cuda:NVIDIA H100", experiment="other",
                    cfg=dict(results_dir="/elsewhere", on_bad_image="fail", dataset="./digits/")),
            run_row("resnet34", 2, 0.84, device="cuda:NVIDIA H100", pretrained="true", cfg=dict(device="cuda:0"))]
    s = build(tmp_path, rows).summary
    assert list(s.model) == ["resnet34"] and s.n.iloc[0] == 3


def test_failure_joins_its_configuration_not_a_variant(tmp_path):
    # A failed row never learnt which weights / memory format it would have used.
    failed = run_row("resnet34", 3, 0, status="failed", weights_used="", memory_format="", device="")
    s = build(tmp_path, three("resnet34", 0.8) + [failed]).summary
    assert list(s.model) == ["resnet34"] and s.n.iloc[0] == 3 and s.status.iloc[0] == "1 failed"


def test_stale_rows_from_an_older_dataset_version_or_split_are_apart(tmp_path):
    old_data = [{**r, "attempt": "20240101T000000000000"} for r in three("resnet50", 0.50, dataset_fingerprint="fp0")]
    old_split = [{**r, "attempt": "20240601T000000000000"} for r in three("resnet50", 0.60, split_hash="sh0")]
    # Another split seed is another split, not a superseded one: a current variant.
    other_seed = three("resnet50", 0.70, split_seed=7, split_hash="sh7")
    current = three("resnet50", 0.90)
    result = build(tmp_path, old_data + old_split + other_seed + current)
    s = result.summary.set_index("protocol_text")
    words = "scored on the validation images of digits, 100 % subsample"
    assert sorted(s.index) == [f"{words}, split sh-digit", f"{words}, split sh7"]
    assert s.n.tolist() == [3, 3] and sorted(s.acc_mean.round(2)) == [0.71, 0.91]
    why = result.stale.set_index("final_accuracy").stale
    assert why[0.50].startswith("older dataset version (fingerprint fp0, now fp-digits")
    assert why[0.60].startswith("superseded split (hash sh0, now sh-digits")
    assert len(result.stale) == 6
    page = result.html.read_text()
    assert "6 stale run(s) from a superseded dataset version or split" in page
    assert (tmp_path / "results" / "report" / "stale.csv").read_text().count("\n") == 7


def test_stale_is_judged_before_filters(tmp_path):
    # The experiment filter must not make an older dataset version look current.
    rows = ([{**r, "attempt": "20240101T000000000000", "experiment": "old"} for r in
             three("resnet50", 0.5, dataset_fingerprint="fp0")] + three("resnet34", 0.9))
    result = build(tmp_path, rows, experiment="old")
    assert result.summary.empty and len(result.stale) == 3


@pytest.fixture
def article_file(tmp_path, monkeypatch):
    path = tmp_path / "datasets.yaml"
    path.write_text("plants: {source: /data/plants, profile: blog, article: true}\n"
                    "digits: {source: digits, profile: quick}\n")
    monkeypatch.setenv("BENCH_DATASETS", str(path))
    return path


# The article's protocol: 10+10 epochs at its learning rates from ImageNet weights, a quarter of the images.
ARTICLE = dict(head_epochs=10, ft_epochs=10, head_lr=0.01, ft_lr_min=1e-5, ft_lr_max=1e-4, pct_images=0.25,
               weights_used="torchvision:IMAGENET1K_V1")


def test_published_figures_only_beside_the_declared_article_dataset(tmp_path, article_file):
    common = dict(img_size=224, batch_size=64, **ARTICLE)
    rows = (three("resnet34", 0.6, dataset="plants", **common) + three("resnet34", 0.9, **common)
            + three("seresnet50", 0.6, dataset="plants", head="manual", **common)
            + three("resnet50", 0.6, dataset="plants", **{**common, "batch_size": 32}))
    result = build(tmp_path, rows)
    s = result.summary.set_index(["dataset", "arch"])
    assert s.loc[("plants", "resnet34"), "published_acc"] == pytest.approx(0.597)  # 224 px, fastai head, bs 64
    assert s.loc[("plants", "resnet34"), "published_top_k"] == pytest.approx(0.8402)
    assert s.loc[("plants", "seresnet50"), "published_acc"] == pytest.approx(0.6301)  # the manual-head run
    assert np.isnan(s.loc[("plants", "resnet50"), "published_acc"])  # the article ran it at bs 64 only
    assert np.isnan(s.loc[("digits", "resnet34"), "published_acc"])  # same settings, not the article's data
    md = (tmp_path / "results" / "report" / "summary.md").read_text()
    parts = md.split("\n## ")[1:]  # one per set of scored images
    plants, other = [p for p in parts if p.startswith("plants:")], [p for p in parts if p.startswith("digits:")]
    assert len(plants) == 1 and all("published %" in p for p in plants) and any("| 59.7 |" in p for p in plants)
    assert len(other) == 1 and "published" not in other[0]
    page = result.html.read_text()
    sections = dict(re.findall(r"<section><h2>(\w+)(.*?)</section>", page, re.S))
    assert "published %" in sections["plants"] and "the article's dataset" in sections["plants"]
    assert "published" not in sections["digits"]


def test_no_published_column_without_a_declared_article_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATASETS", str(tmp_path / "none.yaml"))
    result = build(tmp_path, three("resnet34", 0.6, dataset="plants", img_size=224))
    assert result.summary.published_acc.isna().all() and "published" not in result.html.read_text()


def test_old_head_name_matches_the_manual_head_run(tmp_path, article_file):
    # Results written before the rename called the hand-built head `custom`.
    result = build(tmp_path, three("seresnet50", 0.6, dataset="plants", head="custom", img_size=224, **ARTICLE))
    assert result.summary.published_acc.iloc[0] == pytest.approx(0.6301)


@pytest.mark.parametrize("change", [dict(ft_epochs=2), dict(head_epochs=1), dict(head_lr=3e-3), dict(ft_lr_max=1e-3),
                                    dict(pct_images=1.0), dict(weights_used="random"), dict(batch_size=32)])
def test_published_figures_only_beside_runs_of_the_article_protocol(tmp_path, article_file, change):
    # issue 16: a 2-epoch run was shown beside the article's 10+10-epoch figure
    rows = three("resnet34", 0.6, dataset="plants", **{"img_size": 224, "batch_size": 64, **ARTICLE, **change})
    assert np.isnan(build(tmp_path, rows).summary.published_acc.iloc[0])


def test_one_content_under_two_names_stays_current_when_one_name_moves_on(tmp_path):
    """Staleness is judged per content (issue 24, case 10): fp-a is current under `one`, so the runs of fp-a
    recorded under `two` (whose newest content is fp-b) are not stale: n = 6, not 3."""
    rows = ([{**r, "attempt": "20240101T000000000000"} for r in three("resnet50", 0.5, dataset="one",
                                                                       dataset_fingerprint="fp-a", split_hash="sh-a")]
            + [{**r, "attempt": "20240101T000000000001"} for r in [run_row("resnet50", s, 0.5, dataset="two",
                                                                           dataset_fingerprint="fp-a", split_hash="sh-a")
                                                                   for s in range(3, 6)]]
            + [{**r, "attempt": "20250101T000000000000"} for r in three("resnet50", 0.9, dataset="two",
                                                                       dataset_fingerprint="fp-b")])
    result = build(tmp_path, rows)
    assert result.stale.empty
    assert sorted(result.summary.n.tolist()) == [3, 6]
