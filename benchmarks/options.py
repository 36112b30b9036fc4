"""Effect of channels_last, bf16 autocast and torch.compile on training / inference throughput through the harness
(`bench.train.speed.measure`: the real Learner, synthetic input), interleaved in one process: each round runs every
option once, in a rotated order, so background load hits all options alike. Prints medians, best-of and ranges per
option and their ratios to fp32/contiguous (best-of: the fastest round of each option, the figure least disturbed by
other load on a shared machine). torch.compile is measured in fewer rounds (it compiles anew each time: minutes on
2 cores). These figures decide `channels_last=auto` (bench/train/fastpath.py, docs/benchmarks.md).

    .venv/bin/python benchmarks/options.py [--archs resnet18 resnext50_32x4d tf_efficientnet_b3 --size 128 --bs 32]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

OPTIONS = {  # name -> measure() keywords
    "fp32": dict(channels_last="false"),
    "channels_last": dict(channels_last="true"),
    "bf16": dict(precision="bf16", channels_last="false"),
    "bf16+channels_last": dict(precision="bf16", channels_last="true"),
    "compile": dict(compile=True, channels_last="false"),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["resnet18", "resnext50_32x4d", "tf_efficientnet_b3"])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile-rounds", type=int, default=1)
    ap.add_argument("--options", nargs="+", default=["fp32", "channels_last", "bf16", "bf16+channels_last"],
                    choices=list(OPTIONS))
    a = ap.parse_args(argv)
    import io
    from contextlib import redirect_stdout
    import torch
    from bench.train.speed import measure
    print(f"# {a.size}px bs{a.bs}, {a.warmup} warm-up + {a.steps} timed steps, {a.rounds} rounds "
          f"({a.compile_rounds} for compile), {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}", flush=True)
    for arch in a.archs:
        res = {o: ([], []) for o in a.options}
        for r in range(a.rounds):
            order = a.options[r % len(a.options):] + a.options[:r % len(a.options)]
            for o in order:
                if o == "compile" and r >= a.compile_rounds:
                    continue
                with redirect_stdout(io.StringIO()):  # anything a library prints
                    row = measure(arch, img_size=a.size, batch_size=a.bs, steps=a.steps, warmup=a.warmup,
                                  device="cpu", write=False, macs=False, **OPTIONS[o])
                res[o][0].append(row["train_img_s"]), res[o][1].append(row["infer_img_s"])
                print(f"{arch} round {r + 1} {o}: train {row['train_img_s']:.1f} infer {row['infer_img_s']:.1f} "
                      f"img/s (warm-up {row['warmup_s']:.1f} s)", flush=True)
        base_t, base_i = (statistics.median(v) for v in res["fp32"]) if "fp32" in res else (None, None)
        best_t, best_i = (max(v) for v in res["fp32"]) if "fp32" in res else (None, None)
        print(f"\n| {arch} {a.size}px bs{a.bs} | train img/s median (min–max) | × fp32 median / best-of | "
              f"infer img/s median (min–max) | × fp32 median / best-of | n |\n|---|---|---|---|---|---|")
        for o, (tr, inf) in res.items():
            if not tr:
                continue
            mt, mi = statistics.median(tr), statistics.median(inf)
            rt = f"{mt / base_t:.2f} / {max(tr) / best_t:.2f}" if base_t else ""
            ri = f"{mi / base_i:.2f} / {max(inf) / best_i:.2f}" if base_i else ""
            print(f"| {o} | {mt:.1f} ({min(tr):.1f}–{max(tr):.1f}) | {rt} "
                  f"| {mi:.1f} ({min(inf):.1f}–{max(inf):.1f}) "
                  f"| {ri} | {len(tr)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
