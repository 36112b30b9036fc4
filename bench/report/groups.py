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

from ..identity import ARCHITECTURE, protocol_fields
from .variants import DATA

INSTANCE = ["seed", "split_seed", "fold"]
def protocol_frame(ident: pd.DataFrame) -> pd.DataFrame:
    """The identity (text, '' = not recorded) minus the architecture-only fields, with the kind of weights
    (bench.identity.protocol_fields)."""
    records = [protocol_fields({k: v for k, v in r.items() if v != ""}) for r in ident.to_dict("records")]
    frame = pd.DataFrame.from_records(records, index=ident.index) if records else pd.DataFrame(index=ident.index)
    return frame.fillna("").astype(str)


SCORED = ["dataset_fingerprint", "split_hash", "pct_images"]  # what fixes the scored images (the fold: an instance)


def scoring_keys(ident: pd.DataFrame) -> pd.Series:
    """A short hash of the scored images of each row: runs with equal keys were scored on the same images."""
    cols = [c for c in SCORED if c in ident.columns]
    ids = [hashlib.sha256("|".join(r).encode()).hexdigest()[:12] for r in ident[cols].astype(str).values.tolist()]
    return pd.Series(ids, index=ident.index, dtype=object)


FIRST = ["img_size", "item_size", "head_epochs", "ft_epochs", "weights_kind"]  # the words people choose by, first
_KIND_WORDS = {"random": "random init", "imagenet": "ImageNet", "file": "weights file"}


def _words(field: str, value: str) -> str:
    if field == "weights_kind":
        return _KIND_WORDS.get(value, value)
    if field == "img_size":
        return f"{value} px"
    if field == "item_size":
        return f"items {value} px"
    return f"{field}={value or '?'}"


def candidate_labels(runs: pd.DataFrame, ident: pd.DataFrame) -> pd.Series:
    """Per section: the arch plus, in words, every setting in which the section's variants differ (the kind of
    weights rather than each arch's own checkpoint; an arch-only field when one arch has several values), so two
    candidates never read alike and the common case stays a bare arch name."""
    labels = runs.arch.astype(str).copy()
    frame = protocol_frame(ident)
    arch_fields = [c for c in ident.columns if c in ARCHITECTURE and c != "arch"]
    for _, idx in runs.groupby("section", sort=False).groups.items():
        varying = sorted((c for c in frame.columns if c not in DATA and frame.loc[idx, c].nunique() > 1),
                         key=lambda c: (FIRST.index(c) if c in FIRST else len(FIRST), c))
        by_arch = runs.loc[idx].groupby("arch").groups.values()
        varying += [c for c in arch_fields if any(ident.loc[i, c].nunique() > 1 for i in by_arch)]
        if varying:
            words = [", ".join(_words(c, (frame if c in frame.columns else ident).at[i, c]) for c in varying)
                     for i in idx]
            labels[idx] = [f"{a} ({w})" for a, w in zip(labels[idx], words)]
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
