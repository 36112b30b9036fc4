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

from .decision import Decision, decide
from .html import gmacs_hints, html_page, html_section, markdown_table, slug
from .races import Race, load_races, race_html, race_markdown
from .reference import add_published, article_datasets, load_reference
from .stats import p_best_table, paired_comparisons
from .tables import ReportError, filter_runs, label_models, latest_attempts, load_curves, load_runs, read_csv, summarise


@dataclass
class ReportResult:
    html: Path
    files: list[Path]
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    failed: pd.DataFrame
    stale: pd.DataFrame = field(default_factory=pd.DataFrame)
    decisions: dict[str, Decision] = field(default_factory=dict)
    races: list[Race] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def build_report(results_dir: Path, out_dir: Path | None = None, dataset: str | None = None,
                 experiment: str | None = None, family: str | None = None) -> ReportResult:
    from . import plots  # matplotlib is slow to import; the CLI's other commands should not pay for it

    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    notes: list[str] = []
    runs = filter_runs(load_runs(results_dir, notes), dataset=dataset, experiment=experiment, family=family)
    runs = label_models(runs)
    ok, failed, retried, stopped = latest_attempts(runs[runs.stale == ""])
    stale = latest_attempts(runs[runs.stale != ""])[0]
    comps = paired_comparisons(ok)
    summary = summarise(ok, failed, comps, read_csv(results_dir / "speed.csv", notes), p_best_table(ok))
    article = article_datasets()
    summary = add_published(summary, load_reference(), article)
    curves = load_curves(results_dir, ok)
    races = load_races(results_dir, notes, experiment)
    if retried:
        notes.append(f"{retried} failed attempt(s) later succeeded on retry and are not counted as failures.")
    if stopped:
        notes.append(f"{stopped} interrupted run(s) (stopped by the user) are neither results nor failures; "
                     "resuming the sweep re-runs them.")
    if len(stale):
        notes.append(f"{len(stale)} run(s) on a superseded dataset version or split are shown apart (stale) and not "
                     "averaged in.")

    art = out_dir / "report"
    art.mkdir(parents=True, exist_ok=True)
    files = []
    for name, frame in [("summary", summary), ("comparisons", comps), ("failed", failed),
                        ("stale", stale.reindex(columns=["dataset", "model", "run_id", "seed", "fold",
                                                         "final_accuracy", "timestamp", "stale"]))]:
        frame.to_csv(art / f"{name}.csv", index=False)
        files.append(art / f"{name}.csv")
    sections, decisions, md = [], {}, ["# Benchmark report\n"] + [race_markdown(r) for r in races]
    for ds in dict.fromkeys([*summary.dataset, *stale.dataset]):
        s, old, mine = summary[summary.dataset == ds], stale[stale.dataset == ds], ds in article
        decisions[ds] = d = decide(s)
        images = []
        for key, (title, make) in plots.PLOTS.items():
            fig = make(s, ok[ok.dataset == ds], curves[curves.dataset == ds])
            if fig is not None:
                png = art / f"{slug(ds)}_{key}.png"
                plots.save(fig, png)
                files.append(png)
                images.append((title, png))
        hints = "".join(f"GMACs missing: `{h}`\n" for h in gmacs_hints(s))
        md += [f"## {ds}\n", d.sentence + "\n", markdown_table(s, mine), hints,
               f"{len(old)} stale run(s) not averaged in.\n" if len(old) else ""]
        md += [f"![{t}]({p.name})\n" for t, p in images]
        sections.append(html_section(ds, s, d, comps[comps.dataset == ds], images, old, mine))
    (art / "summary.md").write_text("\n".join(md + [f"_{n}_\n" for n in notes]), encoding="utf-8")
    files.append(art / "summary.md")
    report = out_dir / "report.html"
    filters = ", ".join(f"{k}={v}" for k, v in dict(dataset=dataset, experiment=experiment, family=family).items() if v)
    race_part = ("<section><h2>Races</h2>" + "".join(race_html(r) for r in races) + "</section>") if races else ""
    report.write_text(html_page(sections, notes, filters, len(ok), len(failed), race_part,
                                bool(set(summary.dataset) & article)), encoding="utf-8")
    return ReportResult(report, [*files, report], summary, comps, failed, stale, decisions, races, notes)


def _run_cli(args: argparse.Namespace) -> int:
    try:
        result = build_report(args.results_dir, args.out, args.dataset, args.experiment, args.family)
    except ReportError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    for race in result.races:
        print(race.summary())
    for ds, d in result.decisions.items():
        print(f"[{ds}] {d.sentence}")
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
