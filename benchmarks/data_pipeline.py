"""Data pipeline speed: the loader alone with and without the pre-resized cache, and the share of a training step
spent waiting for data, for resnet18 under the quick profile's image size, item size and batch on the embedded digits
and on a generated folder of full-size 500x375 JPEGs.

Conditions alternate inside each round (cache on/off, then off/on) so load from other processes hits both; the
figures printed are medians over rounds with min-max. Data wait = time from the end of one training step to the
start of the next (fetch + item transforms + collate + batch transforms), over the wall time of those steps.

    .venv/bin/python benchmarks/data_pipeline.py [--jpegs 2000 --rounds 3 --batches 8 --steps 6 --device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402


def make_jpeg_folder(root: Path, n: int, classes: int = 10) -> Path:
    """n photo-like 500x375 JPEGs (smooth colour fields + texture, ~30-60 kB each like real photos), made once."""
    from PIL import Image
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
    for i in range(n):
        c = i % classes
        d = root / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        f = rng.uniform(0.005, 0.03, 3)
        img = np.stack([127 + 100 * np.sin(xx * f[0] + yy * f[k] + c + k) for k in range(3)], -1)
        img += rng.normal(0, 12, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"img_{i:05d}.jpg", quality=90)
    done.touch()
    return root


def loader_img_s(dls, batches: int) -> float:
    it = iter(dls.train)
    next(it)  # iterator start-up and the first batch are not the steady state
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * dls.train.bs / (time.perf_counter() - t)


def step_wait(cfg, dls, steps: int, frozen: bool) -> tuple[float, float]:
    """(fraction of step wall time waiting for data, seconds per step) over `steps` training batches."""
    from fastai.callback.core import Callback, CancelFitException
    from bench.train.learner import build_model, make_learner

    class Timer(Callback):
        order = -100  # first in, so the wait excludes other callbacks' work

        def before_train(self):
            self.t_end, self.wait, self.n, self.t0 = time.perf_counter(), 0.0, 0, None

        def before_batch(self):
            if self.n:  # the first batch pays the iterator start-up: warm-up, not measured
                self.wait += time.perf_counter() - self.t_end

        def after_batch(self):
            self.t_end = time.perf_counter()
            self.n += 1
            if self.n == 1:
                self.t0 = self.t_end
            if self.n > steps:
                raise CancelFitException

    built = build_model(cfg, n_classes=len(dls.vocab))
    timer = Timer()
    learn = make_learner(cfg, dls, built, cbs=[timer])
    learn.freeze() if frozen else learn.unfreeze()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
    total = timer.t_end - timer.t0  # steps 2..steps+1, data waits included
    return timer.wait / max(total, 1e-9), total / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jpegs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=8, help="batches timed per loader measurement")
    ap.add_argument("--steps", type=int, default=6, help="training steps timed per data-wait measurement")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", choices=["digits", "jpegs"], default=None)
    args = ap.parse_args()

    import torch
    from bench.config import cache_dir, make_config
    from bench.data.dataset import load_dataset
    from bench.data.loaders import make_dls
    from bench.data.presize import presized_files
    from bench.data.split import load_or_make_split, subsample
    from bench.train.learner import seed_all
    from bench.train.realise import resolve_device

    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}", flush=True)
    sources = {"digits": "digits",
               f"{args.jpegs} JPEGs 500x375": str(make_jpeg_folder(cache_dir() / f"bench-jpegs-{args.jpegs}",
                                                                   args.jpegs))}
    if args.only:
        sources = {k: v for k, v in sources.items() if (args.only == "digits") == (v == "digits")}
    for label, spec in sources.items():
        cfg = make_config("quick", dataset=spec, arch="resnet18", pretrained="false", results_dir="/tmp/bench-dp",
                          device=args.device)
        ds = load_dataset(spec)
        items = subsample(load_or_make_split(ds, cfg, results_dir=cache_dir() / "bench-dp")[0], 1.0, 0)
        t = time.perf_counter()
        presized_files(ds.root, items["path"], cfg.item_size)  # builds the cache unless an earlier run did
        build_s = time.perf_counter() - t
        res = {True: {"load": [], "wait": [], "step": [], "wait_u": [], "step_u": []}, False: None}
        res[False] = {k: [] for k in res[True]}
        for r in range(args.rounds):
            for cached in ((True, False) if r % 2 == 0 else (False, True)):
                seed_all(cfg.seed)
                dls = make_dls(cfg, ds.root, items, device=device, presize=cached)
                res[cached]["load"].append(loader_img_s(dls, args.batches))
                for frozen, key in ((True, ""), (False, "_u")):
                    w, s = step_wait(cfg, dls, args.steps, frozen)
                    res[cached]["wait" + key].append(w)
                    res[cached]["step" + key].append(s)
        print(f"\n{label}: {len(items)} images, resnet18, img_size {cfg.img_size}, item_size {cfg.item_size}, "
              f"bs {cfg.batch_size}; cache lookup/build {build_s:.1f} s; medians of {args.rounds} rounds [min-max]")
        for cached in (False, True):
            d = res[cached]
            name = "cache   " if cached else "no cache"
            print(f"  {name}  loader {_m(d['load'], '{:.0f}')} img/s | data wait {_m(d['wait'], '{:.1%}')} of "
                  f"{_m(d['step'], '{:.2f}')} s/step (frozen body) | {_m(d['wait_u'], '{:.1%}')} of "
                  f"{_m(d['step_u'], '{:.2f}')} s/step (unfrozen)", flush=True)


def _m(xs, fmt: str) -> str:
    return f"{fmt.format(statistics.median(xs))} [{fmt.format(min(xs))}-{fmt.format(max(xs))}]"


if __name__ == "__main__":
    main()
