"""How much pretraining gives: the same architecture under two sections of one dataset whose protocols differ in the
kind of weights alone (ImageNet against random init), paired by (seed, fold) instance.

Sections never rank models across protocols; this is the one contrast across them that users ask for ("is
pretraining worth it here?"), and it obeys the same rules: the same data, every other setting equal, the instances
both runs share, and bench/stats.py's paired test.
"""
from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd

from ..identity import protocol_fields, row_identity
from ..pairedtest import lower_bound, paired_p
from .groups import INSTANCE
from .stats import resolution

COLUMNS = ["dataset", "arch", "protocol", "n_pairs", "pretrained_acc", "random_acc", "gain", "gain_lo95", "p_value"]
ARCH_KEYS = ("arch", "activation", "self_attention")


def _keys(row: dict) -> tuple[str, str, str]:
    """(the protocol minus the kind of weights, the architecture, the kind of weights) of a row."""
    ident = row_identity(row)
    proto = protocol_fields(ident)
    kind = proto.pop("weights_kind")
    arch = json.dumps({k: ident.get(k) for k in ARCH_KEYS}, sort_keys=True, default=str)
    return json.dumps(proto, sort_keys=True, default=str), arch, kind


def pretraining(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, architecture, protocol) that has both ImageNet and random-init results on shared
    instances: gain = ImageNet − random (mean over the shared instances), its one-sided 95 % lower bound and p."""
    if ok.empty:
        return pd.DataFrame(columns=COLUMNS)
    keyed = ok.assign(**{c: ok[c].astype(object).fillna("").astype(str) for c in INSTANCE})
    keys = [_keys(r) for r in keyed.to_dict("records")]
    keyed = keyed.assign(_proto=[k[0] for k in keys], _arch=[k[1] for k in keys], _kind=[k[2] for k in keys])
    out = []
    for (ds, _, _), g in keyed.groupby(["dataset", "_proto", "_arch"], sort=False):
        acc = g.pivot_table(index=INSTANCE, columns="_kind", values="final_accuracy", aggfunc="last")
        if not {"imagenet", "random"} <= set(acc.columns):
            continue
        both = acc[["imagenet", "random"]].dropna().astype(float)
        if both.empty:
            continue
        d = (both.imagenet - both.random).to_numpy()
        step = resolution(g)
        text = g[g._kind == "imagenet"].protocol_text.iloc[0] if "protocol_text" in g else ""
        out.append(dict(dataset=ds, arch=str(g.arch.iloc[0]), protocol=text, n_pairs=len(d),
                        pretrained_acc=both.imagenet.mean(), random_acc=both.random.mean(), gain=float(d.mean()),
                        gain_lo95=lower_bound(d, 0.05, step) if len(d) >= 2 else np.nan,
                        p_value=paired_p(d, step) if len(d) >= 2 else np.nan))
    return pd.DataFrame(out, columns=COLUMNS)


def sentence(row) -> str:
    bound = f"≥ {100 * row.gain_lo95:+.1f} pp at 95 %, " if np.isfinite(row.gain_lo95) else ""
    return (f"{row.arch}: ImageNet weights {100 * row.pretrained_acc:.1f} % vs random init {100 * row.random_acc:.1f} %"
            f" = {100 * row.gain:+.1f} pp ({bound}{row.n_pairs} paired instance(s), otherwise the same protocol)")


def markdown(frame: pd.DataFrame, dataset: str) -> str:
    rows = frame[frame.dataset == dataset]
    if rows.empty:
        return ""
    return "### How much pretraining gives\n" + "".join(f"- {sentence(r)}\n" for r in rows.itertuples())


def html_block(frame: pd.DataFrame, dataset: str) -> str:
    rows = frame[frame.dataset == dataset]
    if rows.empty:
        return ""
    items = "".join(f"<li>{html.escape(sentence(r))}</li>" for r in rows.itertuples())
    return (f"<div class=decision><b>How much pretraining gives on {html.escape(dataset)}</b> (each architecture's "
            f"ImageNet-weights runs against its random-init runs, paired by instance; one-sided paired t-test, sd "
            f"floored at one validation image)<ul>{items}</ul></div>")
