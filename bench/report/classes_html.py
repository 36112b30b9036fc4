"""A section's baseline, per-class results, most confused pairs and held-out test results, as HTML and Markdown
(the numbers: bench.report.perclass)."""
from __future__ import annotations

import html

import pandas as pd

from .perclass import SectionClasses, sentences

MAX_CLASS_COLUMNS = 12  # more classes than this: the worst three recalls in words, not a column each


def _pct(v) -> str:
    return "" if pd.isna(v) else f"{100 * v:.1f}"


def _recall_cells(sc: SectionClasses, r) -> list[str]:
    classes = list(sc.baseline.counts.index)
    rec = {c: getattr(r, f"recall_{c}", float("nan")) for c in classes}
    if len(classes) <= MAX_CLASS_COLUMNS:
        return [_pct(rec[c]) for c in classes]
    worst = sorted(classes, key=lambda c: rec[c])[:3]
    return ["; ".join(f"{c} {_pct(rec[c])}" for c in worst)]


def _recall_header(sc: SectionClasses) -> list[str]:
    counts = sc.baseline.counts
    if len(counts) <= MAX_CLASS_COLUMNS:
        return [f"{c} (n={n})" for c, n in counts.items()]
    return ["lowest recalls %"]


def perclass_rows(sc: SectionClasses) -> tuple[list[str], list[list[str]]]:
    """The per-class table (header, rows): accuracy, balanced accuracy and each class's recall, per model."""
    head = ["model", "accuracy %", "balanced accuracy %", *_recall_header(sc)]
    rows = [[r.model, _pct(r.accuracy), _pct(r.balanced), *_recall_cells(sc, r)] for r in sc.models.itertuples()]
    return head, rows


def confused(sc: SectionClasses) -> list[str]:
    """'model: true → predicted k (x % of true); …' per model."""
    out = []
    for m in sc.confusion:
        pairs = sc.confused_pairs(m)
        if pairs:
            out.append(f"{m}: " + "; ".join(f"{t} → {p} {n} ({100 * s:.0f} % of {t})" for t, p, n, s in pairs))
    return out


def test_rows(sc: SectionClasses, picked: list[str]) -> tuple[list[str], list[list[str]]]:
    head = ["model", "test accuracy %", "images", "runs"]
    order = sorted(sc.test.itertuples(), key=lambda r: (r.model not in picked, -r.test_accuracy))
    rows = [[r.model + (" (verdict)" if r.model in picked else ""),
             _pct(r.test_accuracy) + (f" ± {100 * r.test_sd:.1f}" if pd.notna(r.test_sd) else ""),
             f"{r.test_n:.0f}", str(r.runs)] for r in order]
    return head, rows


def _table(head, rows, cls="") -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{f' class={cls}' if cls else ''}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _test_note(sc: SectionClasses) -> str:
    b = sc.test_baseline
    base = f"; its majority-class baseline {100 * b.share:.1f} % (always {b.majority!r})" if b else ""
    return (f"scored once by each run's final model, used in no decision (not in the split, not in the "
            f"verdict){base}.")


def baseline_html(sc: SectionClasses | None) -> str:
    """The baseline sentences, shown above the section's main table."""
    words = sentences(sc) if sc is not None else []
    return f"<p class=baseline>{html.escape(' '.join(words))}</p>" if words else ""


def section_html(sc: SectionClasses | None, picked: list[str]) -> str:
    """Below the main table: the per-class table when classes are unbalanced, the most confused pairs, and the
    held-out test set, labelled apart (`picked`: the verdict's models, marked)."""
    if sc is None:
        return ""
    parts = []
    if sc.baseline is not None and sc.baseline.unbalanced and len(sc.models):
        parts.append("<p class=hint>Per-class recall (share of each class's images predicted right, mean over runs); "
                     "balanced accuracy is their mean.</p>" + _table(*perclass_rows(sc), cls="perclass"))
    pairs = confused(sc)
    if pairs:
        parts.append("<p class=hint>Most confused (true → predicted, counts over each model's runs): "
                     + "<br>".join(html.escape(p) for p in pairs) + "</p>")
    if len(sc.test):
        parts.append(f"<div class=test><p><b>Held-out test set</b>: {html.escape(_test_note(sc))}</p>"
                     + _table(*test_rows(sc, picked), cls="testset") + "</div>")
    return "".join(parts)


def _md_table(head, rows) -> str:
    esc = lambda c: c.replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(map(esc, r)) + " |" for r in rows)]) + "\n"


def section_markdown(sc: SectionClasses | None, picked: list[str]) -> str:
    if sc is None:
        return ""
    out = [" ".join(sentences(sc)) + "\n"] if sentences(sc) else []
    if sc.baseline is not None and sc.baseline.unbalanced and len(sc.models):
        out.append(_md_table(*perclass_rows(sc)))
    out += [f"- most confused, {p}\n" for p in confused(sc)]
    if len(sc.test):
        out += ["Held-out test set: " + _test_note(sc) + "\n", _md_table(*test_rows(sc, picked))]
    return "\n".join(out)
