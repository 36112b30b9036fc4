"""The race log, `results/races/<experiment>.csv`: one row per round, rewritten whole after every round, keyed by
what it raced, and the rule for replaying it when a race restarts.

The key (the `key` column, JSON, the same on every row) is what the race's decisions depend on: the resolved
dataset (content fingerprint and split hash), the candidates (label -> settings), the instances in order, alpha,
margin, --min-instances and the rule in words. A restart whose key differs is refused in one line that says what
changed: a log raced on another dataset, or before a candidate was added, is never replayed as if it were this race.
(--budget is not in the key: it decides where a race stops, never what it decides, so a race stopped by its budget
goes on under a larger one.)

A restarted race replays the logged rounds exactly: their eliminations and decisions are the log's, and a candidate
the log records as failed stays out (its run is not asked for again) unless `--retry-failed`, which replays the rounds
before the first failure and races on from there.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import ConfigError
from ..files import atomic_write, encode_rows, read_rows
from ..identity import variant_labels
from .experiment import Experiment
from .plan import with_threads

LOG_FIELDS = ["race", "round", "instance", "n_instances", "survivors", "racing", "eliminated", "failed",
              "equivalent", "futile", "best", "test", "statistic", "p_value", "alpha", "margin", "level", "decision",
              "runs_used", "full_factorial_runs", "rule", "verdict", "key", "timestamp"]


# the settings that are the instance, the place or the name, not the candidate
NOT_CANDIDATE = ("seed", "fold", "dataset", "results_dir", "experiment")


def names(cell: str | None) -> list[str]:
    return [x for x in (cell or "").split(";") if x]


def write_log(path: Path, rows: list[dict]) -> None:
    """The whole log, replaced atomically: a killed race never leaves half a row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, encode_rows(rows, LOG_FIELDS, header=True))


def read_log(path: Path) -> list[dict]:
    return read_rows(path) if path.is_file() else []


def encode_key(key: dict) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)


def replayable(path: Path | None, name: str, key: dict, retry_failed: bool, echo) -> list[dict]:
    """The logged rounds a restarted race takes as they are (see the module's doc); [] for a new race."""
    rows = read_log(path) if path is not None else []
    if not rows:
        return []
    if not rows[0].get("key"):  # written before races were keyed: nothing to hold the replay to
        echo(f"bench: race {name}: {path} was written by an older bench (no key); racing afresh")
        return []
    try:
        old = json.loads(rows[0]["key"])
    except ValueError:
        raise ConfigError(f"{path}: the key column is not JSON; move the log away to race anew") from None
    changes = key_changes(old, json.loads(encode_key(key)))
    if changes:
        raise ConfigError(f"{path}: race {name} was raced on other terms: {'; '.join(changes)}. Restart with the "
                          "logged ones, or move the log away to race anew")
    if retry_failed:
        first = next((i for i, row in enumerate(rows) if names(row.get("failed"))), len(rows))
        rows = rows[:first]
    return rows


def _short(v) -> str:
    return str(v)[:12] if v not in (None, "") else "none"


def key_changes(old: dict, new: dict) -> list[str]:
    """What differs between two race keys, in words (empty: the same race)."""
    out = []
    a, b = old.get("dataset", {}), new.get("dataset", {})
    if not a.get("fingerprint") and not b.get("fingerprint") and a.get("name") != b.get("name"):
        out.append(f"the dataset changed ({a.get('name')} -> {b.get('name')})")
    elif a.get("fingerprint") != b.get("fingerprint"):
        out.append(f"the dataset's content changed (fingerprint {_short(a.get('fingerprint'))} -> "
                   f"{_short(b.get('fingerprint'))}, {a.get('name')} -> {b.get('name')})")
    elif a.get("split") != b.get("split"):
        out.append(f"the dataset's split changed (split {_short(a.get('split'))} -> {_short(b.get('split'))})")
    ca, cb = old.get("candidates", {}), new.get("candidates", {})
    out += [f"candidate added: {c}" for c in cb if c not in ca]
    out += [f"candidate removed: {c}" for c in ca if c not in cb]
    for c in (c for c in cb if c in ca and ca[c] != cb[c]):
        diff = [f"{k} {ca[c].get(k)} -> {cb[c].get(k)}" for k in sorted(set(ca[c]) | set(cb[c]))
                if ca[c].get(k) != cb[c].get(k)]
        out.append(f"{c}'s settings changed ({', '.join(diff)})")
    ia, ib = old.get("instances", []), new.get("instances", [])
    if ia != ib:
        i = next((i for i, (x, y) in enumerate(zip(ia, ib)) if x != y), min(len(ia), len(ib)))
        out.append(f"the instances changed ({len(ia)} -> {len(ib)}; the first difference is round {i + 1}: "
                   f"{ia[i] if i < len(ia) else 'none'} -> {ib[i] if i < len(ib) else 'none'})")
    for k, flag in (("alpha", "--alpha"), ("margin", "--margin"), ("min_instances", "--min-instances")):
        if old.get(k) != new.get(k):
            out.append(f"{flag} changed ({old.get(k)} -> {new.get(k)})")
    if not out and old.get("rule") != new.get("rule"):
        out.append(f"the race's rule changed (another bench): \"{old.get('rule')}\" -> \"{new.get('rule')}\"")
    return out


def candidate_labels(exp: Experiment, identities: dict | None = None) -> dict[str, str]:
    """display label -> the experiment's entry label. With the candidates' resolved identities (`resolve_dataset`):
    bench.identity.variant_labels, the report's own labels ("tf_efficientnet_lite0 (ImageNet)"), so the race's
    verdict and the report's read alike; without (a race on an Evaluate function): the arch plus every setting in
    which the entries differ, e.g. "tf_efficientnet_lite0 (pretrained=true)"."""
    if identities and set(identities) == set(exp.labels):
        shown = {label.replace(";", ","): e for e, label in variant_labels(identities).items()}
        if len(shown) == len(exp.labels):
            return {label: shown[label] for label in sorted(shown, key=lambda x: exp.labels.index(shown[x]))}
    settings = {e: candidate_settings(exp, e) for e in exp.labels}
    varying = sorted({k for s in settings.values() for k, v in s.items()
                      if k != "arch" and len({str(o.get(k)) for o in settings.values()}) > 1})
    shown = {}
    for e, s in settings.items():
        words = ", ".join(f"{k}={s.get(k)}" for k in varying)
        shown[(f"{s['arch']} ({words})" if words else s["arch"]).replace(";", ",")] = e
    return shown if len(shown) == len(exp.labels) else {e: e for e in exp.labels}


def candidate_settings(exp: Experiment, entry: str) -> dict:
    cfg = exp.cell(entry, exp.instances[0]).to_dict()
    return {k: v for k, v in cfg.items() if k not in NOT_CANDIDATE}


def race_key(exp: Experiment, cands: dict[str, str], dataset: dict | None, alpha: float, margin: float,
             min_instances: int, rule: str) -> dict:
    """What the race's decisions depend on (racelog.py). `dataset`: the resolved dataset (`resolve_dataset`); None
    names it by its spelling only (no content fingerprint)."""
    data = {k: v for k, v in (dataset or {"name": exp.configs[0].dataset, "fingerprint": None, "split": None}).items()
            if k != "identities"}  # the candidates are keyed by their settings below
    return dict(dataset=data, candidates={c: candidate_settings(exp, e) for c, e in cands.items()},
                instances=[instance_words(i) for i in exp.instances], alpha=alpha, margin=margin,
                min_instances=min_instances, rule=rule)


def resolve_dataset(exp: Experiment) -> dict:
    """The dataset the race's runs will be scored on: its name, content fingerprint and the split hash of each fold
    raced (resolved as the plan does, writing nothing)."""
    from ..train.prepare import Resolver
    resolver, folds, prep = Resolver(write=False), {}, None
    for seed, fold in exp.instances:
        if fold not in folds:
            prep = resolver.prepare(with_threads(exp.cell(exp.labels[0], (seed, fold))))
            folds[fold] = prep.split_hash
    # each candidate's identity (its first instance, minus the instance): what the report labels it by
    first = exp.instances[0]
    idents = {e: resolver.prepare(with_threads(exp.cell(e, first))).ident for e in exp.labels}
    return {"name": prep.dataset.name, "fingerprint": prep.dataset.fingerprint,
            "split": ",".join(sorted(set(folds.values()))), "identities": idents}


def instance_words(instance: tuple[int, int]) -> str:
    return f"seed {instance[0]} fold {instance[1]}"
