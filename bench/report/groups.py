"""Comparison groups: which runs may be ranked together, and which rows are the same (seed, fold) instance.

A *section* is one dataset (by content: its fingerprint) under one protocol: every setting except the architecture
(the arch, its activation and self-attention, and which weights file: only the *kind* of weights, random, imagenet
or file, is protocol). Only models of one section are ranked against each other; another protocol on the same data
is another section with its own ranking, headed by the protocol in words.

Within a section a model (one variant) has at most one result per instance (seed, split seed, fold): a run
recorded twice (two dataset spellings, a sweep and a race, a re-run) counts once, the latest ok attempt.
"""
from __future__ import annotations

import json
import shlex

import pandas as pd

from ..identity import describe_protocol, protocol_fields, protocol_id
from ..identity import row_identity as run_identity
from .identity import DATA, variant_labels

INSTANCE = ["seed", "split_seed", "fold"]
# The words describe_protocol puts first (size, epochs, kind of weights, share of the data, batch); any other field
# that differs between a dataset's sections is appended as `field=value`, so two headings never read alike.
WORDS = 5
DESCRIBED = {"img_size", "item_size", "head_epochs", "ft_epochs", "weights_kind", "pct_images", "batch_size", *DATA}


def protocol_frame(ident: pd.DataFrame) -> pd.DataFrame:
    """The identity (text, '' = not recorded) minus the architecture-only fields, with the kind of weights
    (bench.identity.protocol_fields)."""
    records = [protocol_fields({k: v for k, v in r.items() if v != ""}) for r in ident.to_dict("records")]
    frame = pd.DataFrame.from_records(records, index=ident.index) if records else pd.DataFrame(index=ident.index)
    return frame.fillna("").astype(str)


def protocol_keys(ident: pd.DataFrame) -> pd.Series:
    ids = [protocol_id({k: v for k, v in r.items() if v != ""}) for r in ident.to_dict("records")]
    return pd.Series(ids, index=ident.index, dtype=object)


def describe(row: dict, dataset: str) -> str:
    """The protocol's first words (bench.identity.describe_protocol), e.g. '32 px, 1+4 epochs, random init,
    100 % of digits, batch 32'; a part the row did not record is left out."""
    parts = describe_protocol(run_identity(row), dataset).split(", ")[:WORDS]
    return ", ".join(p for p in parts if "None" not in p)


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
            words = describe(runs.loc[i].to_dict(), runs.at[i, "dataset"])
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


def _typed_dataset(row) -> str:
    """The dataset as the runs were asked for it (config_json), so the command trains on the same data."""
    try:
        return str(json.loads(row.get("config_json") or "").get("dataset") or row["dataset"])
    except (TypeError, ValueError, AttributeError):
        return str(row["dataset"])


def fill_commands(model_rows: pd.DataFrame, lacking: list[tuple], results_dir: str) -> list[str]:
    """The command that fills a model's missing instances: its sweep again (resume runs only what is missing) when
    its runs came from an experiment file, else one `bench run` per instance with the runs' own settings."""
    exp = model_rows.experiment.dropna().astype(str)
    exp = exp[exp != ""]
    last = model_rows.iloc[-1]
    if len(exp):
        return [f"make sweep EXP={shlex.quote(exp.mode().iloc[0])} DATASET={shlex.quote(_typed_dataset(last))} "
                f"RESULTS={shlex.quote(results_dir)}"]
    flags = _flags(last)
    return [f"bench run {flags} --seed {s} --fold {f} --results-dir {shlex.quote(results_dir)}"
            for s, _, f in lacking]
