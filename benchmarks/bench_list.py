"""How long `bench list` takes, as a user types it: a fresh `python -m bench list` process each time, wall clock from
start to exit, with the catalog cache warm (one untimed call first fills it) and, separately, cold (the catalog
removed before each call: every model built once on the meta device, each library's cache asked).

Also shows which heavy libraries a warm call imported (`-X importtime`): none of torch, torchvision, timm, fastai
should be there, since a warm `bench list` only reads the catalog and looks for files.

    .venv/bin/python benchmarks/bench_list.py [--rounds 7] [--cold 1]

Prints the CPU model and the load average beside the figures (docs/benchmarks.md, "bench list").
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "fastai", "pytorchcv", "geffnet", "pandas")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def one_call(env: dict, importtime: bool = False) -> tuple[float, str]:
    cmd = [sys.executable] + (["-X", "importtime"] if importtime else []) + ["-m", "bench", "list"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench list failed: {proc.stderr.strip().splitlines()[-1:]}")
    return seconds, proc.stderr


def heavy_imported(importtime_log: str) -> list[str]:
    names = {line.split("|")[-1].strip() for line in importtime_log.splitlines() if line.startswith("import time:")}
    return [h for h in HEAVY if h in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="warm calls timed (default 7)")
    ap.add_argument("--cold", type=int, default=1, help="cold calls timed (default 1; each takes seconds)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-list-") as cache:
        env = {**os.environ, "BENCH_CACHE": cache, "BENCH_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
        cold = []
        for _ in range(args.cold):
            Path(cache, "catalog.json").unlink(missing_ok=True)
            cold.append(one_call(env)[0])
        if not args.cold:
            one_call(env)  # fills the catalog
        warm = [one_call(env)[0] for _ in range(args.rounds)]
        heavy = heavy_imported(one_call(env, importtime=True)[1])
    load = os.getloadavg()
    print(f"bench list on {cpu_model()} ({os.cpu_count()} cores), load {load[0]:.1f} / {load[1]:.1f} (1 / 5 min)")
    print(f"  warm catalog: median {statistics.median(warm):.2f} s, min {min(warm):.2f} s, max {max(warm):.2f} s "
          f"over {len(warm)} calls")
    if cold:
        print(f"  cold catalog: median {statistics.median(cold):.2f} s over {len(cold)} call(s)")
    print(f"  heavy libraries a warm call imports: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
