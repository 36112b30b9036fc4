"""`bench sweep FILE`: every (arch, seed, fold) of an experiment file, each in its own process, resumable.

Run ids are deterministic (config identity + dataset fingerprint + split hash), so a restarted sweep skips every run
that already has an `ok` row and runs the rest; a run interrupted by a killed sweep left no row and simply runs
again. Rows are whole-line appends under a file lock and each run is claimed by an flock while it executes, so
sweeps killed at any moment, or several sweeps on one results directory, never duplicate or tear a row.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from .config import ConfigError, RunConfig


@dataclass
class Plan:
    name: str
    jobs: list[dict]      # what remains to run, in file order
    done: list[str]       # run ids with an ok row already
    failed: list[str]     # run ids whose only rows are failures (re-run unless skip_failed)
    total: int


def plan(configs: list[RunConfig] | tuple[RunConfig, ...], name: str = "", skip_failed: bool = False) -> Plan:
    """Resolve every config's run id exactly as `protocol.prepare` does (the worker checks they agree), loading
    each dataset and split once rather than once per run."""
    from .archs import get_arch
    from .data import load_or_make_split, subsample
    from .datasets import load_dataset
    from .executors import job_env
    from .logs import read_rows
    from .protocol import index_path, run_id_for
    datasets, splits, status, seen = {}, {}, {}, set()
    jobs, done, failed = [], [], []
    for cfg in configs:
        get_arch(cfg.arch)
        ds = datasets.get(cfg.dataset) or datasets.setdefault(cfg.dataset, load_dataset(cfg.dataset))
        key = (cfg.dataset, cfg.results_dir, cfg.split_seed, cfg.n_folds)
        if key not in splits:
            splits[key] = load_or_make_split(ds, cfg)
        split, split_hash = splits[key]
        subsample(split, cfg.pct_images, cfg.fold)  # fails here, before training, if it leaves an empty set
        run_id = run_id_for(cfg, ds.fingerprint, split_hash)
        if run_id in seen:  # the file lists the same run twice (e.g. an override equal to the default)
            continue
        seen.add(run_id)
        if cfg.results_dir not in status:
            status[cfg.results_dir] = {}
            for r in read_rows(index_path(cfg.results_dir)):
                status[cfg.results_dir].setdefault(r.get("run_id"), set()).add(r.get("status"))
        seen_status = status[cfg.results_dir].get(run_id, set())
        if "ok" in seen_status:
            done.append(run_id)
            continue
        if seen_status:
            failed.append(run_id)
            if skip_failed:
                continue
        jobs.append(dict(config=cfg.to_dict(), run_id=run_id, fingerprint=ds.fingerprint, split_hash=split_hash,
                         dataset_name=ds.name, env=job_env()))
    return Plan(name, jobs, done, failed, len(seen))


def _label(job_or_cfg: dict) -> str:
    c = job_or_cfg["config"]
    return f"{c['arch']} seed {c['seed']} fold {c['fold']}"


def execute(p: Plan, executor: str = "local", **executor_kw) -> dict[str, int]:
    """Run the plan's jobs with a progress bar (runs done / total, failures, ETA); returns counts by outcome."""
    from tqdm.auto import tqdm
    from .executors import EXECUTORS
    labels = {j["run_id"]: _label(j) for j in p.jobs}
    counts = {"ok": 0, "failed": 0, "done": 0}
    bar = tqdm(total=p.total, initial=p.total - len(p.jobs), desc=f"sweep {p.name}", unit="run", file=sys.stderr,
               dynamic_ncols=True)
    bar.set_postfix(failed=0)

    def report(out: dict) -> None:
        counts[out["status"]] = counts.get(out["status"], 0) + 1
        label = f"{labels.get(out['run_id'], out['run_id'])} (run {out['run_id']})"
        if out["status"] == "ok":
            acc = out["row"].get("final_accuracy")
            acc_s = f"accuracy {float(acc):.4f}" if acc not in (None, "") else "no epochs"
            bar.write(f"bench: ok     {label}: {acc_s}, {out['seconds']:.0f} s")
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


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def cmd_sweep(ns: argparse.Namespace) -> int:
    from .experiment import load_experiment
    from .protocol import index_path
    if ns.executor != "ray" and (ns.address or ns.workers):
        raise ConfigError("--address and --workers apply to --executor ray only")
    if ns.workers is not None and ns.workers < 1:
        raise ConfigError(f"--workers: {ns.workers} must be >= 1")
    exp = load_experiment(ns.file, dataset=ns.dataset, results_dir=ns.results_dir, overrides=_parse_sets(ns.set))
    p = plan(exp.configs, exp.name, skip_failed=ns.skip_failed)
    index = index_path(ns.results_dir)
    print(f"bench: sweep {p.name}: {p.total} runs on {exp.configs[0].dataset}: {len(p.done)} already done, "
          f"{len(p.jobs)} to run" + (f" ({len(p.failed)} failed before)" if p.failed else "") + f" -> {index}",
          file=sys.stderr)
    if ns.dry_run:
        for job in p.jobs:
            print(f"{job['run_id']}  {_label(job)}")
        return 0
    t0 = time.monotonic()
    kw = dict(address=ns.address, workers=ns.workers) if ns.executor == "ray" else {}
    counts = execute(p, ns.executor, **kw)
    print(f"bench: sweep {p.name}: {counts['ok']} ok, {counts['failed']} failed, {len(p.done) + counts['done']} "
          f"done earlier in {time.monotonic() - t0:.0f} s -> {index}", file=sys.stderr)
    return 1 if counts["failed"] else 0


def add_cli(sub) -> None:
    p = sub.add_parser("sweep", help="run an experiment file: every (arch, seed, fold), resumable",
                       description=__doc__.splitlines()[0])
    p.add_argument("file", help="experiment file, e.g. experiments/quick.yaml")
    p.add_argument("--dataset", default=None, help="replace the file's dataset (name, folder or file)")
    p.add_argument("--results-dir", default="results", help="shared by every run (default: results)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: one run at a time here; ray: one Ray task per run (local Ray unless --address)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (e.g. ray://head:10001 or auto); its nodes must share --results-dir")
    p.add_argument("--workers", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting for every run, after the file's (repeatable), e.g. --set epochs=1")
    p.add_argument("--skip-failed", action="store_true", help="do not re-run runs that have only failed rows")
    p.add_argument("--dry-run", action="store_true", help="list the runs left to do and exit")
    p.set_defaults(func=cmd_sweep)
