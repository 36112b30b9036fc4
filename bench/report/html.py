"""The report's text: the decision block, the ranked table (Markdown and sortable HTML), the hints, the stale rows
and the HTML page."""
from __future__ import annotations

import base64
import html
import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from .decision import Decision, pct
from ..stats import METHOD, MIN_INSTANCES


def fmt_pm(mean, std, scale=100.0, digits=2) -> str:
    if pd.isna(mean):
        return ""
    return f"{scale * mean:.{digits}f}" + (f" ± {scale * std:.{digits}f}" if pd.notna(std) else "")


def _num(v, fmt="{:.2f}") -> tuple[str, float]:
    return ("", np.nan) if pd.isna(v) else (fmt.format(v), float(v))


def _best_epoch(r) -> tuple[str, float]:
    if pd.isna(r.best_epoch):
        return "", np.nan
    spread = f" ({r.best_epoch_min:.0f}–{r.best_epoch_max:.0f})" if r.best_epoch_min != r.best_epoch_max else ""
    return f"{r.best_epoch:.0f}{spread}", float(r.best_epoch)


def _gap(r) -> tuple[str, float]:
    if pd.isna(r.gap):
        return "", np.nan
    return f"{100 * r.gap:.2f} [{100 * r.gap_lo:.2f}, {100 * r.gap_hi:.2f}]", float(r.gap)


def _p(r) -> tuple[str, float]:
    return ("", np.nan) if pd.isna(r.p_value) else (f"{r.p_value:.3g} (α {r.p_level:.3g})", float(r.p_value))


def _opt(r, col: str):
    return getattr(r, col, np.nan)


# (header, row -> (text, sort value), shown only beside the article's data); the HTML sorts on the value.
# The main table: what the verdict rests on, narrow enough for a 1280 px screen (test in tests/test_report.py).
COLUMNS = [
    ("model", lambda r: (r.model, r.model), False),
    ("rank", lambda r: _num(r.rank, "{:.0f}"), False),
    ("accuracy %", lambda r: (fmt_pm(r.acc_mean, r.acc_std), r.acc_mean), False),
    ("n", lambda r: (str(r.n), r.n), False),
    ("gap to leader, pp [interval]", _gap, False),
    ("p (level)", _p, False),
    ("noise", lambda r: (r.noise, r.noise), False),
    ("published %", lambda r: _num(100 * r.published_acc, "{:.1f}"), True),
]
# Shown in the main table only when the section's classes are unbalanced (bench.report.perclass).
BALANCED = ("balanced accuracy %", lambda r: _num(100 * _opt(r, "balanced_acc")), False)
# The second table: cost, size, training details and what is missing.
DETAILS = [
    ("model", lambda r: (r.model, r.model), False),
    ("family", lambda r: (r.family, r.family), False),
    ("paired mean %", lambda r: _num(100 * r.acc_paired), False),
    ("lacks", lambda r: (r.lacking, r.lacking), False),
    ("top-k %", lambda r: (fmt_pm(r.topk_mean, r.topk_std)
                           + (f" (k={r.top_k:.0f})" if pd.notna(r.top_k) and pd.notna(r.topk_mean) else ""),
                           r.topk_mean), False),
    ("params (M)", lambda r: _num(r.params_m, "{:.1f}"), False),
    ("GMACs", lambda r: _num(r.gmacs), False),
    ("train time (s)", lambda r: _num(r.total_s, "{:.0f}"), False),
    ("s/epoch", lambda r: _num(r.epoch_s, "{:.1f}"), False),
    ("best epoch", _best_epoch, False),
    ("published top-5 %", lambda r: _num(100 * r.published_top_k, "{:.1f}"), True),
    ("status", lambda r: (r.status + (f": {r.error}" if isinstance(r.error, str) else ""), r.status), False),
]
# Columns whose text may be long (a weights file path in a label, an error): cut with an ellipsis, whole on hover.
CLIPPED = {"model", "lacks", "status"}


def _columns(article: bool, table: list | None = None, balanced: bool = False):
    cols = (table or COLUMNS) + ([BALANCED] if balanced and table is None else [])
    return [(h, fn) for h, fn, only_article in cols if article or not only_article]


def markdown_table(s: pd.DataFrame, article: bool = False, balanced: bool = False) -> str:
    """One Markdown table of every column (a file is not a screen)."""
    cols = _columns(article, balanced=balanced) + _columns(article, DETAILS)[1:]
    cells = [[fn(r)[0].replace("|", "\\|") for _, fn in cols] for r in s.itertuples()]
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells]) + "\n"


def html_table(s: pd.DataFrame, article: bool = False, table: list | None = None, balanced: bool = False) -> str:
    """A sortable table of `table`'s columns (default: the main ones, with balanced accuracy when asked)."""
    cols = _columns(article, table, balanced)
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in cols)
    body = []
    for r in s.itertuples():
        tds = []
        for h, fn in cols:
            text, value = fn(r)
            key = "" if value is None or (isinstance(value, float) and np.isnan(value)) else value
            clip = f' class=clip title="{html.escape(text)}"' if h in CLIPPED and text else ""
            tds.append(f'<td data-v="{html.escape(str(key))}"{clip}>{html.escape(text)}</td>')
        cls = html.escape(r.noise.split()[0] if r.noise else str(r.status).split()[0])
        body.append(f'<tr class="{cls}">{"".join(tds)}</tr>')
    kind = "main" if table is None else "details"
    return f'<table class="sortable {kind}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def gmacs_hint(s: pd.DataFrame) -> str:
    """One command line that fills every missing GMACs cell (`bench speed` measures one arch at a time)."""
    miss = s[s.gmacs.isna() & s.img_size.notna()].drop_duplicates(["arch", "img_size"])
    loops = [f"for a in {' '.join(sorted(d.arch))}; do make speed ARCH=$a SIZE={size:.0f}; done" if len(d) > 1 else
             f"make speed ARCH={d.arch.iloc[0]} SIZE={size:.0f}" for size, d in miss.groupby("img_size")]
    return " && ".join(loops)


def decision_html(d: Decision, s: pd.DataFrame) -> str:
    """The recommendation: its sentences, the commands that fill what is missing, then the tied set (or the best)
    with P(best), accuracy, time and size."""
    rows = s[s.model.isin(d.tied)]
    mark = {d.pick: " ← use"}
    cells = "".join(
        f"<tr{' class=pick' if r.model in (d.pick, d.cheapest) else ''}>"
        f"<td class=clip title=\"{html.escape(r.model)}\">"
        f"{html.escape(r.model)}{mark.get(r.model, '')}</td><td>{pct(r.acc_paired)} (paired, n={r.n_paired:.0f})</td>"
        f"<td>{_num(r.total_s, '{:.0f}')[0]}</td>"
        f"<td>{_num(r.params_m, '{:.1f}')[0]}</td><td>{_num(r.gmacs)[0]}</td></tr>" for r in rows.itertuples())
    title = {"use": "Best on paired evidence", "equivalent": f"Equivalent ({len(d.tied)} candidates)"}.get(
        d.kind, f"Not separated ({len(d.tied)} candidates)")
    table = (f"<table class=tied><thead><tr><th>{title}</th><th>accuracy</th><th>train time (s)</th>"
             f"<th>params (M)</th><th>GMACs</th></tr></thead><tbody>{cells}</tbody></table>" if len(rows) else "")
    todo = ("<p class=hint>To fill the missing instances: " + "; ".join(f"<code>{html.escape(c)}</code>"
                                                                         for c in d.todo) + "</p>") if d.todo else ""
    return f"<div class=decision><p class=decision-text>{html.escape(d.sentence)}</p>{todo}{table}</div>"


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "dataset"


def stale_html(stale: pd.DataFrame) -> str:
    if stale.empty:
        return ""
    t = stale.assign(accuracy=(100 * stale.final_accuracy).round(2)).reindex(
        columns=["model", "seed", "fold", "accuracy", "timestamp", "stale"])
    return (f"<details class=stale><summary>{len(stale)} stale run(s) from a superseded dataset version or split — "
            "shown apart, not averaged in</summary>" + t.to_html(index=False, border=0, na_rep="") + "</details>")


def verdict_html(ds: str, title: str, d: Decision, s: pd.DataFrame, more: str = "") -> str:
    """One section's verdict for the top of the page: the dataset, its protocol, the decision box (and `more`: the
    pretraining contrast, said once per dataset)."""
    head = f"<h3>{html.escape(str(ds))}</h3>" + (f"<p class=protocol>{html.escape(title)}</p>" if title else "")
    return f"<div class=verdict>{head}{decision_html(d, s)}{more}</div>"


def runs_html(ok: pd.DataFrame) -> str:
    """Every run of a section with the machine that ran it (its execution context: recorded, not hashed)."""
    if ok.empty:
        return ""
    cols = [c for c in ["model", "seed", "fold", "final_accuracy", "context", "host", "run_id"] if c in ok]
    t = ok[cols].assign(final_accuracy=(100 * ok.final_accuracy).round(2)).sort_values(["model", "seed", "fold"])
    return (f"<details class=runs><summary>{len(t)} run(s) and the machines that ran them</summary>"
            + t.to_html(index=False, border=0, na_rep="") + "</details>")


def html_section(ds: str, title: str, s: pd.DataFrame, comps: pd.DataFrame, images, stale: pd.DataFrame,
                 article: bool, classes: tuple[str, str] = ("", ""), balanced: bool = False, runs: str = "") -> str:
    """A section's evidence: the baseline (`classes[0]`), the main table, the details table, the per-class results
    and test set (`classes[1]`), the pairwise comparisons, stale runs and plots. Its verdict is at the top of the
    page (`verdict_html`)."""
    pairs = ""
    if len(comps):
        c = comps.assign(diff=100 * comps["diff"], lo=100 * comps["lo"], hi=100 * comps["hi"])
        pairs = ("<details><summary>All pairwise comparisons (a − b in pp on the instances and images both ran, "
                 "95 % interval and two-sided p, unadjusted: descriptive only; the verdict above tests each "
                 "comparison at α over all pairs)</summary>"
                 + c.drop(columns=["dataset", "section"]).to_html(index=False, float_format="{:.3g}".format, border=0,
                                                                  na_rep="")
                 + "</details>")
    hints = gmacs_hint(s)
    hint = f"<p class=hint>GMACs missing; to measure them: <code>{html.escape(hints)}</code></p>" if hints else ""
    imgs = "".join(f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,'
                   f'{base64.b64encode(p.read_bytes()).decode()}"></figure>' for t, p in images)
    tag = " <span class=tag>the article's dataset</span>" if article else ""
    head = f"<p class=protocol>{html.escape(title)}</p>" if title else ""
    details = ("<details class=more><summary>Details: cost, size, top-k, best epoch, status, missing instances"
               "</summary>" + html_table(s, article, DETAILS) + "</details>")
    return (f"<section><h2>{html.escape(str(ds))}{tag}</h2>{head}{classes[0]}"
            f"{html_table(s, article, balanced=balanced)}{details}{hint}{classes[1]}{pairs}{runs}{stale_html(stale)}"
            f"<div class=plots>{imgs}</div></section>")


SORT_JS = """document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], asc = th.dataset.dir !== 'asc';
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.dir); th.dataset.dir = asc ? 'asc' : 'desc';
  const key = r => { const v = r.cells[i].dataset.v; return v === '' ? null : isNaN(v) ? v : parseFloat(v); };
  [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
    if (x === null || y === null) return (x === null) - (y === null);  // blanks last either way
    return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1); }).forEach(r => body.appendChild(r));
}));"""

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1500px}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f3f3f3}
table.sortable td{white-space:nowrap}
td.clip{max-width:22em;overflow:hidden;text-overflow:ellipsis}.protocol{font-size:15px;color:#444;margin-top:-6px}
table.sortable th{cursor:pointer}th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
tr.best{background:#e6f4e6;font-weight:600}tr.within{background:#f6f9e8}tr.failed{color:#a00}tr.needs{color:#555}
.decision{border-left:5px solid #2a7a2a;background:#f4faf4;padding:8px 14px;margin:10px 0 14px}
.decision-text{font-size:16px;margin:4px 0 8px}tr.pick{font-weight:600}.hint{font-size:13px;color:#555}
.tag{font-size:13px;font-weight:normal;background:#eee;padding:1px 6px;border-radius:3px}
code{background:#f3f3f3;padding:0 3px}figure{display:inline-block;margin:8px}img{max-width:100%}
.plots{display:flex;flex-wrap:wrap;align-items:flex-start}details{margin:8px 0}.race{margin-bottom:14px}
table.grid td.alive{color:#2a7a2a;text-align:center}table.grid td.out{color:#a00;text-align:center}
.meter{width:320px;height:10px;background:#eee;margin:4px 0 8px}.meter div{height:100%;background:#2a7a2a}
.verdict h3{margin:14px 0 2px}.baseline{font-size:14px}.test{border-left:5px solid #888;padding:2px 12px;margin:10px 0}
.meta{color:#555}.method{font-size:13px;color:#444}.warn{color:#a00;font-weight:600}"""


def html_page(sections, notes, filters, n_ok, n_failed, races: str = "", article: bool = False,
              verdicts: str = "") -> str:
    """The verdicts first, then the evidence (races, each section's tables and plots), then notes and how to read."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = f"{n_ok} finished run(s), {n_failed} failed" + (f"; filters: {filters}" if filters else "")
    note = "".join(f"<p><em>{html.escape(n)}</em></p>" for n in notes)
    published = (" Published: the article's figure for the same arch, head, layer groups, image size, batch size, "
                 "subsample, epochs, learning rates and ImageNet weights, shown only beside the article's own dataset."
                 if article else "")
    method = ("<section class=method><h2>How to read this report</h2><p>One section per "
              "set of scored images (dataset content, split, subsample): every variant scored on them is a candidate, "
              "labelled by what differs. Accuracy: mean ± sd over a candidate's (seed, fold) instances, each counted "
              "once. The leader is the candidate no other leads on the instances they share; each other candidate is "
              f"compared with it on the instances the two share (at least {MIN_INSTANCES}; fewer: not ranked): "
              f"{html.escape(METHOD)}. Gap to leader: leader − candidate with its interval at that level; <b>beyond "
              "noise</b> when the test rejects, <b>equivalent</b> when the interval lies within the margin, <b>within "
              "noise</b> otherwise. The race prints the same verdict (bench/stats.py). Majority-class baseline: what "
              "always predicting the largest class scores on the same images; a model not above it beyond noise is "
              "named (one-sided exact binomial test). A held-out test set, when the dataset has one, is scored by "
              f"each run's final model and used in no decision.{published} Click a column header to sort.</p>"
              "</section>")
    top = f"<section class=verdicts><h2>Verdicts</h2>{verdicts}</section>" if verdicts else ""
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Benchmark report</title><style>{CSS}</style>"
            f"</head><body><h1>Benchmark report</h1><p class=meta>{html.escape(meta)} — generated {when}.</p>"
            f"{top}{races}{''.join(sections)}{note}{method}<script>{SORT_JS}</script></body></html>")
