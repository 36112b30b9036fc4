"""Two-node efficiency of `bench sweep --executor ray`: the same tiny sweep on a one-node and on a two-node Ray
cluster (ray.cluster_utils.Cluster on this machine, one CPU per node, `--cpus-per-task 1`), runs/hour each, and
efficiency = runs/hour(2 nodes) / (2 x runs/hour(1 node)). The nodes run in a folder without the results folder,
as on a cluster without shared storage. Cluster start-up is not timed; each sweep's wall time is.

    python benchmarks/ray_nodes.py [--runs 6] [--rounds 1]

Both "nodes" share this machine's cores, so the figure is an upper bound of the scheduling overhead only where
the machine has a free core per node; say how loaded it was (the load average is printed).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def sweep_seconds(nodes: int, exp: Path, work: Path) -> float:
    import ray
    from ray.cluster_utils import Cluster
    from bench.cli import main
    node_dir, driver = work / f"node{nodes}", work / f"driver{nodes}"
    node_dir.mkdir()
    driver.mkdir()
    os.chdir(node_dir)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(nodes - 1):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    os.chdir(driver)
    try:
        t0 = time.monotonic()
        code = main(["sweep", str(exp), "--executor", "ray", "--address", c.address, "--cpus-per-task", "1",
                     "--results-dir", "results"])
        seconds = time.monotonic() - t0
    finally:
        ray.shutdown()
        c.shutdown()
    assert code == 0 and not any(node_dir.iterdir()), "the sweep failed or a node wrote into its folder"
    return seconds


def main() -> None:
    import yaml
    from conftest import make_image_folder
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ray-nodes-"))
    os.environ.setdefault("BENCH_OFFLINE", "1")
    os.environ.setdefault("BENCH_CACHE", str(work / "cache"))
    exp = work / "tiny.yaml"
    exp.write_text(yaml.safe_dump({
        "dataset": str(make_image_folder(work / "data")), "profile": "quick", "archs": ["resnet18"],
        "protocol": {"img_size": 32, "item_size": 32, "batch_size": 8, "head_epochs": 1, "ft_epochs": 1,
                     "pretrained": "false", "n_folds": 3}, "seeds": list(range(args.runs))}))
    results = {1: [], 2: []}
    for r in range(args.rounds):
        for nodes in (1, 2):
            rw = work / f"round{r}"
            rw.mkdir(exist_ok=True)
            results[nodes].append(sweep_seconds(nodes, exp, rw))
            print(f"round {r}: {nodes} node(s): {args.runs} runs in {results[nodes][-1]:.1f} s", flush=True)
    rate = {n: 3600 * args.runs / min(s) for n, s in results.items()}
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"runs/hour: 1 node {rate[1]:.0f}, 2 nodes {rate[2]:.0f}; two-node efficiency "
          f"{rate[2] / (2 * rate[1]):.2f} (speed-up {rate[2] / rate[1]:.2f}x; best of {args.rounds} round(s))")


if __name__ == "__main__":
    main()
