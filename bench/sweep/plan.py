"""The sweep plan: every (arch, seed, fold) of an experiment file, each in its own process, resumable.

Run ids are deterministic (config identity + dataset fingerprint + split hash), so a restarted sweep skips every run
that already has an `ok` row and runs the rest; a run interrupted by a killed sweep left no row and simply runs
again. Rows are whole-line appends under a file lock and each run is claimed by an flock while it executes, so
sweeps killed at any moment, or several sweeps on one results directory, never duplicate or tear a row.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from ..config import RunConfig


@dataclass
class Plan:
    name: str
    jobs: list[dict]      # what remains to run, in file order
    done: list[str]       # run ids with an ok row already
    failed: list[str]     # run ids whose only rows are failures (re-run unless skip_failed)
    total: int


def plan(configs: list[RunConfig] | tuple[RunConfig, ...], name: str = "", skip_failed: bool = False) -> Plan:
    """Resolve every config through the same prepare step as `bench run` (one Resolver: each dataset and split is
    loaded once), then sort runs into done, failed before, and to run."""
    from ..logs import read_rows
    from ..train.prepare import Resolver
    from ..train.record import index_path
    from .executors import job_env
    resolver, status, seen = Resolver(), {}, set()
    jobs, done, failed = [], [], []
    for cfg in configs:
        p = resolver.prepare(cfg)
        if p.run_id in seen:  # the file lists the same run twice (e.g. an override equal to the default)
            continue
        seen.add(p.run_id)
        if cfg.results_dir not in status:
            status[cfg.results_dir] = {}
            for r in read_rows(index_path(cfg.results_dir)):
                status[cfg.results_dir].setdefault(r.get("run_id"), set()).add(r.get("status"))
        seen_status = status[cfg.results_dir].get(p.run_id, set())
        if "ok" in seen_status:
            done.append(p.run_id)
            continue
        if seen_status:
            failed.append(p.run_id)
            if skip_failed:
                continue
        jobs.append(dict(config=cfg.to_dict(), run_id=p.run_id, fingerprint=p.dataset.fingerprint,
                         split_hash=p.split_hash, dataset_name=p.dataset.name, env=job_env()))
    return Plan(name, jobs, done, failed, len(seen))


def label(job_or_cfg: dict) -> str:
    c = job_or_cfg["config"]
    return f"{c['arch']} seed {c['seed']} fold {c['fold']}"


def execute(p: Plan, executor: str = "local", **executor_kw) -> dict[str, int]:
    """Run the plan's jobs with a progress bar (runs done / total, failures, ETA); returns counts by outcome."""
    from tqdm.auto import tqdm
    from .executors import EXECUTORS
    labels = {j["run_id"]: label(j) for j in p.jobs}
    counts = {"ok": 0, "failed": 0, "done": 0}
    # disable=None: no bar when stderr is a file or pipe (tqdm would redraw it into the log); the lines stay
    bar = tqdm(total=p.total, initial=p.total - len(p.jobs), desc=f"sweep {p.name}", unit="run", file=sys.stderr,
               dynamic_ncols=True, disable=None)
    bar.set_postfix(failed=0)

    def report(out: dict) -> None:
        counts[out["status"]] = counts.get(out["status"], 0) + 1
        label = f"{labels.get(out['run_id'], out['run_id'])} (run {out['run_id']})"
        if out["status"] == "ok":
            acc = out["row"].get("final_accuracy")
            acc_s = f"accuracy {float(acc):.4f}" if acc not in (None, "") else "no epochs"
            weights = out["row"].get("weights_used") or "?"  # the workers' own warnings are not shown
            bar.write(f"bench: ok     {label}: {acc_s}, {out['seconds']:.0f} s, weights {weights}")
        elif out["status"] == "failed":
            bar.write(f"bench: FAILED {label}: {out['error']}")
        else:
            bar.write(f"bench: {label} was finished by another sweep")
        bar.update(1)
        bar.set_postfix(failed=counts["failed"])

    try:
        EXECUTORS[executor](p.jobs, report, **executor_kw)
    finally:
        bar.close()
    return counts
