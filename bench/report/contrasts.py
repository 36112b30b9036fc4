"""How much pretraining gives: the same architecture under two sections of one dataset whose protocols differ in the
kind of weights alone (ImageNet against random init), paired by (seed, fold) instance and by image.

Users ask "is pretraining worth it here?": each ImageNet checkpoint of an architecture (one line per checkpoint:
torchvision's V1 and V2 are two answers) against the same architecture from random init, on the same scored images
(one section), every other setting equal, on the instances both share, with bench/stats.py's one comparison.
"""
from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd

from ..identity import protocol_fields, row_identity
from ..stats import ALPHA, MIN_INSTANCES, gap
from .verdicts import candidate_runs

COLUMNS = ["dataset", "arch", "checkpoint", "protocol", "n_pairs", "pretrained_acc", "random_acc", "gain",
           "gain_lo95", "gain_hi95", "p_value"]
ARCH_KEYS = ("arch", "activation", "self_attention")


def _keys(row: dict) -> tuple[str, str, str, str]:
    """(the protocol minus the kind of weights, the architecture, the kind of weights, the checkpoint) of a row."""
    ident = row_identity(row)
    proto = protocol_fields(ident)
    kind = proto.pop("weights_kind")
    arch = json.dumps({k: ident.get(k) for k in ARCH_KEYS}, sort_keys=True, default=str)
    return json.dumps(proto, sort_keys=True, default=str), arch, kind, str(ident.get("weights", ""))


def pretraining(ok: pd.DataFrame, outcomes: dict | None = None) -> pd.DataFrame:
    """One row per (section, architecture, protocol, ImageNet checkpoint) with random-init results on shared
    instances: gain = ImageNet - random over those instances and images, its 95 % interval and two-sided p."""
    if ok.empty:
        return pd.DataFrame(columns=COLUMNS)
    keys = [_keys(r) for r in ok.to_dict("records")]
    keyed = ok.assign(_proto=[k[0] for k in keys], _arch=[k[1] for k in keys], _kind=[k[2] for k in keys],
                      _ckpt=[k[3] for k in keys])
    out = []
    for (ds, _, _, _), g in keyed.groupby(["dataset", "section", "_proto", "_arch"], sort=False):
        random = candidate_runs(g[g._kind == "random"])
        if random.empty:
            continue
        for ckpt, pre in g[g._kind == "imagenet"].groupby("_ckpt", sort=True):
            gn = gap(candidate_runs(pre), random, outcomes)
            if gn is None:
                continue
            lo, hi = gn.interval(ALPHA) if gn.n >= MIN_INSTANCES else (np.nan, np.nan)
            shared = candidate_runs(pre).merge(random, on=["seed", "fold"], suffixes=("_p", "_r"))
            out.append(dict(dataset=ds, arch=str(g.arch.iloc[0]), checkpoint=ckpt.split(" (")[0],
                            protocol=str(pre.protocol_text.iloc[0]) if "protocol_text" in pre else "",
                            n_pairs=gn.n, pretrained_acc=shared.final_accuracy_p.mean(),
                            random_acc=shared.final_accuracy_r.mean(), gain=gn.diff, gain_lo95=lo, gain_hi95=hi,
                            p_value=gn.p() if gn.n >= MIN_INSTANCES else np.nan))
    return pd.DataFrame(out, columns=COLUMNS)


def sentence(row) -> str:
    bound = (f"95 % interval [{100 * row.gain_lo95:+.1f}, {100 * row.gain_hi95:+.1f}] pp, "
             if np.isfinite(row.gain_lo95) else "")
    return (f"{row.arch} ({row.checkpoint}): ImageNet weights {100 * row.pretrained_acc:.1f} % vs random init "
            f"{100 * row.random_acc:.1f} % = {100 * row.gain:+.1f} pp ({bound}{row.n_pairs} paired instance(s), "
            "otherwise the same protocol)")


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
            f"ImageNet checkpoint against its random-init runs, paired by instance and image; seed and image noise "
            f"counted, bench/stats.py)<ul>{items}</ul></div>")
