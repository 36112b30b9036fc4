"""What per-image outcomes and test-set scoring add to a run: the seconds of the one inference pass (fastai
get_preds, as bench.train.outcomes.score runs it after the last epoch) over a run's validation images and over a
held-out test set. Inference time does not depend on the weights, so the model is scored as built (no training).

    .venv/bin/python benchmarks/outcomes_cost.py [--dataset fashion-mnist] [--test-set test] [--pct 0.02]
    .venv/bin/python benchmarks/outcomes_cost.py --dataset digits --test-set ''

By default: Fashion-MNIST's train/ + test/ folders (Debian package dataset-fashion-mnist) with `--test-set test`,
the quick profile (32 px), pct_images of train/ (the validation set a fold of it) and all 10,000 test images. Prints
one line per pass; the figures go to docs/benchmarks.md with the machine's CPU and load.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("BENCH_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--test-set", default="test")
    ap.add_argument("--pct", type=float, default=0.02)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch
    from bench.config import make_config
    from bench.data.loaders import make_dls, test_loader
    from bench.train.archs import arch_for
    from bench.train.learner import build_model, make_learner, seed_all
    from bench.train.outcomes import TEST_BATCH, score
    from bench.train.prepare import prepare
    cfg = make_config("quick", arch=args.arch, dataset=args.dataset, test_set=args.test_set or None,
                      pct_images=args.pct, results_dir=tempfile.mkdtemp(prefix="outcomes-cost-"), pretrained="false")
    p = prepare(cfg)
    torch.set_num_threads(p.threads or torch.get_num_threads())
    seed_all(cfg.seed)
    stats = arch_for(cfg.arch, cfg.activation, cfg.self_attention).input_stats()
    dls = make_dls(cfg, p.dataset.root, p.items, device=torch.device("cpu"), stats=stats)
    learn = make_learner(cfg, dls, build_model(cfg, n_classes=len(dls.vocab)))
    from fastai.callback.progress import ProgressCallback  # a run has none (its epoch log replaces it)
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, ProgressCallback)])
    valid = p.items[p.items["is_valid"]]
    passes = [("valid", lambda: (learn.dls.valid, valid))]
    if len(p.dataset.test):
        test = p.dataset.test
        passes.append(("test", lambda: (test_loader(learn.dls, cfg, p.dataset.root, test,
                                                    bs=max(TEST_BATCH, cfg.batch_size)), test)))
    print(f"{args.arch} at {cfg.img_size} px, {torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.1f}")
    for split, make in passes:
        for i in range(args.repeats):  # the first pass also fills the pre-resized cache of new images
            t0 = time.perf_counter()
            dl, items = make()
            rows = score(learn, dl, items["path"], items["label"], split)
            s = time.perf_counter() - t0
            print(f"{split} pass {i + 1}: {len(rows)} images in {s:.2f} s ({len(rows) / s:.0f} img/s)")


if __name__ == "__main__":
    main()
