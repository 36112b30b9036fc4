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
from .stats import MIN_PAIRS


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
    ci = f" [{100 * r.gap_lo:.2f}, {100 * r.gap_hi:.2f}]" if pd.notna(r.gap_lo) else ""
    return f"{100 * r.gap:.2f}{ci}", float(r.gap)


# (header, row -> (text, sort value), shown only beside the article's data); the HTML sorts on the value.
COLUMNS = [
    ("model", lambda r: (r.model, r.model), False),
    ("family", lambda r: (r.family, r.family), False),
    ("accuracy %", lambda r: (fmt_pm(r.acc_mean, r.acc_std), r.acc_mean), False),
    ("n", lambda r: (str(r.n), r.n), False),
    ("P(best)", lambda r: _num(r.p_best), False),
    ("gap, pp [95 % CI]", _gap, False),
    ("noise", lambda r: (r.noise, r.noise), False),
    ("top-k %", lambda r: (fmt_pm(r.topk_mean, r.topk_std)
                           + (f" (k={r.top_k:.0f})" if pd.notna(r.top_k) and pd.notna(r.topk_mean) else ""),
                           r.topk_mean), False),
    ("params (M)", lambda r: _num(r.params_m, "{:.1f}"), False),
    ("GMACs", lambda r: _num(r.gmacs), False),
    ("train time (s)", lambda r: _num(r.total_s, "{:.0f}"), False),
    ("s/epoch", lambda r: _num(r.epoch_s, "{:.1f}"), False),
    ("best epoch", _best_epoch, False),
    ("published %", lambda r: _num(100 * r.published_acc, "{:.1f}"), True),
    ("published top-5 %", lambda r: _num(100 * r.published_top_k, "{:.1f}"), True),
    ("status", lambda r: (r.status + (f": {r.error}" if isinstance(r.error, str) else ""), r.status), False),
]


def _columns(article: bool):
    return [(h, fn) for h, fn, only_article in COLUMNS if article or not only_article]


def markdown_table(s: pd.DataFrame, article: bool = False) -> str:
    cols = _columns(article)
    cells = [[fn(r)[0].replace("|", "\\|") for _, fn in cols] for r in s.itertuples()]
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells]) + "\n"


def html_table(s: pd.DataFrame, article: bool = False) -> str:
    cols = _columns(article)
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in cols)
    body = []
    for r in s.itertuples():
        tds = []
        for _, fn in cols:
            text, value = fn(r)
            key = "" if value is None or (isinstance(value, float) and np.isnan(value)) else value
            tds.append(f'<td data-v="{html.escape(str(key))}">{html.escape(text)}</td>')
        cls = html.escape(r.noise.split()[0] if r.noise else r.status.split()[0])
        body.append(f'<tr class="{cls}">{"".join(tds)}</tr>')
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def gmacs_hints(s: pd.DataFrame) -> list[str]:
    """The exact command that fills each missing GMACs cell."""
    miss = s[s.gmacs.isna() & s.img_size.notna()].drop_duplicates(["arch", "img_size"])
    return [f"make speed ARCH={r.arch} SIZE={r.img_size:.0f}" for r in miss.itertuples()]


def decision_html(d: Decision, s: pd.DataFrame) -> str:
    """The recommendation: one sentence, then the tied set (or the best) with P(best), accuracy, time and size."""
    rows = s[s.model.isin(d.tied)]
    cells = "".join(
        f"<tr{' class=pick' if r.model == d.pick else ''}><td>{html.escape(r.model)}"
        f"{' ← use' if r.model == d.pick else ''}</td><td>{pct(r.acc_mean, r.acc_std)} (n={r.n})</td>"
        f"<td>{'' if pd.isna(r.p_best) else f'{r.p_best:.2f}'}</td><td>{_num(r.total_s, '{:.0f}')[0]}</td>"
        f"<td>{_num(r.params_m, '{:.1f}')[0]}</td><td>{_num(r.gmacs)[0]}</td></tr>" for r in rows.itertuples())
    title = ("Leader (not yet tested)" if d.pick is None else "Recommendation" if len(d.tied) < 2
             else f"Tied for best ({len(d.tied)} models)")
    table = (f"<table class=tied><thead><tr><th>{title}</th><th>accuracy</th><th>P(best)</th><th>train time (s)</th>"
             f"<th>params (M)</th><th>GMACs</th></tr></thead><tbody>{cells}</tbody></table>" if len(rows) else "")
    return f"<div class=decision><p class=decision-text>{html.escape(d.sentence)}</p>{table}</div>"


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "dataset"


def stale_html(stale: pd.DataFrame) -> str:
    if stale.empty:
        return ""
    t = stale.assign(accuracy=(100 * stale.final_accuracy).round(2)).reindex(
        columns=["model", "seed", "fold", "accuracy", "timestamp", "stale"])
    return (f"<details class=stale><summary>{len(stale)} stale run(s) from a superseded dataset version or split — "
            "shown apart, not averaged in</summary>" + t.to_html(index=False, border=0, na_rep="") + "</details>")


def html_section(ds: str, s: pd.DataFrame, d: Decision, comps: pd.DataFrame, images, stale: pd.DataFrame,
                 article: bool) -> str:
    pairs = ""
    if len(comps):
        c = comps.assign(diff=100 * comps["diff"], ci_lo=100 * comps.ci_lo, ci_hi=100 * comps.ci_hi)
        pairs = ("<details><summary>All pairwise comparisons (a − b, accuracy pp, paired by seed/fold; an interval "
                 f"needs ≥{MIN_PAIRS} pairs)</summary>"
                 + c.drop(columns="dataset").to_html(index=False, float_format="{:.2f}".format, border=0, na_rep="")
                 + "</details>")
    hints = gmacs_hints(s)
    hint = ("<p class=hint>GMACs missing; to measure them: " + "; ".join(f"<code>{html.escape(h)}</code>"
                                                                      for h in hints) + "</p>") if hints else ""
    imgs = "".join(f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,'
                   f'{base64.b64encode(p.read_bytes()).decode()}"></figure>' for t, p in images)
    tag = " <span class=tag>the article's dataset</span>" if article else ""
    return (f"<section><h2>{html.escape(str(ds))}{tag}</h2>{decision_html(d, s)}"
            f"{html_table(s, article)}{hint}{pairs}{stale_html(stale)}<div class=plots>{imgs}</div></section>")


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
table.sortable td{white-space:nowrap}table.sortable td:last-child{white-space:normal;max-width:28em}
table.sortable th{cursor:pointer}th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
tr.best{background:#e6f4e6;font-weight:600}tr.within{background:#f6f9e8}tr.failed{color:#a00}tr.needs{color:#555}
.decision{border-left:5px solid #2a7a2a;background:#f4faf4;padding:8px 14px;margin:10px 0 14px}
.decision-text{font-size:16px;margin:4px 0 8px}tr.pick{font-weight:600}.hint{font-size:13px;color:#555}
.tag{font-size:13px;font-weight:normal;background:#eee;padding:1px 6px;border-radius:3px}
code{background:#f3f3f3;padding:0 3px}figure{display:inline-block;margin:8px}img{max-width:100%}
.plots{display:flex;flex-wrap:wrap;align-items:flex-start}details{margin:8px 0}.race{margin-bottom:14px}
table.grid td.alive{color:#2a7a2a;text-align:center}table.grid td.out{color:#a00;text-align:center}
.meter{width:320px;height:10px;background:#eee;margin:4px 0 8px}.meter div{height:100%;background:#2a7a2a}"""


def html_page(sections, notes, filters, n_ok, n_failed, races: str = "", article: bool = False) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = f"{n_ok} finished run(s), {n_failed} failed" + (f"; filters: {filters}" if filters else "")
    note = "".join(f"<p><em>{html.escape(n)}</em></p>" for n in notes)
    published = (" Published: the article's figure for the same arch, head, layer groups, image size and batch "
                 "size, shown only beside the article's own dataset." if article else "")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Benchmark report</title><style>{CSS}</style>"
            f"</head><body><h1>Benchmark report</h1><p>{html.escape(meta)} — generated {when}. Accuracy: mean ± sd "
            "over seeds/folds of runs with identical settings (anything else is a separate row). P(best): how often "
            "the model has the best mean when the seeds/folds are resampled (paired bootstrap). Gap to best: paired "
            f"by seed/fold, with a 95 % t interval from {MIN_PAIRS} pairs on; <b>within noise</b> means that "
            f"interval contains 0. With 3–4 seeds P(best) is coarse and the interval wide: the tie is judged by "
            f"the interval.{published} Click a column header to sort.</p>"
            f"{note}{races}{''.join(sections)}<script>{SORT_JS}</script></body></html>")
