"""Comparison groups: which runs may be ranked together, and which rows are the same (seed, fold) instance.

A *section* is one dataset (by content: its fingerprint) under one protocol: every setting except the architecture
(the arch, its activation and self-attention, and which weights file: only the *kind* of weights, random, imagenet
or file, is protocol). Only models of one section are ranked against each other; another protocol on the same data
is another section with its own ranking, headed by the protocol in words.

Within a section a model (one variant) has at most one result per instance (seed, split seed, fold): a run
recorded twice (two dataset spellings, a sweep and a race, a re-run) counts once, the latest ok attempt.
"""
from __future__ import annotations

import hashlib
import json
import shlex

import pandas as pd

from .identity import DATA, variant_labels

INSTANCE = ["seed", "split_seed", "fold"]
# What may differ between the models of one ranking: the architecture itself. Weights are protocol by kind only.
ARCH_ONLY = {"arch", "activation", "self_attention", "weights", "weights_used", "pretrained", "timm", "pytorchcv",
             "geffnet"}
# Protocol fields said in words in a section's heading; any other field that differs between a dataset's sections is
# appended as `field=value`, so two headings never read alike.
DESCRIBED = {"img_size", "head_epochs", "ft_epochs", "weights_kind", "pct_images", *DATA}


def weights_kind(used: str) -> str:
    """random | imagenet (a library's own weights) | file (a local state dict), from `weights_used`."""
    used = str(used or "")
    if not used:
        return ""
    return "random" if used == "random" else "file" if used.startswith("file:") else "imagenet"


def protocol_frame(ident: pd.DataFrame) -> pd.DataFrame:
    """The identity minus the architecture-only fields, with the kind of weights."""
    kind = ident.get("weights_used", pd.Series("", index=ident.index)).map(weights_kind)
    kind = kind.where(kind != "", ident.get("pretrained", pd.Series("", index=ident.index))
                      .map({"false": "random", "False": "random"}).fillna(""))
    return ident.drop(columns=[c for c in ident.columns if c in ARCH_ONLY]).assign(weights_kind=kind)


def protocol_keys(ident: pd.DataFrame) -> pd.Series:
    frame = protocol_frame(ident)
    keys = [json.dumps({k: v for k, v in r.items() if v != ""}, sort_keys=True) for r in frame.to_dict("records")]
    return pd.Series([hashlib.sha256(k.encode()).hexdigest()[:8] for k in keys], index=ident.index, dtype=object)


def _num(v: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{f:g}"


def describe(p: dict, dataset: str) -> str:
    """A protocol in words: '32 px, 1+4 epochs, random init, 100 % of digits'."""
    parts = []
    if p.get("img_size"):
        parts.append(f"{_num(p['img_size'])} px")
    if p.get("head_epochs") or p.get("ft_epochs"):
        parts.append(f"{_num(p.get('head_epochs', '?'))}+{_num(p.get('ft_epochs', '?'))} epochs")
    kind = p.get("weights_kind")
    parts.append({"random": "random init", "imagenet": "ImageNet weights", "file": "weights from a file"}.get(
        kind, "weights not recorded"))
    pct = p.get("pct_images")
    parts.append(f"{100 * float(pct):g} % of {dataset}" if pct else str(dataset))
    return ", ".join(parts)


def label_sections(runs: pd.DataFrame, ident: pd.DataFrame) -> pd.DataFrame:
    """Adds `dataset` (one name per dataset content), `protocol` (id), `section` (dataset · protocol id),
    `protocol_text` (words, plus what else tells the dataset's sections apart) and `model` (arch plus what tells
    its variants apart within the section)."""
    runs = runs.copy()
    fp = runs.get("dataset_fingerprint", pd.Series("", index=runs.index)).fillna("").astype(str)
    order = runs.sort_values(["attempt", "timestamp"], na_position="first", kind="stable")
    newest = {f: d.dataset.iloc[-1] for f, d in order[fp[order.index] != ""].groupby(fp[order.index], sort=False)}
    runs["dataset"] = [newest.get(f, d) for f, d in zip(fp, runs.dataset)]  # a copied folder or another spelling
    runs["protocol"] = protocol_keys(ident)
    runs["section"] = runs.dataset.astype(str) + " · " + runs.protocol
    proto = protocol_frame(ident)
    runs["protocol_text"] = ""
    for _, idx in runs.groupby("dataset", sort=False).groups.items():
        reps = runs.loc[idx].drop_duplicates("protocol").index
        varying = [c for c in proto.columns if c not in DESCRIBED and proto.loc[reps, c].nunique() > 1]
        for i in reps:
            words = describe(proto.loc[i].to_dict(), runs.at[i, "dataset"])
            extra = ", ".join(f"{c}={proto.at[i, c] or '?'}" for c in varying)
            same = idx[runs.loc[idx, "protocol"] == runs.at[i, "protocol"]]
            runs.loc[same, "protocol_text"] = words + (f" ({extra})" if extra else "")
    runs["model"] = variant_labels(runs.assign(dataset=runs.section), ident) if len(runs) else ""
    return runs


def one_per_instance(ok: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the latest ok attempt per (section, model, instance); the rows left out as repeats). `ok` is already one row
    per run id; rows of one instance with different run ids are older records of the same run."""
    key = ["section", "model", *INSTANCE]
    keyed = ok.assign(**{c: ok[c].astype(object).fillna("").astype(str) for c in INSTANCE})
    order = keyed.sort_values(["attempt", "timestamp"], na_position="first", kind="stable")
    repeat = order.duplicated(key, keep="last")
    return ok.loc[order.index[~repeat]], ok.loc[order.index[repeat]]


def _flags(row) -> str:
    """`bench run` flags that re-create this row's configuration (its config_json), minus where it writes."""
    try:
        cfg = json.loads(row.get("config_json") or "")
    except (TypeError, ValueError):
        cfg = None
    if not isinstance(cfg, dict):
        return f"--arch {shlex.quote(str(row['arch']))} --dataset {shlex.quote(str(row['dataset']))}"
    skip = {"seed", "fold", "results_dir", "experiment", "num_workers", "track", "on_bad_image"}
    flags = []
    for k, v in sorted(cfg.items(), key=lambda kv: (kv[0] not in ("arch", "dataset"), kv[0] != "arch", kv[0])):
        if k in skip or v is None or v == "":
            continue
        flags.append(f"--{k.replace('_', '-')} {shlex.quote(str(v).lower() if isinstance(v, bool) else str(v))}")
    return " ".join(flags)


def fill_commands(model_rows: pd.DataFrame, lacking: list[tuple], results_dir: str) -> list[str]:
    """The command that fills a model's missing instances: its sweep again (resume runs only what is missing) when
    its runs came from an experiment file, else one `bench run` per instance with the runs' own settings."""
    exp = model_rows.experiment.dropna().astype(str)
    exp = exp[exp != ""]
    if len(exp):
        return [f"make sweep EXP={shlex.quote(exp.mode().iloc[0])} RESULTS={shlex.quote(results_dir)}"]
    flags = _flags(model_rows.iloc[-1])
    return [f"bench run {flags} --seed {s} --fold {f} --results-dir {shlex.quote(results_dir)}"
            for s, _, f in lacking]

