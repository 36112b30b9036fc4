"""`bench sweep FILE`: the command line over experiment files, the plan and the executors."""
from __future__ import annotations

import argparse
import sys
import time

from ..config import ConfigError
from .plan import execute, label, plan


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def cmd_sweep(ns: argparse.Namespace) -> int:
    from ..train.record import index_path
    from .experiment import load_experiment
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
            print(f"{job['run_id']}  {label(job)}")
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
