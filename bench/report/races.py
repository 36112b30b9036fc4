"""The race section: `results/races/<name>.csv` (one row per round, written by `bench race`) → survivors by round,
the decision, and the compute used as a share of the full factorial."""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .tables import read_csv

COLUMNS = ["race", "round", "instance", "n_instances", "survivors", "eliminated", "test", "statistic", "p_value",
           "alpha", "level", "decision", "runs_used", "full_factorial_runs", "rule", "verdict", "timestamp"]


@dataclass
class Race:
    name: str
    rounds: pd.DataFrame  # one row per round, in order
    candidates: list[str]  # everyone who started, in the order of the first round
    out_at: dict[str, int]  # candidate → round it was eliminated in
    decision: str  # the last round's: winner | tie | budget | failed | continue (bench.sweep.race)
    runs_used: float
    full_runs: float

    @property
    def compute_pct(self) -> float:
        return 100 * self.runs_used / self.full_runs if self.full_runs > 0 else np.nan

    def summary(self) -> str:
        last = self.rounds.iloc[-1]
        alive = _names(last.survivors)
        where = f"after {len(self.rounds)} round(s) on {_int(last.n_instances)} instance(s)"
        cost = (f"{_int(self.runs_used)} of {_int(self.full_runs)} runs = {self.compute_pct:.0f} % of the full "
                f"factorial" if pd.notna(self.compute_pct) else f"{_int(self.runs_used)} runs")
        names = ", ".join(alive) or "none"
        lead = f"{alive[0]} leads, not separated from {', '.join(alive[1:])}" if len(alive) > 1 else names
        what = {"winner": f"winner {names}", "tie": f"no winner: {lead} (tied at the race's level)",
                "budget": f"compute budget reached; still in: {names}",
                "failed": "no winner: every candidate's runs failed",
                "continue": f"not finished; still in: {names}"}
        what = what.get(self.decision, f"{self.decision or 'no decision'}; still in: {names}")
        # a race that ended wrote the verdict it printed (bench.stats.verdict, the report's own function): say that
        said = self.rounds["verdict"].dropna() if "verdict" in self.rounds else pd.Series(dtype=object)
        said = [v for v in said.astype(str) if v.strip()]
        if said and self.decision != "continue":
            return f"Race {self.name} ({self.decision}, {where}; compute {cost}): {said[-1]}"
        return f"Race {self.name}: {what} {where}; compute {cost}."

    @property
    def rule(self) -> str:
        """The elimination rule as the race printed it (logs of older races have none: "")."""
        rules = self.rounds["rule"].dropna()
        return str(rules.iloc[-1]) if len(rules) else ""


def _names(cell) -> list[str]:
    return [x for x in str(cell).split(";") if x] if isinstance(cell, str) else []


def _int(v) -> str:
    return "?" if pd.isna(v) else f"{float(v):.0f}"


def load_races(results_dir: Path, notes: list[str], name: str | None = None) -> list[Race]:
    """Every race log under results/races/ (only `name`'s when given: the experiment filter)."""
    races = []
    for path in sorted((Path(results_dir) / "races").glob("*.csv")):
        log = read_csv(path, notes)
        if log.empty:
            continue
        missing = [c for c in ("round", "survivors") if c not in log]
        if missing:
            notes.append(f"{path}: not a race log (no {', '.join(missing)} column); left out")
            continue
        log = log.reindex(columns=list(dict.fromkeys([*COLUMNS, *log.columns])))
        log["race"] = log.race.fillna(path.stem)
        for c in ["round", "n_instances", "statistic", "p_value", "alpha", "level", "runs_used", "full_factorial_runs"]:
            log[c] = pd.to_numeric(log[c], errors="coerce")
        for race, rounds in log.groupby("race", sort=False):
            if name is not None and name not in (race, path.stem):
                continue
            races.append(_race(str(race), rounds.sort_values("round", kind="stable").reset_index(drop=True)))
    return races


def _race(name: str, rounds: pd.DataFrame) -> Race:
    candidates: list[str] = []
    out_at: dict[str, int] = {}
    for r in rounds.itertuples():
        for m in _names(r.survivors) + _names(r.eliminated):
            if m not in candidates:
                candidates.append(m)
        for m in _names(r.eliminated):
            out_at.setdefault(m, int(r.round) if pd.notna(r.round) else 0)
    last = rounds.iloc[-1]
    decision = last.decision if isinstance(last.decision, str) else ""
    return Race(name, rounds, candidates, out_at, decision, last.runs_used, last.full_factorial_runs)


def _fmt(v, spec) -> str:
    return "" if pd.isna(v) else format(v, spec)


def race_html(race: Race) -> str:
    """Survivors by round as a grid (one row per candidate, one column per round), then the rounds' tests."""
    rounds = race.rounds
    head = "".join(f"<th>{_int(r)}</th>" for r in rounds["round"])
    grid = []
    for m in race.candidates:
        cells = []
        for r in rounds.itertuples():
            if m in _names(r.survivors):
                cells.append('<td class="alive" title="still in">●</td>')
            elif m in _names(r.eliminated):
                cells.append('<td class="out" title="eliminated in this round">✕</td>')
            else:
                cells.append("<td></td>")
        grid.append(f"<tr><td>{html.escape(m)}</td>{''.join(cells)}</tr>")
    tests = "".join(
        f"<tr><td>{_int(r.round)}</td><td>{html.escape(str(r.instance) if pd.notna(r.instance) else '')}</td>"
        f"<td>{_int(r.n_instances)}</td><td>{html.escape(str(r.test) if pd.notna(r.test) else '')}</td>"
        f"<td>{_fmt(r.statistic, '.3g')}</td><td>{_fmt(r.p_value, '.3g')}</td><td>{_fmt(r.level, '.3g')}</td>"
        f"<td>{_fmt(r.alpha, 'g')}</td>"
        f"<td>{html.escape(', '.join(_names(r.eliminated)))}</td>"
        f"<td>{html.escape(str(r.decision) if pd.notna(r.decision) else '')}</td>"
        f"<td>{_int(r.runs_used)}</td></tr>" for r in rounds.itertuples())
    bar = (f'<div class="meter" title="compute used"><div style="width:{min(race.compute_pct, 100):.1f}%"></div>'
           f"</div>" if pd.notna(race.compute_pct) else "")
    rule = f"<p>Rule: {html.escape(race.rule)}.</p>" if race.rule else ""
    return (f"<div class=race><h3>{html.escape(race.name)}</h3><p class=decision-text>{html.escape(race.summary())}"
            f"</p>{rule}{bar}<table class=grid><thead><tr><th>candidate \\ round</th>{head}</tr></thead>"
            f"<tbody>{''.join(grid)}</tbody></table><details><summary>Tests by round</summary><table><thead><tr>"
            "<th>round</th><th>instance</th><th>instances</th><th>test</th><th>statistic</th><th>p</th>"
            '<th title="a rival is eliminated when its p is below this: the race-wide α spent over the looks">'
            "out below</th><th>race-wide α</th>"
            "<th>eliminated</th><th>decision</th><th>runs used</th></tr></thead>"
            f"<tbody>{tests}</tbody></table></details></div>")


def race_markdown(race: Race) -> str:
    lines = [f"### Race {race.name}\n", race.summary() + "\n", *([f"Rule: {race.rule}.\n"] if race.rule else []),
             "| round | instances | survivors | eliminated | test | p | out below | decision |",
             "|---|---|---|---|---|---|---|---|"]
    for r in race.rounds.itertuples():
        lines.append(f"| {_int(r.round)} | {_int(r.n_instances)} | {', '.join(_names(r.survivors))} | "
                     f"{', '.join(_names(r.eliminated))} | {r.test if pd.notna(r.test) else ''} | "
                     f"{_fmt(r.p_value, '.3g')} | {_fmt(r.level, '.3g')} | "
                     f"{r.decision if pd.notna(r.decision) else ''} |")
    return "\n".join(lines) + "\n"
