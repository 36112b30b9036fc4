"""Per-run overhead of a sweep run, old vs new, paired in one run, and the quick sweep's wall time.

old: a fresh `python -m bench.sweep.worker JOB` process per run (what sweeps did before the pool); new: a child
forked from the pool's server (`bench.sweep.pool.Pool`), which imported the libraries once. Each round runs the
same job both ways, in alternating order (AB, BA, ...), so drift from other load hits both. A run is stopped right
after its first training batch: the training itself is the same either way. Stages come from timestamps the run
writes through a sitecustomize on its path (no timing hooks in the product code):

  start-up     submit -> the worker's run_job entered (python start + bench imports, or a fork)
  claim        the run's claim lock and the "done already?" check
  imports      the modules the run needs (bench.train.prepare/protocol, fastai)
  resolve      Resolver.prepare: dataset, split, identity
  first batch  data loaders, model, learner, first training batch

`--sweep` then runs `bench sweep experiments/quick.yaml` (or `--experiment FILE`) on the pool into a scratch results
folder and prints its wall time, each run's CPU seconds, and the wall time the pool's schedule would take on idle
cores (the runs' CPU seconds, scheduled in file order on the free slots: a 1-thread run's CPU time is its wall time
on an idle core).

    .venv/bin/python benchmarks/pool.py [--archs resnet18 tinynet_e] [--rounds 4] [--sweep [--experiment FILE]]
"""
from __future__ import annotations

import argparse
import csv
import heapq
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = (("start-up", "submit", "start"), ("claim", "start", "checked"), ("imports", "checked", "imported"),
          ("resolve", "imported", "resolved"), ("first batch", "resolved", "first_batch"))

SITECUSTOMIZE = '''
import json, os, time
if os.environ.get("POOLBENCH_EVENTS"):
    import bench.sweep.worker as w

    def mark(event):
        with open(os.environ["POOLBENCH_EVENTS"], "a") as f:
            f.write(json.dumps({"key": os.environ.get("POOLBENCH_KEY"), "event": event, "t": time.time()}) + "\\n")

    _run_job, _execute = w.run_job, w.execute

    def run_job(job):
        mark("start")
        return _run_job(job)

    def execute(job, sink=None):
        mark("checked")
        import bench.train.prepare as prepare, bench.train.protocol  # noqa: F401  what the run imports
        from fastai.learner import Learner
        mark("imported")
        _prepare, _one = prepare.Resolver.prepare, Learner.one_batch

        def resolve(self, cfg):
            out = _prepare(self, cfg)
            mark("resolved")
            return out

        def one_batch(self, *a, **k):
            out = _one(self, *a, **k)
            if self.training:
                mark("first_batch")
                os._exit(0)
            return out
        prepare.Resolver.prepare, Learner.one_batch = resolve, one_batch
        return _execute(job, sink)
    w.run_job, w.execute = run_job, execute
'''


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def jobs_for(archs: list[str], results: Path) -> dict[str, dict]:
    from bench.sweep.experiment import load_experiment
    from bench.sweep.plan import plan, with_threads
    exp = load_experiment(ROOT / "experiments" / "quick.yaml", results_dir=str(results))
    configs = [with_threads(c) for c in exp.configs if c.arch in archs and c.seed == exp.configs[0].seed]
    return {c.arch: j for c, j in zip(configs, plan(configs).jobs)}


def overhead(archs: list[str], rounds: int, scratch: Path) -> dict:
    from bench.sweep.pool import Pool
    inject, events = scratch / "inject", scratch / "events.jsonl"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {"PYTHONPATH": os.pathsep.join([str(inject), str(ROOT)]), "POOLBENCH_EVENTS": str(events),
           "BENCH_CONSOLE": "off"}
    saved, old_env = dict(os.environ), {**os.environ, **env}
    os.environ.update(env)  # the pool's server inherits it; restored below, or a --sweep after would print nothing
    jobs = {path: jobs_for(archs, scratch / path) for path in ("old", "new")}
    pool = Pool()
    t0 = time.time()
    pool.ensure()
    print(f"pool server start: {time.time() - t0:.1f} s (once per sweep)", flush=True)
    submits = {}
    for r in range(rounds):
        for arch in archs:
            for path in (("old", "new") if r % 2 == 0 else ("new", "old")):
                key = f"{path}:{arch}:{r}"
                job = {**jobs[path][arch], "env": {**jobs[path][arch]["env"], "POOLBENCH_KEY": key}}
                submits[key] = time.time()
                if path == "old":
                    # as `python -m bench.sweep.worker JOB`, but importing the module by its name (patchable)
                    subprocess.run([sys.executable, "-c", "import sys, bench.sweep.worker as w; "
                                    "sys.exit(w.main(sys.argv[1:]))", json.dumps({k: v for k, v in job.items()
                                                                                   if k != "env"})],
                                   env={**old_env, **job["env"]}, check=True)
                else:
                    pool.submit(key, job)
                    assert pool.wait(key) == 0, key
                print(f"  {key}: {time.time() - submits[key]:.1f} s (load {load()})", flush=True)
    pool.close()
    os.environ.clear()
    os.environ.update(saved)
    marks: dict[str, dict[str, float]] = {k: {"submit": t} for k, t in submits.items()}
    for line in events.read_text().splitlines():
        e = json.loads(line)
        marks[e["key"]][e["event"]] = e["t"]
    return marks


def summarize(marks: dict, archs: list[str]) -> None:
    print("\nper-run overhead, s: median (min-max) over rounds; old = fresh process, new = pool child")
    print(f"{'arch':<20}{'stage':<13}{'old':>20}{'new':>20}")
    for arch in archs:
        for name, a, b in STAGES + (("total", "submit", "first_batch"),):
            cells = []
            for path in ("old", "new"):
                xs = [m[b] - m[a] for k, m in marks.items() if k.startswith(f"{path}:{arch}:")]
                cells.append(f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})")
            print(f"{arch:<20}{name:<13}{cells[0]:>20}{cells[1]:>20}")
        diffs = [marks[k]["first_batch"] - marks[k]["submit"]
                 - (marks[k.replace("old:", "new:")]["first_batch"] - marks[k.replace("old:", "new:")]["submit"])
                 for k in marks if k.startswith(f"old:{arch}:")]
        sd = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
        print(f"{arch:<20}{'saved/run':<13}{statistics.mean(diffs):>20.2f}{sd} (paired, n={len(diffs)})")


CPU_SECONDS = r", CPU (\d+) s,"  # in the sweep's line for each finished run (bench.sweep.executors.execute)


def idle_wall(cpu: list[float], slots: int) -> float:
    """The pool's schedule on idle cores: each run, in order, starts on the first free slot."""
    free = [0.0] * slots
    for s in cpu:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def sweep(scratch: Path, experiment: Path, args: list[str]) -> None:
    from bench.sweep.pool import default_slots
    results = scratch / "sweep"
    cmd = [sys.executable, "-m", "bench", "sweep", str(experiment), "--results-dir", str(results), *args]
    before, t0 = load(), time.monotonic()
    out = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    wall = time.monotonic() - t0
    print(out.stderr[-3000:])
    cpu = [float(m) for m in re.findall(CPU_SECONDS, out.stderr)]
    with open(results / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    fit = sum(float(r["total_seconds"] or 0) for r in rows)
    slots = default_slots()
    print(f"{experiment.stem} sweep: exit code {out.returncode}, wall {wall:.0f} s (load before {before}, after "
          f"{load()}); {len(rows)} rows; sum of fit seconds {fit:.0f}; sum of run CPU seconds {sum(cpu):.0f} "
          f"({len(cpu)} runs); on {slots} idle slots the pool's schedule of these CPU seconds takes "
          f"{idle_wall(cpu, slots):.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["resnet18", "tinynet_e"])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--sweep", action="store_true", help="also run the quick sweep on the pool (minutes)")
    ap.add_argument("--experiment", type=Path, default=ROOT / "experiments" / "quick.yaml",
                    help="the experiment file --sweep runs")
    ap.add_argument("--no-overhead", action="store_true", help="skip the paired overhead rounds")
    ap.add_argument("--sweep-args", nargs=argparse.REMAINDER, default=[], help="extra `bench sweep` arguments")
    ns = ap.parse_args()
    if ns.rounds < 1:
        ap.error("--rounds: at least 1")
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    print(f"{os.cpu_count()} CPUs, avx512f {'avx512f' in flags}, avx512_bf16 {'avx512_bf16' in flags}; "
          f"load {load()}")
    with tempfile.TemporaryDirectory(prefix="poolbench-") as d:
        if not ns.no_overhead:
            summarize(overhead(ns.archs, ns.rounds, Path(d)), ns.archs)
        if ns.sweep:
            sweep(Path(d), ns.experiment, ns.sweep_args)


if __name__ == "__main__":
    main()
