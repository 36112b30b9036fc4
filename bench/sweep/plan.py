"""The sweep plan: every (arch, seed, fold) of an experiment file, each in its own process, resumable.

Run ids are deterministic (config identity + dataset fingerprint + split hash), so a restarted sweep skips every run
that already has an `ok` row and runs the rest; a run interrupted by a killed sweep left no row (or, after Ctrl-C, an
`interrupted` one) and simply runs again. Rows are whole-line appends under a file lock and each run is claimed by an
flock while it executes, so sweeps killed at any moment, or several sweeps on one results directory, never duplicate or
tear a row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import RunConfig
from ..files import read_rows
from .pool import job_env
from ..identity import current_run_id

STATUSES = ("planned", "done", "failed-before")  # a run's place in a plan, as `bench sweep --dry-run --json` shows


@dataclass
class Plan:
    name: str
    jobs: list[dict]      # what remains to run, in file order
    done: list[str]       # run ids with an ok row already (that is the run asked for, see `satisfied`)
    failed: list[str]     # run ids whose only rows are failures (re-run unless skip_failed)
    total: int
    runs: list[dict] = field(default_factory=list)  # every distinct run: job fields + status, will_run, note
    ids: list[str] = field(default_factory=list)    # the run id of each config given, in order (repeats kept)


def satisfied(rows: list[dict], cfg: RunConfig | None = None) -> bool:
    """Is the run done: it has an ok row. The run id is the run's whole identity (bench/identity.py), including the
    weights it loads: a run that once trained from random init because no weights could be had has another id
    than the run that loads them, so nothing else needs checking here."""
    return any(r.get("status") == "ok" for r in rows)


# The thread policy of sweeps and races: one torch thread per run (as many runs at once as cores), whatever the
# executor, so a sweep and a race of one file make the same runs; the CPU thread count is part of a run's identity.
THREADS_PER_RUN = 1


def with_threads(cfg: RunConfig, threads: int | None = None) -> RunConfig:
    """`cfg` with its thread count fixed before planning: `threads` (a Ray task's --cpus-per-task) or the policy;
    a `threads` set in the experiment file or by --set wins."""
    return cfg if cfg.threads else cfg.replace(threads=threads or THREADS_PER_RUN)


_LOOKED: set[tuple] = set()  # the image sets already checked for upscaling in this process


def plan(configs: list[RunConfig] | tuple[RunConfig, ...], name: str = "", skip_failed: bool = False,
         write: bool = True, threads: int | None = None) -> Plan:
    """Resolve every config through the same prepare step as `bench run` (one Resolver: each dataset and split is
    loaded once), then sort runs into done, failed before, and to run. Interrupted runs (Ctrl-C) are re-run whatever
    `skip_failed` says. `write=False`
    (a dry run) writes nothing under the results folder."""
    # deferred: pandas and torch; `bench --help` imports this module
    from ..data.itemsize import warn_upscale
    from ..train.prepare import Resolver
    from ..train.record import index_path
    resolver, index, seen = Resolver(write=write), {}, set()
    p = Plan(name, [], [], [], 0)
    for cfg in configs:
        cfg = with_threads(cfg, threads)
        prep = resolver.prepare(cfg)
        p.ids.append(prep.run_id)
        if prep.run_id in seen:  # the file lists the same run twice (e.g. an override equal to the default)
            continue
        seen.add(prep.run_id)
        if cfg.results_dir not in index:
            index[cfg.results_dir] = {}
            for r in read_rows(index_path(cfg.results_dir)):
                index[cfg.results_dir].setdefault(current_run_id(r), []).append(r)
        rows = index[cfg.results_dir].get(prep.run_id, [])
        job = dict(config=cfg.to_dict(), run_id=prep.run_id, fingerprint=prep.dataset.fingerprint,
                   split_hash=prep.split_hash, dataset_name=prep.dataset.name, identity=prep.ident, env=job_env())
        status, note = _status(rows, cfg)
        if status == "done":
            p.done.append(prep.run_id)
        elif status == "failed-before":
            p.failed.append(prep.run_id)
        will_run = status == "planned" or (status == "failed-before" and not skip_failed)
        if will_run:
            p.jobs.append(job)
            images = (str(prep.dataset.root), prep.split_hash, cfg.pct_images, cfg.item_size, cfg.img_size)
            if images not in _LOOKED:  # the warning `bench run` gives, once per driver and set of images to train on
                _LOOKED.add(images)    # (a race plans every round)
                warn_upscale(cfg, prep.dataset, prep.items)
        p.runs.append({**job, "status": status, "will_run": will_run, "note": note})
    p.total = len(seen)
    return p


def _status(rows: list[dict], cfg: RunConfig) -> tuple[str, str]:
    statuses = {r.get("status") for r in rows}
    if satisfied(rows, cfg):
        return "done", ""
    if statuses - {"interrupted"}:
        return "failed-before", next(r.get("error", "") for r in reversed(rows) if r.get("status") != "interrupted")
    return "planned", "interrupted before" if statuses else ""


def label(job_or_cfg: dict) -> str:
    c = job_or_cfg["config"]
    return f"{c['arch']} seed {c['seed']} fold {c['fold']}"


def run_seconds(out: dict) -> str:
    """What the per-run line's seconds count: training (the row's total_seconds, as the report shows it), then the
    whole worker (process start, imports, data, model building, tracker) around it."""
    train = (out.get("row") or {}).get("total_seconds")
    whole = f"{out['seconds']:.0f} s in all with the worker's start-up"
    return f"training {float(train):.0f} s ({whole})" if train not in (None, "") else whole
