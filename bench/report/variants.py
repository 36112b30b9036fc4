"""What makes two runs comparable, as the report reads it: each row's identity (bench/identity.py, the same function
that made its run id) minus the instance (candidates are labelled by bench.identity.variant_labels), and stale
rows from a superseded dataset version or split.

Only runs with the same identity are averaged; the identity holds the whole config minus the fields that cannot change
the numbers, so a setting added to `RunConfig` later is covered without touching this.
"""
from __future__ import annotations

import json

import pandas as pd

from ..identity import row_identity as run_identity, variant_fields


def _text(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def row_identity(row) -> dict[str, str]:
    """Every setting that changes the numbers of a row's variant, as text: bench.identity's identity of the run (the
    one its run id hashes) minus the instance (seed, fold)."""
    return {k: _text(v) for k, v in variant_fields(run_identity(row)).items()}


def identities(runs: pd.DataFrame) -> pd.DataFrame:
    """One column per identity field (text), index aligned with `runs`."""
    records = [row_identity(r) for r in runs.to_dict("records")]
    frame = pd.DataFrame.from_records(records, index=runs.index) if records else pd.DataFrame(index=runs.index)
    return frame.reindex(columns=sorted(frame.columns)).fillna("")


def fill_from_finished(ident: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """A failed row never recorded what it would have used (weights, memory format): take the value the finished
    runs of the same dataset and arch agree on, so a failure joins its configuration instead of a variant of its
    own."""
    ident = ident.copy()
    ok = runs.status == "ok"
    for _, idx in runs.groupby(["dataset", "arch"], dropna=False).groups.items():
        done, rest = [i for i in idx if ok[i]], [i for i in idx if not ok[i]]
        if not done or not rest:
            continue
        for col in ident.columns:
            values = set(ident.loc[done, col]) - {""}
            if len(values) == 1:
                missing = [i for i in rest if ident.at[i, col] == ""]
                ident.loc[missing, col] = values.pop()
    return ident


def identity_keys(ident: pd.DataFrame) -> pd.Series:
    """The full identity of each row as one JSON text: rows are averaged together only when these are equal."""
    # '' (not recorded) is left out, so the same settings always give the same text whatever columns a file had
    keys = [json.dumps({k: v for k, v in r.items() if v != ""}, sort_keys=True) for r in ident.to_dict("records")]
    return pd.Series(keys, index=ident.index, dtype=object)


def from_keys(keys: pd.Series) -> pd.DataFrame:
    frame = pd.DataFrame.from_records([json.loads(k) for k in keys], index=keys.index) if len(keys) else \
        pd.DataFrame(index=keys.index)
    return frame.fillna("")


def mark_stale(runs: pd.DataFrame) -> pd.Series:
    """Why a row is stale ('' if current): per dataset the newest row's fingerprint is the current version; then,
    per (dataset content, split_seed, n_folds), the newest row's split hash is the current split. Unrecorded = current."""
    reason = pd.Series("", index=runs.index, dtype=object)
    order = runs.sort_values(["attempt", "timestamp"], na_position="first", kind="stable")
    fp = order.get("dataset_fingerprint", pd.Series(index=order.index, dtype=object)).fillna("").astype(str)
    # judged per content: a fingerprint that is still some name's newest is current under every name (one content
    # recorded under two spellings, one of which later moved on, keeps all its runs)
    newest = {}
    for _, d in order.groupby("dataset", sort=False):
        known = fp[d.index][fp[d.index] != ""]
        if len(known):
            newest[d.index[0]] = known.iloc[-1]
    current_fps = set(newest.values())
    for _, d in order.groupby("dataset", sort=False):
        known = fp[d.index][fp[d.index] != ""]
        if len(known):
            old = known.index[~known.isin(current_fps)]
            reason[old] = "older dataset version (fingerprint " + known[old] + ", now " + known.iloc[-1] + ")"
    sh = order.get("split_hash", pd.Series(index=order.index, dtype=object)).fillna("").astype(str)
    current = order[reason[order.index] == ""]
    keys = [c for c in ["dataset_fingerprint", "split_seed", "n_folds"] if c in current]  # per content too
    for _, d in current.fillna({c: "" for c in keys}).groupby(keys, sort=False):
        known = sh[d.index][sh[d.index] != ""]
        if len(known):
            old = known.index[known != known.iloc[-1]]
            reason[old] = "superseded split (hash " + known[old] + ", now " + known.iloc[-1] + ")"
    return reason
