"""Turn results/ (docs/SCHEMA.md) into per-dataset comparison tables, plots and one self-contained HTML report.

Only the CSV contract is read, never training code, so a report works on results from older versions and on
a sweep that is still running.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

NUMERIC = ["img_size", "batch_size", "pct_images", "head_epochs", "ft_epochs", "top_k", "params_total", "params_1k",
           "final_accuracy", "best_accuracy", "best_epoch", "final_top_k", "final_valid_loss",
           "phase1_seconds", "phase2_seconds", "total_seconds"]
TEXT = ["run_id", "attempt", "timestamp", "status", "error", "experiment", "arch", "family", "source", "head",
        "layer_groups", "pretrained", "dataset", "seed", "split_seed", "fold", "n_folds", "epoch_log"]
# Configuration that changes what is measured: runs differing here are never pooled into one mean.
VARIANT = ["head", "layer_groups", "pretrained", "weights_used", "img_size", "item_size", "batch_size", "pct_images",
           "head_epochs", "head_lr", "ft_epochs", "ft_lr_min", "ft_lr_max", "wd", "precision", "channels_last", "n_folds"]
PAIR = ["seed", "split_seed", "fold"]  # replicates of one configuration; comparisons pair on these


class ReportError(Exception):
    """Bad or absent input, worth one line to the user rather than a traceback."""


@dataclass
class ReportResult:
    html: Path
    files: list[Path]
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    failed: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def read_csv(path: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """All complete rows as strings (a run id like "1e5a…" or "000123…" must stay an id); absent file → empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return pd.DataFrame()
    if text and not text.endswith("\n"):
        # Writers append whole newline-terminated lines (bench.logs): an unterminated tail is a write in progress
        # or a killed writer, so it is left out, as bench.logs.read_rows does.
        text = text[: text.rfind("\n") + 1]
        _note(notes, f"{path}: ignored an incomplete last line (a run still writing, or a killed writer)")
    bad: list = []
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], engine="python",
                         on_bad_lines=lambda line: bad.append(line))
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    if bad:
        _note(notes, f"{path}: skipped {len(bad)} malformed line(s) (wrong number of fields)")
    return df


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None:
        notes.append(text)


def variant_labels(runs: pd.DataFrame) -> pd.Series:
    """`arch`, plus the settings that differ between runs of that arch on that dataset (so common cases stay short)."""
    keys = runs.reindex(columns=VARIANT).astype("string").fillna("")
    labels = runs.arch.astype(str).copy()
    for _, idx in runs.groupby(["dataset", "arch"], dropna=False).groups.items():
        varying = [c for c in VARIANT if keys.loc[idx, c].nunique() > 1]
        if varying:
            extra = keys.loc[idx, varying].apply(lambda r: ", ".join(f"{c}={v}" for c, v in r.items()), axis=1)
            labels[idx] = labels[idx] + " [" + extra + "]"
    return labels


def load_runs(results_dir: Path, notes: list[str] | None = None) -> pd.DataFrame:
    if not results_dir.is_dir():
        raise ReportError(f"results directory {results_dir} does not exist")
    runs = read_csv(results_dir / "runs.csv", notes)
    if runs.empty:
        raise ReportError(f"no runs in {results_dir / 'runs.csv'} (missing or empty): run `bench run` or a sweep first")
    runs = runs.reindex(columns=list(dict.fromkeys([*TEXT, *NUMERIC, *runs.columns])))
    runs["model"] = variant_labels(runs)
    for c in NUMERIC:
        runs[c] = pd.to_numeric(runs[c], errors="coerce")
    # Rows from before `status` existed: a row with an accuracy finished.
    runs["status"] = runs.status.fillna(pd.Series(np.where(runs.final_accuracy.notna(), "ok", "failed"), runs.index))
    runs["run_id"] = runs.run_id.fillna(pd.Series([f"row{i}" for i in runs.index], runs.index))
    runs["attempt"] = runs.attempt.fillna(runs.timestamp).fillna("")
    runs["dataset"] = runs.dataset.fillna("unknown")
    runs[["arch", "family", "source"]] = runs[["arch", "family", "source"]].fillna("?")
    runs["params_m"] = runs.params_1k.fillna(runs.params_total) / 1e6
    # Phase-2 seconds per epoch is what the article quotes (stage2_epoch_time); phase 1 only when there is no phase 2.
    runs["epoch_s"] = np.where(runs.ft_epochs > 0, runs.phase2_seconds / runs.ft_epochs,
                               runs.total_seconds / runs.head_epochs.where(runs.head_epochs > 0))
    return runs


def filter_runs(runs: pd.DataFrame, **wanted: str | None) -> pd.DataFrame:
    for col, value in wanted.items():
        if value is None:
            continue
        kept = runs[runs[col] == value]
        if kept.empty:
            have = ", ".join(sorted(runs[col].dropna().astype(str).unique())) or "none"
            raise ReportError(f"no runs with {col}={value!r} (available: {have})")
        runs = kept
    return runs


def latest_attempts(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Latest ok attempt per run id; failures only for run ids that never succeeded; count of retried failures."""
    runs = runs.sort_values(["attempt", "timestamp"], na_position="first", kind="stable")
    ok = runs[runs.status == "ok"].drop_duplicates("run_id", keep="last")
    bad = runs[runs.status != "ok"]
    retried = bad.run_id.isin(ok.run_id)
    return ok, bad[~retried].drop_duplicates("run_id", keep="last"), int(retried.sum())


def load_curves(results_dir: Path, ok: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch rows of exactly the attempts kept in `ok`; a missing log (older or partial run) is skipped."""
    frames = []
    for run in ok.itertuples():
        rel = run.epoch_log if isinstance(run.epoch_log, str) else f"{run.dataset}/epochs/{run.run_id}.csv"
        path = results_dir / rel
        log = read_csv(path)
        if log.empty or "epoch" not in log:
            continue
        if "attempt" in log and (log.attempt == run.attempt).any():
            log = log[log.attempt == run.attempt]
        elif "attempt" in log:  # attempt ids disagree (older writer): keep the file's last attempt
            log = log[log.attempt == log.attempt.dropna().iloc[-1]] if log.attempt.notna().any() else log
        log = log.reindex(columns=["epoch", "phase", "accuracy", "valid_loss", "seconds"])
        log = log.apply(pd.to_numeric, errors="coerce")
        frames.append(log.assign(dataset=run.dataset, model=run.model, run_id=run.run_id))
    cols = ["dataset", "model", "run_id", "epoch", "phase", "accuracy", "valid_loss", "seconds"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def paired_comparisons(ok: pd.DataFrame) -> pd.DataFrame:
    """For every two models with ≥2 common (seed, split_seed, fold): mean paired difference a−b with a 95 % t interval.

    `a` is always the model with the higher mean, so `diff` ≥ 0 and `within_noise` means the interval contains 0.
    """
    rows = []
    keyed = ok.assign(**{c: ok[c].fillna("") for c in PAIR})
    for ds, d in keyed.groupby("dataset", sort=False):
        wide = d.pivot_table(index=PAIR, columns="model", values="final_accuracy", aggfunc="mean")
        means = wide.mean().sort_values(ascending=False)
        for a, b in combinations([m for m in means.index if wide[m].count() >= 2], 2):
            diff = (wide[a] - wide[b]).dropna()
            n = len(diff)
            if n < 2:
                continue
            half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)
            lo, hi = diff.mean() - half, diff.mean() + half
            rows.append(dict(dataset=ds, a=a, b=b, n_pairs=n, diff=diff.mean(), ci_lo=lo, ci_hi=hi,
                             within_noise=bool(lo <= 0 <= hi)))
    return pd.DataFrame(rows, columns=["dataset", "a", "b", "n_pairs", "diff", "ci_lo", "ci_hi", "within_noise"])


def load_reference() -> pd.DataFrame:
    try:
        ref = resources.files("bench").joinpath("reference/blog_results.csv")
        with ref.open() as f:
            return pd.read_csv(f)
    except (NotADirectoryError, FileNotFoundError):  # namespace-package edge cases of editable installs
        return pd.read_csv(Path(__file__).with_name("reference") / "blog_results.csv")


def published(row, ref: pd.DataFrame) -> tuple[float, float]:
    """The article's accuracy/top-k for this arch; layer_groups and img_size narrow it only where the article has both."""
    cand = ref[ref.arch == row.arch]
    for col in ("layer_groups", "img_size"):
        if cand[col].nunique() > 1:
            same = cand[cand[col].astype(str) == str(row[col]).removesuffix(".0")]
            if same.empty and col == "img_size":  # fall back to the article's default protocol, its smallest size
                same = cand[cand.img_size == cand.img_size.min()]
            cand = same
    if len(cand) != 1:
        return np.nan, np.nan
    return float(cand.accuracy.iloc[0]), float(cand.top_k_accuracy.iloc[0])


def gmacs_lookup(speed: pd.DataFrame) -> dict:
    """(arch, img_size) → median GMACs of successful `bench speed` rows; other sizes do not describe the run."""
    if not {"arch", "gmacs"} <= set(speed.columns):
        return {}
    speed = speed.reindex(columns=["arch", "img_size", "gmacs", "status"])
    speed = speed[speed.status.fillna("ok") == "ok"]
    num = speed[["img_size", "gmacs"]].apply(pd.to_numeric, errors="coerce").assign(arch=speed.arch)
    return num.dropna(subset=["gmacs"]).groupby(["arch", "img_size"]).gmacs.median().to_dict()


def summarise(ok: pd.DataFrame, failed: pd.DataFrame, comps: pd.DataFrame, speed: pd.DataFrame,
              ref: pd.DataFrame) -> pd.DataFrame:
    first = {c: (c, "first") for c in ["arch", "family", "source", "layer_groups", "img_size", "params_m", "top_k"]}
    s = ok.groupby(["dataset", "model"], sort=False).agg(
        **first, n=("final_accuracy", "count"), acc_mean=("final_accuracy", "mean"), acc_std=("final_accuracy", "std"),
        topk_mean=("final_top_k", "mean"), topk_std=("final_top_k", "std"),
        total_s=("total_seconds", "mean"), epoch_s=("epoch_s", "mean"), best_epoch=("best_epoch", "median"))
    f = failed.groupby(["dataset", "model"], sort=False).agg(
        **{k: v for k, v in first.items() if k != "top_k"}, n_failed=("run_id", "size"), error=("error", "last"))
    s = s.combine_first(f).reset_index() if len(f) else s.reset_index().assign(n_failed=0, error=np.nan)
    s["n"] = s.n.fillna(0).astype(int)
    s["n_failed"] = s.n_failed.fillna(0).astype(int)
    s["status"] = np.where(s.n == 0, "failed", np.where(s.n_failed > 0, s.n_failed.astype(str) + " failed", "ok"))
    gm = gmacs_lookup(speed)
    s["gmacs"] = [gm.get((a, i), np.nan) for a, i in zip(s.arch, s.img_size)]
    s[["published_acc", "published_top_k"]] = [published(r, ref) for _, r in s.iterrows()] or np.empty((0, 2))
    s = s.sort_values(["dataset", "acc_mean"], ascending=[True, False], na_position="last", kind="stable")
    return pd.concat([_versus_best(d, comps) for _, d in s.groupby("dataset", sort=False)], ignore_index=True)


def _versus_best(s: pd.DataFrame, comps: pd.DataFrame) -> pd.DataFrame:
    s = s.copy()
    s["gap"] = s["gap_lo"] = s["gap_hi"] = s["gap_n"] = np.nan
    s["noise"] = ""
    if s.acc_mean.notna().any():
        best = s.model.iloc[0]
        s.loc[s.index[0], "noise"] = "best"
        c = comps[(comps.dataset == s.dataset.iloc[0]) & (comps.a == best)].set_index("b")
        for i, m in zip(s.index[1:], s.model.iloc[1:]):
            if m in c.index:
                gap = c.loc[m, ["diff", "ci_lo", "ci_hi", "n_pairs"]].to_numpy(float)
                s.loc[i, ["gap", "gap_lo", "gap_hi", "gap_n"]] = gap
                s.loc[i, "noise"] = "within noise" if c.loc[m, "within_noise"] else "beyond noise"
            elif pd.notna(s.loc[i, "acc_mean"]):
                s.loc[i, "noise"] = "untested (<2 paired)"
    return s


def headline(s: pd.DataFrame) -> str:
    """One sentence a reader can act on: who won, by how much, and whether that is beyond noise."""
    ranked = s[s.acc_mean.notna()]
    if ranked.empty:
        return "No finished runs yet."
    w = ranked.iloc[0]
    text = f"Best: {w.model} with {fmt_pm(w.acc_mean, w.acc_std)} % accuracy (n={w.n})."
    if len(ranked) == 1:
        return text + " No other model to compare with."
    r = ranked.iloc[1]
    if pd.isna(r.gap):
        return text + (f" Runner-up {r.model} is {100 * (w.acc_mean - r.acc_mean):.2f} pp behind; not tested for "
                       "noise (needs ≥2 seeds/folds run for both).")
    tied = ranked[ranked.noise == "within noise"].model.tolist()
    text += (f" Runner-up {r.model} is {100 * r.gap:.2f} pp behind (95 % CI of the gap {100 * r.gap_lo:.2f} to "
             f"{100 * r.gap_hi:.2f} pp, paired over {int(r.gap_n)} seeds/folds): {r.noise}.")
    return text + (f" Within noise of the best: {', '.join(tied)}." if tied else " Every tested model is beyond noise.")


def fmt_pm(mean, std, scale=100.0, digits=2) -> str:
    if pd.isna(mean):
        return ""
    return f"{scale * mean:.{digits}f}" + (f" ± {scale * std:.{digits}f}" if pd.notna(std) else "")


def _num(v, fmt="{:.2f}") -> tuple[str, float]:
    return ("", np.nan) if pd.isna(v) else (fmt.format(v), float(v))


# (header, row -> (text, sort value)); the HTML sorts on the value, Markdown shows the text.
COLUMNS = [
    ("model", lambda r: (r.model, r.model)),
    ("family", lambda r: (r.family, r.family)),
    ("source", lambda r: (r.source, r.source)),
    ("params (M)", lambda r: _num(r.params_m, "{:.1f}")),
    ("GMACs", lambda r: _num(r.gmacs)),
    ("accuracy %", lambda r: (fmt_pm(r.acc_mean, r.acc_std), r.acc_mean)),
    ("n", lambda r: (str(r.n), r.n)),
    ("top-k %", lambda r: (fmt_pm(r.topk_mean, r.topk_std)
                           + (f" (k={r.top_k:.0f})" if pd.notna(r.top_k) and pd.notna(r.topk_mean) else ""), r.topk_mean)),
    ("train time (s)", lambda r: _num(r.total_s, "{:.0f}")),
    ("s/epoch", lambda r: _num(r.epoch_s, "{:.1f}")),
    ("best epoch", lambda r: _num(r.best_epoch, "{:g}")),
    ("published %", lambda r: _num(100 * r.published_acc, "{:.1f}")),
    ("gap to best, pp [95 % CI]", lambda r: ("" if pd.isna(r.gap) else
                                             f"{100 * r.gap:.2f} [{100 * r.gap_lo:.2f}, {100 * r.gap_hi:.2f}]", r.gap)),
    ("noise", lambda r: (r.noise, r.noise)),
    ("status", lambda r: (r.status + (f": {r.error}" if isinstance(r.error, str) else ""), r.status)),
]


def markdown_table(s: pd.DataFrame) -> str:
    cells = [[fn(r)[0].replace("|", "\\|") for _, fn in COLUMNS] for r in s.itertuples()]
    lines = ["| " + " | ".join(h for h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells]) + "\n"


def html_table(s: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in COLUMNS)
    body = []
    for r in s.itertuples():
        tds = []
        for _, fn in COLUMNS:
            text, value = fn(r)
            key = "" if value is None or (isinstance(value, float) and np.isnan(value)) else value
            tds.append(f'<td data-v="{html.escape(str(key))}">{html.escape(text)}</td>')
        body.append(f'<tr class="{html.escape(r.noise.split()[0] if r.noise else r.status.split()[0])}">{"".join(tds)}</tr>')
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "dataset"


def build_report(results_dir: Path, out_dir: Path | None = None, dataset: str | None = None,
                 experiment: str | None = None, family: str | None = None) -> ReportResult:
    from bench import plots  # matplotlib is slow to import; the CLI's other commands should not pay for it

    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    notes: list[str] = []
    runs = filter_runs(load_runs(results_dir, notes), dataset=dataset, experiment=experiment, family=family)
    ok, failed, retried = latest_attempts(runs)
    comps = paired_comparisons(ok)
    summary = summarise(ok, failed, comps, read_csv(results_dir / "speed.csv", notes), load_reference())
    curves = load_curves(results_dir, ok)
    if retried:
        notes.append(f"{retried} failed attempt(s) later succeeded on retry and are not counted as failures.")

    art = out_dir / "report"
    art.mkdir(parents=True, exist_ok=True)
    files = []
    for name, frame in [("summary", summary), ("comparisons", comps), ("failed", failed)]:
        frame.to_csv(art / f"{name}.csv", index=False)
        files.append(art / f"{name}.csv")
    sections, md = [], [f"# Benchmark report\n"]
    for ds, s in summary.groupby("dataset", sort=False):
        images = []
        for key, (title, make) in plots.PLOTS.items():
            fig = make(s, ok[ok.dataset == ds], curves[curves.dataset == ds])
            if fig is not None:
                png = art / f"{slug(ds)}_{key}.png"
                plots.save(fig, png)
                files.append(png)
                images.append((title, png))
        md += [f"## {ds}\n", headline(s) + "\n", markdown_table(s)] + [f"![{t}]({p.name})\n" for t, p in images]
        sections.append(_html_section(ds, s, comps[comps.dataset == ds], images))
    (art / "summary.md").write_text("\n".join(md + [f"_{n}_\n" for n in notes]), encoding="utf-8")
    files.append(art / "summary.md")
    report = out_dir / "report.html"
    filters = ", ".join(f"{k}={v}" for k, v in dict(dataset=dataset, experiment=experiment, family=family).items() if v)
    report.write_text(_html_page(sections, notes, filters, len(ok), len(failed)), encoding="utf-8")
    return ReportResult(report, [*files, report], summary, comps, failed, notes)


def _html_section(ds: str, s: pd.DataFrame, comps: pd.DataFrame, images) -> str:
    pairs = ""
    if len(comps):
        c = comps.assign(diff=100 * comps["diff"], ci_lo=100 * comps.ci_lo, ci_hi=100 * comps.ci_hi)
        pairs = ("<details><summary>All pairwise comparisons (a − b, accuracy pp, paired by seed/fold)</summary>"
                 + c.drop(columns="dataset").to_html(index=False, float_format="{:.2f}".format, border=0) + "</details>")
    imgs = "".join(f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,'
                   f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(t)}</figcaption></figure>'
                   for t, p in images)
    return (f"<section><h2>{html.escape(str(ds))}</h2><p class=headline>{html.escape(headline(s))}</p>"
            f"{html_table(s)}{pairs}<div class=plots>{imgs}</div></section>")


SORT_JS = """document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], asc = th.dataset.dir !== 'asc';
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.dir); th.dataset.dir = asc ? 'asc' : 'desc';
  const key = r => { const v = r.cells[i].dataset.v; return v === '' ? null : isNaN(v) ? v : parseFloat(v); };
  [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
    if (x === null || y === null) return (x === null) - (y === null);  // blanks last either way
    return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1); }).forEach(r => body.appendChild(r));
}));"""

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}th{cursor:pointer;background:#f3f3f3}
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}tr.best{background:#e6f4e6;font-weight:600}
tr.within{background:#f6f9e8}tr.failed{color:#a00}.headline{font-size:16px}figure{display:inline-block;margin:8px}
img{max-width:100%}.plots{display:flex;flex-wrap:wrap}details{margin:8px 0}"""


def _html_page(sections, notes, filters, n_ok, n_failed) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = f"{n_ok} finished run(s), {n_failed} failed" + (f"; filters: {filters}" if filters else "")
    note = "".join(f"<p><em>{html.escape(n)}</em></p>" for n in notes)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Benchmark report</title><style>{CSS}</style>"
            f"</head><body><h1>Benchmark report</h1><p>{html.escape(meta)} — generated {when}. Accuracy: mean ± sd "
            "over seeds/folds; gap to best: how far behind the best (paired by seed/fold) with a 95 % t interval; "
            "<b>within noise</b> means that interval contains 0. Published: the article's accuracy for the same arch "
            "(its data, 224 px), comparable only on a re-run of its data. Click a column header to sort.</p>"
            f"{note}{''.join(sections)}"
            f"<script>{SORT_JS}</script></body></html>")


def _run_cli(args: argparse.Namespace) -> int:
    try:
        result = build_report(args.results_dir, args.out, args.dataset, args.experiment, args.family)
    except ReportError as e:
        print(f"bench report: {e}", file=sys.stderr)
        return 2
    for s in result.summary.groupby("dataset", sort=False):
        print(f"[{s[0]}] {headline(s[1])}")
    print(f"wrote {result.html} (+ tables and plots in {result.html.parent / 'report'})")
    return 0


def add_cli(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="aggregate results/ into tables, plots and results/report.html")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="results directory (default: results)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: the results directory)")
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--experiment", help="only runs of this experiment (sweep file stem)")
    p.add_argument("--family", help="only this architecture family")
    p.set_defaults(func=_run_cli)
    return p
