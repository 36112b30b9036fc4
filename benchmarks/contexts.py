"""How far the execution context moves a run's numbers, beside the seeds' spread (issue 23; docs/benchmarks.md,
"Context").

The same experiment instances (quick profile, embedded digits, one arch, several seeds) are trained in several
execution contexts of this machine - thread count and memory format, the parts of a context one machine can vary -
each into its own results folder (they share their run ids: one folder would call the second context done). Then:
- replay: the first context once more gives the same numbers bit for bit;
- across contexts: the per-instance accuracy difference to the first context, against the sd over seeds.

    python benchmarks/contexts.py [--arch resnet18] [--seeds 101 102 103] [--out /tmp/contexts]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CONTEXTS = {"1 thread, contiguous": dict(threads=1, channels_last="false"),
            "2 threads, contiguous": dict(threads=2, channels_last="false"),
            "1 thread, channels_last": dict(threads=1, channels_last="true")}


def finished(arch: str, seed: int, results: Path) -> dict | None:
    """A run this benchmark already recorded in that folder (so a stopped measurement resumes)."""
    import csv
    index = results / "runs.csv"
    if not index.exists():
        return None
    with index.open() as f:
        for r in csv.DictReader(f):
            if r.get("status") == "ok" and r.get("arch") == arch and r.get("seed") == str(seed):
                return {"run_id": r["run_id"], "final_accuracy": float(r["final_accuracy"]),
                        "final_valid_loss": float(r["final_valid_loss"]), "context": r.get("context")}
    return None


def train(arch: str, seed: int, results: Path, ctx: dict) -> dict:
    """One run in a fresh process (a context's thread count is the process's), its row back as JSON."""
    done = finished(arch, seed, results)
    if done:
        return done
    code = ("import json, sys; from bench import make_config; from bench.train.protocol import run; "
            f"r = run(make_config('quick', arch={arch!r}, seed={seed}, results_dir={str(results)!r}, "
            f"threads={ctx['threads']}, channels_last={ctx['channels_last']!r})); "
            "print(json.dumps({k: r.get(k) for k in ('run_id', 'final_accuracy', 'final_valid_loss', 'context')}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-contexts"))
    a = p.parse_args()
    rows = {}
    for name, ctx in CONTEXTS.items():
        for s in a.seeds:
            rows[name, s] = train(a.arch, s, a.out / name.replace(" ", "_").replace(",", ""), ctx)
            print(name, s, rows[name, s], flush=True)
    first = next(iter(CONTEXTS))
    replay = train(a.arch, a.seeds[0], a.out / "replay", CONTEXTS[first])
    same = replay["final_accuracy"] == rows[first, a.seeds[0]]["final_accuracy"] and \
        replay["final_valid_loss"] == rows[first, a.seeds[0]]["final_valid_loss"]
    ids = {r["run_id"] for (n, s), r in rows.items() if s == a.seeds[0]}
    print(f"replay in the same context bit for bit: {same}; one run id across contexts: {len(ids) == 1}")
    sd = statistics.stdev(rows[first, s]["final_accuracy"] for s in a.seeds)
    print(f"sd over {len(a.seeds)} seeds ({first}): {100 * sd:.2f} pp")
    for name in list(CONTEXTS)[1:]:
        d = [100 * (rows[name, s]["final_accuracy"] - rows[first, s]["final_accuracy"]) for s in a.seeds]
        print(f"{name} vs {first}: per-seed accuracy change " + ", ".join(f"{x:+.2f}" for x in d)
              + f" pp (mean |change| {statistics.mean(abs(x) for x in d):.2f} pp)")


if __name__ == "__main__":
    main()
