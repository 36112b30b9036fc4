"""Reports on result files written here, in the shape docs/SCHEMA.md specifies (plus older and broken variants)."""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.report import build as report
from bench.report.plots import family_bars, pareto_front
from bench.report.tables import ReportError, label_models, latest_attempts, load_curves, load_runs

# Accuracy per seed: resnet34 is best, resnet50 about 2 pp behind on every seed (beyond noise: 6 seeds are the
# fewest on which an exact test can separate 3 models at 5 %), seresnet50 is behind on average but swings around
# resnet34 (within noise).
ACC = {
    "resnet34": [0.90, 0.92, 0.91, 0.93, 0.90, 0.91],
    "resnet50": [0.88, 0.90, 0.8905, 0.91, 0.885, 0.89],
    "seresnet50": [0.93, 0.86, 0.90, 0.95, 0.87, 0.91],
}
FAMILY = {"resnet34": "resnet", "resnet50": "resnet", "seresnet50": "seresnet", "xresnet50": "xresnet"}
PARAMS = {"resnet34": 21.8e6, "resnet50": 25.6e6, "seresnet50": 28.1e6, "xresnet50": 25.5e6}


CONFIG_FIELDS = ["arch", "head", "layer_groups", "pretrained", "img_size", "item_size", "batch_size", "pct_images",
                 "seed", "split_seed", "n_folds", "fold", "head_epochs", "ft_epochs", "top_k", "precision",
                 "channels_last", "experiment"]


def run_row(arch, seed, acc, *, dataset="digits", status="ok", attempt="20250101T000000000000", run_id=None,
            cfg=None, **kw):
    """One runs.csv row as `bench run` writes it: columns plus the full config in `config_json` (`cfg` adds
    config-only settings; keyword columns that are config fields go into both)."""
    rid = run_id or hashlib.sha256(f"{arch}{seed}{dataset}{kw}{cfg}".encode()).hexdigest()[:12]
    row = dict(run_id=rid, attempt=attempt, timestamp="2025-01-01T00:10:00+00:00", status=status,
               error="" if status == "ok" else "RuntimeError: CUDA out of memory", experiment="quick",
               arch=arch, family=FAMILY[arch], source="torchvision" if "se" not in arch else "pytorchcv",
               head="fastai", layer_groups="default", pretrained="auto", weights_used="random", dataset=dataset,
               dataset_fingerprint=f"fp-{dataset}", split_hash=f"sh-{dataset}", img_size=64, item_size=72,
               batch_size=64, pct_images=1.0, seed=seed, split_seed=101, n_folds=5, fold=0, head_epochs=1,
               ft_epochs=2, top_k=5, precision="fp32", channels_last="auto", memory_format="contiguous",
               device="cpu", params_1k=PARAMS[arch], n_valid=360,
               final_accuracy=acc if status == "ok" else "", best_accuracy=acc if status == "ok" else "",
               best_epoch=3 if status == "ok" else "", final_top_k=min(1.0, acc + 0.05) if status == "ok" else "",
               phase1_seconds=10, phase2_seconds=40, total_seconds=50 + seed,
               epoch_log=f"{dataset}/epochs/{rid}.csv")
    row.update(kw)
    config = {k: row[k] for k in CONFIG_FIELDS}
    config.update(dataset=dataset, device="auto", num_workers=0, results_dir="results", on_bad_image="skip",
                  min_scale=0.7, presize=True, weights=None)
    config.update(cfg or {})
    row["config_json"] = json.dumps(config, sort_keys=True)
    return row


def write_csv(path: Path, rows: list[dict], trailing_newline=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    if not trailing_newline:
        path.write_bytes(path.read_bytes().rstrip(b"\r\n"))


def write_epochs(results: Path, row: dict, final_acc: float):
    rows = [dict(run_id=row["run_id"], attempt=row["attempt"], phase=1 if e == 1 else 2, epoch=e,
                 phase_epoch=1 if e == 1 else e - 1, train_loss=1.0 / e, valid_loss=1.2 / e,
                 accuracy=final_acc - 0.1 * (3 - e), top_k_accuracy=0.99, lr=1e-3, mom=0.9, seconds=10 + e)
            for e in (1, 2, 3)]
    path = results / row["epoch_log"]
    old = pd.read_csv(path, dtype=str).to_dict("records") if path.exists() else []
    write_csv(path, old + rows)


def make_results(base: Path) -> Path:
    res = base / "results"
    rows = []
    for arch, accs in ACC.items():
        for seed, acc in enumerate(accs):
            rows.append(run_row(arch, seed, acc))
    # An earlier attempt of resnet34 seed 0 that must be superseded by the later one (0.90).
    rows.insert(0, run_row("resnet34", 0, 0.10, attempt="20240101T000000000000"))
    # A failure later retried successfully (not listed), and an arch that only ever failed (listed).
    rows.append(run_row("resnet50", 0, 0, status="failed", attempt="20240601T000000000000"))
    rows.append(run_row("xresnet50", 0, 0, status="failed"))
    # A run the user stopped: neither a result nor a failure.
    rows.append(run_row("xresnet50", 1, 0, status="interrupted"))
    # A second dataset with a single run.
    rows.append(run_row("seresnet50", 0, 0.5, dataset="pets", layer_groups="custom"))
    write_csv(res / "runs.csv", rows)
    for r in rows:
        if r["status"] == "ok":
            write_epochs(res, r, float(r["final_accuracy"]))
    write_csv(res / "speed.csv", [dict(arch="resnet34", img_size=64, gmacs=0.3, status="ok", params=21.8e6),
                                  dict(arch="resnet50", img_size=224, gmacs=4.1, status="ok", params=25.6e6)])
    return res


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    # Plotting is the slow part: one full report is shared by the tests that only read it.
    res = make_results(tmp_path_factory.mktemp("full"))
    return res, report.build_report(res)


def digits(result):
    return result.summary[result.summary.dataset == "digits"].set_index("model")


def test_aggregates_mean_std_n_and_keeps_latest_attempt(full):
    _, result = full
    s = digits(result)
    assert s.loc["resnet34", "n"] == 6  # the superseded 0.10 attempt is not a seventh replicate
    assert s.loc["resnet34", "acc_mean"] == pytest.approx(np.mean(ACC["resnet34"]))
    assert s.loc["resnet34", "acc_std"] == pytest.approx(np.std(ACC["resnet34"], ddof=1))
    assert s.loc["resnet34", "params_m"] == pytest.approx(21.8)
    assert s.loc["resnet34", "epoch_s"] == pytest.approx(20.0)  # phase-2 seconds / ft_epochs
    assert s.loc["resnet34", "total_s"] == pytest.approx(52.5)
    assert s.loc["resnet34", "gmacs"] == pytest.approx(0.3)
    assert np.isnan(s.loc["resnet50", "gmacs"])  # speed row at 224 px does not describe a 64 px run
    assert list(s.index) == ["resnet34", "seresnet50", "resnet50", "xresnet50"]  # by mean accuracy, failed last


def test_failed_runs_are_listed_not_dropped_and_interrupted_are_not_failures(full):
    _, result = full
    s = digits(result)
    assert s.loc["xresnet50", "status"] == "failed"
    assert s.loc["xresnet50", "n"] == 0 and s.loc["xresnet50", "n_failed"] == 1  # the interrupted run is not one
    assert "out of memory" in s.loc["xresnet50", "error"]
    assert s.loc["resnet50", "status"] == "ok"  # its failure was retried successfully
    assert list(result.failed.arch) == ["xresnet50"] and list(result.failed.status) == ["failed"]
    assert any("retry" in n for n in result.notes)
    assert any("1 interrupted run" in n for n in result.notes)
    md = (result.html.parent / "report" / "summary.md").read_text()
    assert re.search(r"\| xresnet50 \|.*\| failed: RuntimeError", md)


def test_interrupted_only_model_is_not_a_failed_model(tmp_path):
    res = tmp_path / "r"
    write_csv(res / "runs.csv", [run_row("resnet34", s, 0.8 + 0.01 * s) for s in range(3)]
              + [run_row("resnet50", 0, 0, status="interrupted"), run_row("resnet34", 3, 0, status="interrupted")])
    result = report.build_report(res)
    assert list(result.summary.model) == ["resnet34"] and result.summary.n.iloc[0] == 3
    assert result.failed.empty and "0 failed" in result.html.read_text()


def test_paired_tests_bounds_and_noise_marks(full):
    _, result = full
    c = result.comparisons.set_index(["a", "b"])
    diff = np.subtract(ACC["resnet34"], ACC["resnet50"])
    row = c.loc[("resnet34", "resnet50")]
    # resnet34 ahead on all 6 seeds, but these rows have no per-image outcomes: the image noise of 360 shared
    # validation images is bounded from the error rates (bench.stats), so 1.9 pp is not beyond noise
    assert row.n_pairs == 6 and row["diff"] == pytest.approx(diff.mean()) and row.lo < 0 < row.hi
    assert 0 < row.p_value < 1 and len(result.comparisons) == 3
    s = digits(result)
    assert s.loc["resnet34", "noise"] == "best" and s.loc["resnet34", "rank"] == 1
    # each comparison at alpha over every pair of the 3 ranked candidates
    assert s.loc["resnet50", "p_level"] == pytest.approx(0.05 / 3) and s.loc["resnet50", "noise"] == "within noise"
    assert s.loc["resnet50", "gap_lo"] < s.loc["resnet50", "gap"] < s.loc["resnet50", "gap_hi"]
    assert s.loc["xresnet50", "noise"] == "" and np.isnan(s.loc["xresnet50", "rank"])
    assert "no per-image outcomes" in result.decisions["digits"].sentence


def test_two_seeds_rank_nothing_but_say_what_is_needed(tmp_path):
    res = tmp_path / "r"
    # The case: 2 seeds gave a t interval of -130 to +188 pp. No rank, no P(best), a plain request.
    write_csv(res / "runs.csv", [run_row("resnet34", 0, 0.60), run_row("resnet34", 1, 0.95),
                                 run_row("resnet50", 0, 0.50), run_row("resnet50", 1, 0.40)])
    result = report.build_report(res)
    c = result.comparisons.iloc[0]
    assert c.n_pairs == 2 and c["diff"] == pytest.approx(0.325) and np.isnan(c.lo) and np.isnan(c.p_value)
    s = digits(result)
    assert (s.noise == "not ranked").all() and s["rank"].isna().all()
    d = result.decisions["digits"]
    assert d.pick is None and "fewer than two candidates have 3 (seed, fold) instances" in d.sentence
    page = result.html.read_text()
    assert "-130" not in page and "← use" not in page


def test_best_epoch_is_an_epoch(tmp_path):
    res = tmp_path / "r"
    write_csv(res / "runs.csv", [run_row("resnet34", s, 0.8, best_epoch=e) for s, e in enumerate([3, 4])])
    result = report.build_report(res)
    r = result.summary.iloc[0]
    assert (r.best_epoch, r.best_epoch_min, r.best_epoch_max) == (3, 3, 4)  # not the mean 3.5
    assert "| 3 (3–4) |" in (res / "report" / "summary.md").read_text()


def test_writes_tables_plots_and_self_contained_html(full):
    res, result = full
    art = res / "report"
    for name in ["summary.csv", "summary.md", "comparisons.csv", "failed.csv", "stale.csv",
                 "digits_accuracy_vs_time.png", "digits_family_bars.png", "digits_learning_curves.png",
                 "digits_accuracy_vs_params.png", "pets_learning_curves.png"]:
        assert (art / name).stat().st_size > 0, name
    # One model on pets: no scatter or bar plot of a single point
    assert not any((art / f"pets_{k}.png").exists() for k in ["accuracy_vs_time", "family_bars", "accuracy_vs_params"])
    assert result.html == res / "report.html"
    page = result.html.read_text()
    assert page.count("data:image/png;base64,") == 5  # 4 for digits, the learning curve for pets
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing to fetch
    assert "No single best: resnet34 (91.2 %, n=6) leads, not separated from seresnet50" in page
    assert "within noise" in page
    # one command line for every missing GMACs cell; resnet34 is measured at 64 px
    section = page[page.index("<h2>digits"):page.index("<h2>pets")]
    assert section.count("make speed") == 1
    assert "for a in resnet50 seresnet50 xresnet50; do make speed ARCH=$a SIZE=64; done" in page
    md = (art / "summary.md").read_text()
    table = [l for l in md.splitlines() if l.startswith("|")]
    assert len(table) == 2 + 4 + 2 + 1  # digits: header, rule, 4 models; pets: header, rule, 1 model
    assert len({len(re.split(r"(?<!\\)\|", l)) for l in table}) == 1  # same number of cells in every row
    back = pd.read_csv(art / "summary.csv")
    assert set(back.model) == {"resnet34", "resnet50", "seresnet50", "xresnet50"}


def test_family_bars_start_at_zero_and_keep_the_legend_off_the_bars(full):
    res, _ = full
    ok = latest_attempts(label_models(load_runs(res)))[0]
    fig = family_bars(ok[ok.dataset == "digits"])
    ax = fig.axes[0]
    assert ax.get_xlim()[0] == 0
    legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes
    assert family_bars(ok[ok.dataset == "pets"]) is None  # one bar compares nothing


def test_learning_curves_use_only_the_kept_attempt(full):
    res, _ = full
    ok = latest_attempts(label_models(load_runs(res)))[0]
    curves = load_curves(res, ok)
    r34 = curves[(curves.model == "resnet34") & (curves.dataset == "digits")]
    assert len(r34) == 18  # 6 seeds × 3 epochs, the 2024 attempt's rows are excluded
    assert r34.accuracy.min() > 0.5


def test_other_protocols_are_other_sections(tmp_path):
    res = tmp_path / "r"
    rows = [run_row("resnet34", s, 0.8 + 0.01 * s, img_size=size, epoch_log="")
            for size in (64, 128) for s in (0, 1)]
    write_csv(res / "runs.csv", rows)
    result = report.build_report(res)
    s = result.summary
    # scored on the same images: one section, two candidates labelled by what differs (issue 24)
    assert sorted(s.model) == ["resnet34 (128 px)", "resnet34 (64 px)"] and (s.n == 2).all()
    assert s.section.nunique() == 1 and list(result.decisions) == ["digits"]


def test_older_files_with_missing_columns(tmp_path):
    res = tmp_path / "old"
    keep = ["run_id", "timestamp", "arch", "family", "source", "dataset", "seed", "final_accuracy", "total_seconds"]
    rows = [{k: v for k, v in run_row(a, s, acc).items() if k in keep}
            for a, accs in ACC.items() for s, acc in enumerate(accs)]
    rows.append({**{k: v for k, v in run_row("xresnet50", 0, 0).items() if k in keep}, "final_accuracy": ""})
    write_csv(res / "runs.csv", rows)
    result = report.build_report(res)
    s = digits(result)
    assert s.loc["resnet34", "n"] == 6
    assert s.loc["xresnet50", "status"] == "failed"  # no status column: no accuracy means it did not finish
    assert s[["params_m", "topk_mean", "gmacs", "epoch_s"]].isna().all().all()
    # pairs by seed even without split_seed/fold columns (3 models, 6 seeds)
    assert len(result.comparisons) == 3 and (result.comparisons.n_pairs == 6).all()
    assert result.html.exists()


def test_numeric_looking_run_ids_stay_ids(tmp_path):
    res = tmp_path / "r"
    write_csv(res / "runs.csv", [run_row("resnet34", 0, 0.5, run_id="1e5000000000", attempt="1"),
                                 run_row("resnet34", 0, 0.7, run_id="1e5000000000", attempt="2"),
                                 run_row("resnet34", 1, 0.6, run_id="000000000001")])
    ok = latest_attempts(label_models(load_runs(res)))[0]
    assert sorted(ok.run_id) == ["000000000001", "1e5000000000"]
    assert ok.set_index("run_id").final_accuracy["1e5000000000"] == 0.7


def test_incomplete_and_malformed_lines_are_left_out_with_a_note(tmp_path):
    res = tmp_path / "r"
    write_csv(res / "runs.csv", [run_row("resnet34", s, 0.8) for s in range(3)], trailing_newline=False)
    with (res / "runs.csv").open("a") as f:
        f.write("\n" + "x," * 200 + "\n")  # a garbled line with far too many fields
        f.write(",".join(map(str, run_row("resnet50", 0, 0.9).values()))[:40])  # a writer killed mid-line
    result = report.build_report(res)
    assert list(result.summary.model) == ["resnet34"] and result.summary.n.iloc[0] == 3
    assert any("incomplete last line" in n for n in result.notes)
    assert any("1 malformed line" in n for n in result.notes)
    assert "incomplete last line" in result.html.read_text()


def test_only_failed_runs(tmp_path):
    res = tmp_path / "r"
    write_csv(res / "runs.csv", [run_row("resnet34", 0, 0, status="failed"),
                                 run_row("resnet50", 0, 0, status="failed")])
    result = report.build_report(res)
    assert list(result.summary.status) == ["failed", "failed"]
    assert "No finished runs yet." in result.html.read_text()
    assert "data:image/png" not in result.html.read_text()


def test_single_run(tmp_path):
    res = tmp_path / "one"
    row = run_row("resnet34", 0, 0.9)
    write_csv(res / "runs.csv", [row])
    write_epochs(res, row, 0.9)
    result = report.build_report(res, out_dir=tmp_path / "out")
    assert len(result.summary) == 1 and result.comparisons.empty
    d = result.decisions["digits"]
    assert d.sentence.startswith("Only resnet34 has finished runs on these images (90.0 %, n=1): nothing to "
                                 "compare it with") and d.pick is None
    # one architecture: no "use" arrow under a sentence that says there is nothing to compare (issue 19)
    assert "← use" not in result.html.read_text() and "nothing to compare" in result.html.read_text()
    assert (tmp_path / "out" / "report.html").exists()


def test_filters(full):
    res, _ = full
    result = report.build_report(res, out_dir=res.parent / "filtered", family="resnet", dataset="digits")
    assert set(result.summary.model) == {"resnet34", "resnet50"}
    with pytest.raises(ReportError, match=r"dataset='cifar'.*available: digits, pets"):
        report.build_report(res, out_dir=res.parent / "filtered", dataset="cifar")


def _cli(argv):
    parser = argparse.ArgumentParser(prog="bench")
    report.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "does not exist"),
    (lambda d: d.mkdir(), "no runs"),
    (lambda d: (d.mkdir(), (d / "runs.csv").write_text("")), "no runs"),
    (lambda d: write_csv(d / "runs.csv", [run_row("resnet34", 0, 0.9)]) and None, None),
])
def test_cli_exit_codes_and_messages(tmp_path, capsys, setup, message):
    res = tmp_path / "results"
    setup(res)
    code = _cli(["report", "--results-dir", str(res)])
    out, err = capsys.readouterr()
    if message is None:
        assert code == 0 and "[digits] Only resnet34" in out and "report.html" in out
    else:
        assert code == 2 and err.startswith("bench: error: ") and not (tmp_path / "results" / "report").exists()
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_pareto_front():
    pts = pd.DataFrame(dict(params_m=[1, 2, 3, 4, 5], acc=[50, 60, 55, 70, 70], model=list("abcde")))
    assert list(pareto_front(pts).model) == ["a", "b", "d"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the report: sorts by accuracy, then records what the browser really decoded and how wide
# the widest main table is laid out.
PROBE = """<script>
[...document.querySelectorAll('table.main th')].find(th => th.textContent === 'accuracy %').click();  // ascending
document.body.dataset.firstModel = document.querySelector('table.main tbody tr').cells[0].textContent;
document.body.dataset.decoded = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
document.body.dataset.mainWidth = Math.max(...[...document.querySelectorAll('table.main')].map(
  t => t.getBoundingClientRect().width));
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`; .ci/run installs it)")
def test_renders_in_headless_chromium(full, tmp_path):
    _, result = full
    page = tmp_path / "probe.html"
    page.write_text(result.html.read_text().replace("</body>", PROBE + "</body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--window-size=1280,1800", "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    assert dom.count("<table class=\"sortable main\">") == dom.count("<table class=\"sortable details\">") == 2
    width = float(re.search(r'data-main-width="([0-9.]+)"', dom).group(1))
    assert 300 < width <= 1280, f"the main table is {width} px wide: it must fit a 1280 px screen"
    assert dom.index("<h2>Verdicts</h2>") < dom.index("<table class=\"sortable main\">")  # the verdict first
    assert re.search(r'data-decoded="5"', dom), "not every inlined image decoded"
    assert 'data-first-model="resnet50"' in dom  # lowest mean accuracy first; the failed row (blank) goes last
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,1800", result.html.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a blank page is a few kB
