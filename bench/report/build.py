"""Turn results/ (docs/SCHEMA.md) into per-dataset comparison tables, plots and one self-contained HTML report.

Only the CSV contract is read, never training code, so a report works on results from older versions and on
a sweep that is still running.
"""
from __future__ import annotations

import argparse
import html
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import contrasts, perclass
from .classes_html import baseline_html, section_html as classes_html, section_markdown as classes_markdown
from .decision import Decision, decide
from .groups import fill_commands, one_per_instance
from .html import gmacs_hint, html_page, html_section, markdown_table, runs_html, slug, verdict_html
from .races import Race, load_races, race_html, race_markdown
from .reference import add_published, article_datasets, load_reference
from .tables import (ReportError, filter_runs, instance_sets, label_models, lacking, latest_attempts, load_curves,
                     load_runs, read_csv, summarise)
from ..stats import MARGIN, Verdict
from .verdicts import COMP_COLS, contexts, correctness, pairwise, section_verdict


@dataclass
class ReportResult:
    html: Path
    files: list[Path]
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    failed: pd.DataFrame
    stale: pd.DataFrame = field(default_factory=pd.DataFrame)
    decisions: dict[str, Decision] = field(default_factory=dict)
    verdicts: dict = field(default_factory=dict)  # section -> bench.stats.Verdict
    races: list[Race] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pretraining: pd.DataFrame = field(default_factory=pd.DataFrame)  # contrasts.pretraining: ImageNet vs random
    baselines: dict[str, str] = field(default_factory=dict)  # as decisions: who is not above the majority class


def output_name(**filters: str | None) -> str:
    """`report`, or `report-<filter values>` for a filtered report, so `--experiment quick` does not overwrite the
    whole report (nor another experiment's)."""
    return "-".join(["report", *(slug(v) for v in filters.values() if v)])


def _verdicts(ok: pd.DataFrame, outcomes: dict, margin: float = MARGIN) -> dict:
    return {sec: section_verdict(d, outcomes, margin=margin) for sec, d in ok.groupby("section", sort=False)}


def _fills(ok: pd.DataFrame, summary: pd.DataFrame, results_dir: Path) -> dict:
    """(section, model) → commands that fill the instances it lacks."""
    out = {}
    for r in summary[summary.lacking.astype(bool)].itertuples():
        sec = ok[ok.section == r.section]
        rows = sec[sec.model == r.model]
        out[(r.section, r.model)] = fill_commands(rows, lacking(instance_sets(sec), r.model), str(results_dir))
    return out


def _with_classes(summary: pd.DataFrame, classes: dict) -> pd.DataFrame:
    """The summary with each model's majority baseline, its p against it, balanced and test accuracy (perclass)."""
    parts = [perclass.summary_columns(sc).assign(section=sec) for sec, sc in classes.items()]
    extra = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["section", "model"])
    extra = extra.reindex(columns=["section", "model", "majority_acc", "p_above_majority", "balanced_acc",
                                   "test_acc", "test_n"])
    return summary.merge(extra, on=["section", "model"], how="left")


def _plots(art: Path, ds: str, sec: str, n_secs: int, s: pd.DataFrame, ok: pd.DataFrame, curves: pd.DataFrame,
           sc) -> list[tuple[str, Path]]:
    """A section's figures as PNG files under `art`: (title, path) each; the confusion matrices last."""
    from . import plots  # matplotlib is slow to import; the CLI's other commands should not pay for it
    rows = ok[ok.section == sec]
    figs = [(key, what, make(s, rows, curves[curves.run_id.isin(rows.run_id)]))
            for key, (what, make) in plots.PLOTS.items()]
    if sc is not None and sc.confusion:
        figs.append(("confusion", "Confusion matrices", plots.confusion_matrices(sc.confusion)))
    tag = f"_{sec.rsplit(' · ', 1)[-1]}" if n_secs > 1 else ""  # the protocol id
    out = []
    for key, what, fig in figs:
        if fig is not None:
            png = art / f"{slug(ds)}{tag}_{key}.png"
            plots.save(fig, png)
            out.append((what, png))
    return out


def _analyse(results_dir: Path, ok: pd.DataFrame, failed: pd.DataFrame, notes: list[str], margin: float) -> tuple:
    """Per-image outcomes, the pretraining contrast, each section's verdict, the pairwise table and the summary
    (with its per-class columns) of the current ok runs."""
    per_image = perclass.load(results_dir, ok)  # each run's outcomes file, read once
    outcomes = correctness(per_image)
    gains = contrasts.pretraining(ok, outcomes)
    verdicts = _verdicts(ok, outcomes, margin)
    comps = pd.concat([pairwise(d, outcomes, d.dataset.iloc[0], sec) for sec, d in ok.groupby("section", sort=False)]
                      or [pd.DataFrame(columns=COMP_COLS)], ignore_index=True)
    summary = summarise(ok, failed, read_csv(results_dir / "speed.csv", notes), verdicts)
    classes = {sec: perclass.section_classes(d, per_image) for sec, d in ok.groupby("section", sort=False)}
    return outcomes, gains, verdicts, comps, _with_classes(summary, classes), classes


def _notes(repeats: int, retried: int, stopped: int, stale: int) -> list[str]:
    """What the page says about rows it counted once, retried, interrupted or set apart."""
    notes = []
    if repeats:
        notes.append(f"{repeats} result(s) repeat a (seed, fold) instance already recorded for the same model "
                     "and protocol (a re-run, another spelling of the dataset, a sweep and a race): each instance "
                     "counts once, its latest ok attempt; n counts instances.")
    if retried:
        notes.append(f"{retried} failed attempt(s) later succeeded on retry and are not counted as failures.")
    if stopped:
        notes.append(f"{stopped} interrupted run(s) (stopped by the user) are neither results nor failures; "
                     "resuming the sweep re-runs them.")
    if stale:
        notes.append(f"{stale} run(s) on a superseded dataset version or split are shown apart (stale) and not "
                     "averaged in.")
    return notes


def _write_tables(art: Path, summary, comps, gains, failed, stale) -> list[Path]:
    files = []
    for part, frame in [("summary", summary.drop(columns="config_json")), ("comparisons", comps),
                        ("pretraining", gains), ("failed", failed), ("stale", stale.reindex(columns=[
                            "dataset", "model", "run_id", "seed", "fold", "final_accuracy", "timestamp", "stale"]))]:
        frame.to_csv(art / f"{part}.csv", index=False)
        files.append(art / f"{part}.csv")
    return files


def _decision(s: pd.DataFrame, sec, verdicts: dict, fills: dict) -> Decision:
    if not sec:
        return Decision("No current runs.")
    fill = {m: c for (k, m), c in fills.items() if k == sec}
    return decide(s, verdicts.get(sec) or Verdict("none", "No finished runs yet."), fill)


def _title(s: pd.DataFrame, sec, ok: pd.DataFrame) -> str:
    """The scored images in words, and the machines the section pools when there are several."""
    title = s.protocol_text.iloc[0] if len(s) else ""
    machines = contexts(ok[ok.section == sec]) if sec else ""
    return title + (f"; {machines}" if machines else "")


def _races_html(races: list) -> str:
    return ("<section><h2>Races</h2>" + "".join(race_html(r) for r in races) + "</section>") if races else ""


def build_report(results_dir: Path, out_dir: Path | None = None, dataset: str | None = None,
                 experiment: str | None = None, family: str | None = None, margin: float = MARGIN) -> ReportResult:
    results_dir, notes = Path(results_dir), []
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    runs = label_models(filter_runs(load_runs(results_dir, notes), dataset=dataset, experiment=experiment,
                                    family=family))
    ok, failed, retried, stopped = latest_attempts(runs[runs.stale == ""])
    ok, repeats = one_per_instance(ok)
    stale = latest_attempts(runs[runs.stale != ""])[0]
    outcomes, gains, verdicts, comps, summary, classes = _analyse(results_dir, ok, failed, notes, margin)
    article = article_datasets()
    summary = add_published(summary, load_reference(), article)
    fills = _fills(ok, summary, results_dir)
    curves = load_curves(results_dir, ok)
    races = load_races(results_dir, notes, experiment)
    notes += _notes(len(repeats), retried, stopped, len(stale))
    name = output_name(experiment=experiment, dataset=dataset, family=family)
    art = out_dir / name
    art.mkdir(parents=True, exist_ok=True)
    files = _write_tables(art, summary, comps, gains, failed, stale)
    sections, decisions, baselines, tops, md = [], {}, {}, [], ["# Benchmark report\n", "## Verdicts\n"]
    md_sections = [race_markdown(r) for r in races]
    keys = list(dict.fromkeys(summary.section))
    for ds in dict.fromkeys([*summary.dataset, *stale.dataset]):
        old, mine = stale[stale.dataset == ds], ds in article
        secs = [k for k in keys if summary.dataset[summary.section == k].iloc[0] == ds]
        md.append(contrasts.markdown(gains, ds))
        pretraining = contrasts.html_block(gains, ds)  # said once per dataset, under its first verdict
        for i, sec in enumerate(secs or [None]):
            s = summary[summary.section == sec]
            d, title = _decision(s, sec, verdicts, fills), _title(s, sec, ok)
            decisions[ds if len(secs) < 2 else f"{ds} ({title})"] = d
            warn = baselines[ds if len(secs) < 2 else f"{ds} ({title})"] = perclass.warning(classes.get(sec))
            sc = classes.get(sec)
            images = _plots(art, ds, sec, len(secs), s, ok, curves, sc) if sec else []
            files += [p for _, p in images]
            picked = [m for m in [d.pick, *d.tied] if m]
            balanced = bool(sc is not None and sc.baseline is not None and sc.baseline.unbalanced)
            hint = gmacs_hint(s)
            todo = "".join(f"- `{c}`\n" for c in d.todo)
            md += [f"- **{ds}** ({title}): {d.sentence}" + (f" {warn}" if warn else "") + "\n", todo]
            md_sections += [f"## {ds}: {title}\n", classes_markdown(sc, picked), markdown_table(s, mine, balanced),
                            f"GMACs missing: `{hint}`\n" if hint else "",
                            f"{len(old)} stale run(s) not averaged in.\n" if len(old) and i == 0 else ""]
            md_sections += [f"![{t}]({p.name})\n" for t, p in images]
            cls = "warn" if "not above" in warn else "hint"
            tops.append(verdict_html(ds, title, d, s, (f"<p class={cls}>{html.escape(warn)}</p>" if warn else "")
                                     + (pretraining if i == 0 else "")))
            sections.append(html_section(ds, title, s, comps[comps.section == sec], images,
                                         old if i == 0 else old.iloc[:0], mine,
                                         (baseline_html(sc), classes_html(sc, picked)), balanced,
                                         runs_html(ok[ok.section == sec]) if sec else ""))
    (art / "summary.md").write_text("\n".join(md + md_sections + [f"_{n}_\n" for n in notes]), encoding="utf-8")
    files.append(art / "summary.md")
    report = out_dir / f"{name}.html"
    filters = ", ".join(f"{k}={v}" for k, v in dict(dataset=dataset, experiment=experiment, family=family).items() if v)
    report.write_text(html_page(sections, notes, filters, len(ok), len(failed), _races_html(races),
                                bool(set(summary.dataset) & article), "".join(tops)), encoding="utf-8")
    return ReportResult(report, [*files, report], summary, comps, failed, stale, decisions, verdicts, races, notes,
                        gains, baselines)


def _margin(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"--margin {text!r}: an accuracy difference as a fraction in [0, 1), "
                                         f"e.g. {MARGIN:g} for {100 * MARGIN:g} pp")
    return v


def _run_cli(args: argparse.Namespace) -> int:
    try:
        result = build_report(args.results_dir, args.out, args.dataset, args.experiment, args.family,
                              margin=args.margin)
    except ReportError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    for race in result.races:
        print(race.summary())
    for sec, d in result.decisions.items():
        print(f"[{sec}] {d.sentence}")
        if result.baselines.get(sec):
            print(f"  baseline: {result.baselines[sec]}")
        for command in d.todo:
            print(f"  fill: {command}")
    for r in result.pretraining.itertuples():
        print(f"[{r.dataset}] pretraining: {contrasts.sentence(r)}")
    print(f"wrote {result.html} (+ tables and plots in {result.html.with_suffix('')})")
    return 0


def add_cli(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="aggregate results/ into tables, plots and results/report.html "
                       "(results/report-<filters>.html when filtered)")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="results directory (default: results)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: the results directory)")
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--experiment", help="only runs of this experiment (sweep file stem)")
    p.add_argument("--family", help="only this architecture family")
    p.add_argument("--margin", type=_margin, default=MARGIN,
                   help=f"accuracy difference under which two candidates are practically the same, as a fraction "
                        f"(default {MARGIN:g} = {100 * MARGIN:g} pp): the verdict says 'equivalent' when a gap's "
                        "interval lies within it")
    p.set_defaults(func=_run_cli)
    return p
