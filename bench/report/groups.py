"""Comparison groups: which runs may be compared, and which rows are the same (seed, fold) instance.

A *section* is one set of scored images: the dataset's content (its fingerprint), the split and the subsample
(pct_images). Runs scored on other images are never compared. Its candidates are every variant that ran on those
images - architecture, weights, size, epochs, whatever differs - each labelled by what differs from the others
("tf_efficientnet_lite0 (ImageNet)"), so the user's question (this pretrained model or that random-init one?) gets
one verdict (bench/report/verdicts.py), the race's function.

Within a section a model (one variant) has at most one result per instance (seed, split seed, fold): a run
recorded twice (two dataset spellings, a sweep and a race, a re-run) counts once, the latest ok attempt.
"""
from __future__ import annotations

import json
import shlex

import pandas as pd

import hashlib

from ..identity import variant_labels
from .variants import identity_keys

INSTANCE = ["seed", "split_seed", "fold"]
SCORED = ["dataset_fingerprint", "split_hash", "pct_images"]  # what fixes the scored images (the fold: an instance)


def scoring_keys(ident: pd.DataFrame) -> pd.Series:
    """A short hash of the scored images of each row: runs with equal keys were scored on the same images."""
    cols = [c for c in SCORED if c in ident.columns]
    ids = [hashlib.sha256("|".join(r).encode()).hexdigest()[:12] for r in ident[cols].astype(str).values.tolist()]
    return pd.Series(ids, index=ident.index, dtype=object)


def candidate_labels(runs: pd.DataFrame, ident: pd.DataFrame) -> pd.Series:
    """Per section: each variant labelled by bench.identity.variant_labels (the race's labeller too): the arch plus,
    in words, what differs between the section's variants."""
    labels = runs.arch.astype(str).copy()
    # the row's arch column too: rows written before config_json existed have an identity without one
    keys = runs.arch.astype(str) + " " + identity_keys(ident)
    for _, idx in runs.groupby("section", sort=False).groups.items():
        firsts = {k: {**{f: v for f, v in ident.loc[i].items() if v != ""}, "arch": runs.at[i, "arch"]}
                  for i, k in zip(idx, keys[idx])}
        words = variant_labels(firsts)
        labels[idx] = [words[k] for k in keys[idx]]
    return labels


def label_sections(runs: pd.DataFrame, ident: pd.DataFrame) -> pd.DataFrame:
    """Adds `dataset` (one name per dataset content), `protocol` (id), `section` (dataset · protocol id),
    `protocol_text` (words, plus what else tells the dataset's sections apart) and `model` (arch plus what tells
    its variants apart within the section)."""
    runs = runs.copy()
    fp = runs.get("dataset_fingerprint", pd.Series("", index=runs.index)).fillna("").astype(str)
    order = runs.sort_values(["attempt", "timestamp"], na_position="first", kind="stable")
    newest = {f: d.dataset.iloc[-1] for f, d in order[fp[order.index] != ""].groupby(fp[order.index], sort=False)}
    runs["dataset"] = [newest.get(f, d) for f, d in zip(fp, runs.dataset)]  # a copied folder or another spelling
    runs["protocol"] = scoring_keys(ident)
    runs["section"] = runs.dataset.astype(str) + " · " + runs.protocol
    runs["protocol_text"] = ""
    for _, idx in runs.groupby("dataset", sort=False).groups.items():
        several = runs.loc[idx, "protocol"].nunique() > 1
        for key, same in runs.loc[idx].groupby("protocol", sort=False).groups.items():
            first = runs.loc[same[0]]
            pct_images = pd.to_numeric(pd.Series([first.get("pct_images")]), errors="coerce").iloc[0]
            text = (f"scored on the validation images of {first['dataset']}"
                    + (f", {pct_images * 100:g} % subsample" if pct_images == pct_images else ""))
            if several:
                text += f", split {str(first.get('split_hash') or '?')[:8]}"
            runs.loc[same, "protocol_text"] = text
    runs["model"] = candidate_labels(runs, ident) if len(runs) else ""
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
    its runs came from an experiment file, naming the seeds and folds lacking (a race's instances are not the
    file's own: FOLDS=5 races folds the file may not list), else one `bench run` per instance with the runs' own
    settings."""
    exp = model_rows.experiment.dropna().astype(str)
    exp = exp[exp != ""]
    last = model_rows.iloc[-1]
    if len(exp):
        which = "".join(f" {key}={','.join(str(v) for v in sorted({int(float(i[k])) for i in lacking}))}"
                        for key, k in (("SEEDS", 0), ("FOLDS", 1))) if lacking else ""
        return [f"make sweep EXP={shlex.quote(exp.mode().iloc[0])} DATASET={shlex.quote(_typed_dataset(last))}"
                f"{which} RESULTS={shlex.quote(results_dir)}"]
    flags = _flags(last)
    return [f"bench run {flags} --seed {s} --fold {f} --results-dir {shlex.quote(results_dir)}"
            for s, f in lacking]
