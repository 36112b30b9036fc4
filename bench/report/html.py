"""The report's text: the headline sentence, the ranked table (Markdown and sortable HTML) and the HTML page."""
from __future__ import annotations

import base64
import html
import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd

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
                           + (f" (k={r.top_k:.0f})" if pd.notna(r.top_k) and pd.notna(r.topk_mean) else ""),
                           r.topk_mean)),
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
        cls = html.escape(r.noise.split()[0] if r.noise else r.status.split()[0])
        body.append(f'<tr class="{cls}">{"".join(tds)}</tr>')
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "dataset"


def html_section(ds: str, s: pd.DataFrame, comps: pd.DataFrame, images) -> str:
    pairs = ""
    if len(comps):
        c = comps.assign(diff=100 * comps["diff"], ci_lo=100 * comps.ci_lo, ci_hi=100 * comps.ci_hi)
        pairs = ("<details><summary>All pairwise comparisons (a − b, accuracy pp, paired by seed/fold)</summary>"
                 + c.drop(columns="dataset").to_html(index=False, float_format="{:.2f}".format, border=0)
                 + "</details>")
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
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
tr.best{background:#e6f4e6;font-weight:600}
tr.within{background:#f6f9e8}tr.failed{color:#a00}.headline{font-size:16px}figure{display:inline-block;margin:8px}
img{max-width:100%}.plots{display:flex;flex-wrap:wrap}details{margin:8px 0}"""


def html_page(sections, notes, filters, n_ok, n_failed) -> str:
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


