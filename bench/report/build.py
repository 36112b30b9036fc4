"""Turn results/ (docs/SCHEMA.md) into per-dataset comparison tables, plots and one self-contained HTML report.

Only the CSV contract is read, never training code, so a report works on results from older versions and on
a sweep that is still running.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .html import headline, html_page, html_section, markdown_table, slug
from .stats import paired_comparisons
from .tables import (ReportError, filter_runs, latest_attempts, load_curves, load_reference, load_runs, read_csv,
                     summarise)


@dataclass
class ReportResult:
    html: Path
    files: list[Path]
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    failed: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def build_report(results_dir: Path, out_dir: Path | None = None, dataset: str | None = None,
                 experiment: str | None = None, family: str | None = None) -> ReportResult:
    from . import plots  # matplotlib is slow to import; the CLI's other commands should not pay for it

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
        sections.append(html_section(ds, s, comps[comps.dataset == ds], images))
    (art / "summary.md").write_text("\n".join(md + [f"_{n}_\n" for n in notes]), encoding="utf-8")
    files.append(art / "summary.md")
    report = out_dir / "report.html"
    filters = ", ".join(f"{k}={v}" for k, v in dict(dataset=dataset, experiment=experiment, family=family).items() if v)
    report.write_text(html_page(sections, notes, filters, len(ok), len(failed)), encoding="utf-8")
    return ReportResult(report, [*files, report], summary, comps, failed, notes)


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
