"""`bench sweep FILE` and `bench race FILE`: the command line over experiment files, the plan, the executors and
the race."""
from __future__ import annotations

import argparse
import json
import sys
import time

from ..config import CHOICES, ConfigError
from .executors import EXECUTORS, check_ray_tracking, execute, start_early
from .experiment import load_experiment
from .plan import THREADS_PER_RUN, label, plan
from .raycluster import preflight


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def _executor_kw(ns: argparse.Namespace) -> dict:
    if ns.executor != "ray" and (ns.address or ns.cpus_per_task is not None):
        raise ConfigError("--address and --cpus-per-task apply to --executor ray only")
    for flag, n in (("--workers", ns.workers), ("--cpus-per-task", ns.cpus_per_task)):
        if n is not None and n < 1:
            raise ConfigError(f"{flag}: {n} must be >= 1")
    if ns.workers and ns.cpus_per_task and ns.cpus_per_task > ns.workers:
        raise ConfigError(f"--cpus-per-task {ns.cpus_per_task} is more than the {ns.workers} CPUs of --workers: "
                          "no task could start")
    if ns.executor == "local":
        return dict(workers=ns.workers)
    return dict(address=ns.address, workers=ns.workers, cpus_per_task=ns.cpus_per_task or THREADS_PER_RUN)


def _overrides(ns: argparse.Namespace) -> dict:
    """--set KEY=VALUE settings, and --track."""
    return {**_parse_sets(ns.set), **({"track": ns.track} if ns.track else {})}


def _check_executor(ns: argparse.Namespace, configs) -> None:
    if ns.executor == "ray":
        check_ray_tracking(configs)
        preflight(ns.address)  # an address where nothing listens, or no token: one line before anything is written


def cmd_sweep(ns: argparse.Namespace) -> int:
    from ..train.record import index_path  # deferred: torch; `bench --help` imports this module
    kw = _executor_kw(ns)
    if ns.json and not ns.dry_run:
        raise ConfigError("--json applies to --dry-run only (a sweep's results are in runs.csv)")
    exp = load_experiment(ns.file, dataset=ns.dataset, results_dir=ns.results_dir, overrides=_overrides(ns),
                          seeds=_parse_ints(ns.seeds, "--seeds"), folds=_parse_folds(ns.folds))
    _check_executor(ns, exp.configs)
    if not ns.dry_run:
        start_early(ns.executor)
    p = plan(exp.configs, exp.name, skip_failed=ns.skip_failed, write=not ns.dry_run, threads=kw.get("cpus_per_task"))
    index = index_path(ns.results_dir)
    print(f"bench: sweep {p.name}: {p.total} runs on {exp.configs[0].dataset}: {len(p.done)} already done, "
          f"{len(p.jobs)} to run" + (f" ({len(p.failed)} failed before)" if p.failed else "") + f" -> {index}",
          file=sys.stderr)
    if ns.dry_run:  # writes nothing: no results folder, scan report or split file
        for run in (p.runs if ns.json else p.jobs):
            if ns.json:
                print(json.dumps({k: run[k] for k in ("run_id", "status", "will_run", "note", "dataset_name",
                                                      "fingerprint", "split_hash", "config")}))
            else:
                print(f"{run['run_id']}  {label(run)}")
        return 0
    t0 = time.monotonic()
    counts = execute(p, ns.executor, **kw)
    stopped = f", {counts['interrupted']} interrupted" if counts.get("interrupted") else ""
    print(f"bench: sweep {p.name}: {counts['ok']} ok, {counts['failed']} failed{stopped}, "
          f"{len(p.done) + counts['done']} done earlier in {time.monotonic() - t0:.0f} s -> {index}", file=sys.stderr)
    if counts.get("interrupted"):
        return 130
    return 1 if counts["failed"] else 0


def cmd_race(ns: argparse.Namespace) -> int:
    from ..stats import MARGIN  # deferred with the race: pandas
    from .race import check_settings, evaluate_runs, log_path, print_line, race, resolve_dataset, summary_line
    kw = _executor_kw(ns)
    ns.margin = MARGIN if ns.margin is None else ns.margin
    check_settings(ns.min_instances, ns.alpha, ns.margin, ns.budget)
    exp = load_experiment(ns.file, dataset=ns.dataset, results_dir=ns.results_dir, overrides=_overrides(ns),
                          seeds=_parse_ints(ns.seeds, "--seeds"), folds=_parse_folds(ns.folds), all_folds=True)
    _check_executor(ns, exp.configs)
    dataset = resolve_dataset(exp)  # the race's key: a log raced on other images is refused before anything runs
    start_early(ns.executor)
    log = log_path(ns.results_dir, exp.name)
    # the estimate line's total: what the race may take at most (its full factorial, or the --budget share of it)
    most = int(len(exp.labels) * len(exp.instances) * min(ns.budget, 100) / 100 + 1e-9)
    res = race(exp, evaluate_runs(exp.name, ns.executor, ns.retry_failed, whole_runs=most, **kw),
               min_instances=ns.min_instances,
               alpha=ns.alpha, margin=ns.margin, budget_pct=ns.budget, log=log, echo=print_line,
               retry_failed=ns.retry_failed, dataset=dataset)
    print(summary_line(res, log))
    return 1 if res.decision == "failed" else 0


def _parse_ints(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{flag}: expected whole numbers separated by commas, e.g. 0,1,2, got {text!r}") from None
    if not values:
        raise ConfigError(f"{flag}: expected at least one number, got {text!r}")
    return values


def _parse_folds(text: str | None) -> int | list[int] | None:
    """`5` = every fold of a 5-fold split; `0,2` = those folds."""
    values = _parse_ints(text, "--folds")
    return values[0] if values and len(values) == 1 and "," not in text else values


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file, e.g. experiments/quick.yaml")
    p.add_argument("--dataset", default=None, help="replace the file's dataset (name, folder or file)")
    p.add_argument("--results-dir", default="results", help="shared by every run (default: results)")
    p.add_argument("--executor", choices=tuple(EXECUTORS), default="local",
                   help="local: this machine's worker pool (libraries imported once, a fresh forked process per "
                        "run); ray: long-lived Ray actors, one per slot (local Ray unless --address)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (e.g. ray://head:10001 or auto); nodes need no shared folder: the "
                        "driver writes every row under --results-dir")
    p.add_argument("--workers", type=int, default=None,
                   help="local: runs at once (default: one per core, each with one torch thread); ray: CPUs of the "
                        "local Ray instance (default: all)")
    p.add_argument("--cpus-per-task", type=int, default=None, metavar="N",
                   help="CPUs Ray reserves for each run, and torch's thread count in it (default: 1)")
    p.add_argument("--track", choices=CHOICES["track"], default=None,
                   help="also log every run to MLflow (as --set track=mlflow): MLFLOW_TRACKING_URI, else a local "
                        "store in --results-dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting for every run, after the file's (repeatable), e.g. --set epochs=1")


def add_cli(sub) -> None:
    p = sub.add_parser("sweep", help="run an experiment file: every (arch, seed, fold), resumable",
                       description=__doc__.splitlines()[0])
    _common(p)
    p.add_argument("--skip-failed", action="store_true", help="do not re-run runs that have only failed rows")
    p.add_argument("--dry-run", action="store_true",
                   help="list the runs left to do and exit; writes nothing (no results folder, split or scan report)")
    p.add_argument("--json", action="store_true",
                   help="with --dry-run: one JSON object per run (run_id, status planned | done | failed-before, "
                        "will_run, note, the full resolved config)")
    # what the report's fill command names: the seeds and folds a section lacks (a race's folds included)
    p.add_argument("--seeds", default=None, metavar="S,S,...", help="replace the file's seeds, e.g. 0,1,2")
    p.add_argument("--folds", default=None, metavar="K|F,F,...",
                   help="replace the file's folds: K = every fold of a K-fold split, or a list of folds")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("race", help="which backbone? race the file's archs over its (seed, fold) instances",
                       description="Race the experiment's architectures (F-Race): each round runs every candidate "
                                   "still racing on the next (seed, fold) instance; from --min-instances on, each "
                                   "is compared with the leader as the report compares (bench.stats): worse is "
                                   "eliminated, equivalent or undecidable by the last instance stops running. "
                                   "Stops when only the leader races, after the last instance, or at the compute "
                                   "budget; the decision is the report's verdict on the race's runs. Log: "
                                   "RESULTS_DIR/races/<experiment>.csv.")
    _common(p)
    p.add_argument("--seeds", default=None, metavar="S,S,...", help="replace the file's seeds, e.g. 0,1,2,3,4")
    p.add_argument("--folds", default=None, metavar="K|F,F,...",
                   help="replace the file's folds: K = every fold of a K-fold split, or a list of folds. Without "
                        "either, every fold of the split (5) when the file lists none")
    p.add_argument("--min-instances", type=int, default=3,
                   help="instances every candidate runs before the first comparison (default and least 3: "
                        "bench.stats.MIN_INSTANCES)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="race-wide error rate: spent evenly over the rounds that compare and the pairs, so an "
                        "elimination holds at alpha however many rounds it took (default 0.05)")
    p.add_argument("--margin", type=float, default=None, metavar="ACC",
                   help="accuracy difference under which two candidates are practically the same: an equivalent one "
                        "stops running (default 0.005 = 0.5 pp, bench.stats.MARGIN)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the runs that failed before (the race's or a sweep's); without it a candidate "
                        "whose run failed stays out, and a restarted race replays its log exactly")
    p.add_argument("--budget", type=float, default=100.0, metavar="PCT",
                   help="stop before a round would pass PCT %% of the full factorial's runs (default 100)")
    p.set_defaults(func=cmd_race)
