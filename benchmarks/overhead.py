"""Harness overhead: the real fastai Learner (make_learner, its callbacks, the epoch log/console callback `bench run`
uses, fit_one_cycle) against a plain PyTorch loop with the same model weights, batches, optimizer maths, schedule,
memory format and thread count, alternating in one process (AB, BA, AB, ... so drift from other load hits both).
Ratio = plain_time / harness_time (1.0 = the harness costs nothing; goal >= 0.97 on CPU for resnet18 at 64 px).

Two estimates, because the machine may be shared: the median of the per-round ratios, and best-of = fastest plain
fit / fastest harness fit. Other load only ever adds time, so the fastest of many fits is the least disturbed
figure of each side; a sustained disturbance shows as a gap between the two estimates.

Same data for both: `--data real` (default) takes K batches from the harness's own DataLoaders on the embedded digits
(fastai TensorImage/TensorCategory subclasses, as `bench run` feeds them) and replays them; the harness gets them as
fastai yields them, the plain loop as plain tensors. Data loading itself is therefore not timed in either.

    .venv/bin/python benchmarks/overhead.py [--arch resnet18 --size 64 --bs 64 --batches 10 --rounds 9]
"""
from __future__ import annotations

import argparse
import copy
import io
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from torch import nn  # noqa: E402


class Replay:
    """Replays a fixed list of batches; a torch-DataLoader-like iterable fastai's Learner accepts."""

    def __init__(self, batches, dataset, vocab, device):
        self.batches, self.dataset, self.vocab, self.device = batches, dataset, vocab, device

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)

    def to(self, device):
        return self


def real_batches(cfg, n_train: int, n_valid: int):
    from bench.data.loaders import make_dls
    from bench.train.prepare import prepare
    p = prepare(cfg)
    dls = make_dls(cfg, p.dataset.root, p.items, device=torch.device("cpu"))
    train = []
    while len(train) < n_train:
        train += [tuple(b) for b, _ in zip(dls.train, range(n_train - len(train)))]
    valid = [tuple(b) for b, _ in zip(dls.valid, range(n_valid))]
    return dls, train, valid


def synthetic_batches(cfg, n_train, n_valid, n_classes=10):
    g = torch.Generator().manual_seed(0)
    mk = lambda: (torch.randn(cfg.batch_size, 3, cfg.img_size, cfg.img_size, generator=g),  # noqa: E731
                  torch.randint(0, n_classes, (cfg.batch_size,), generator=g))
    return [mk() for _ in range(n_train)], [mk() for _ in range(n_valid)]


def plain(b):
    return tuple(t.as_subclass(torch.Tensor) for t in b)


def run_harness(cfg, built, state, train, valid, dataset, vocab, lr) -> float:
    from fastai.data.core import DataLoaders
    from bench.train.epochlog import EpochLog
    from bench.train.learner import make_learner
    from bench.train.record import MOMS
    built.model.load_state_dict(state)
    dls = DataLoaders(Replay(train, dataset, vocab, "cpu"), Replay(valid, dataset, vocab, "cpu"))
    t0 = time.perf_counter()
    log = EpochLog(None, "overhead", "0", console="lines", stream=io.StringIO())  # as `bench run`, minus the file
    learn = make_learner(cfg, dls, built, cbs=[log])
    learn.unfreeze()
    learn.fit_one_cycle(1, lr, moms=MOMS)  # as phase 2 of `bench run`, validation and metrics included
    return time.perf_counter() - t0


def run_plain(cfg, model, state, train, valid, lr) -> float:
    """What a careful hand-written loop does: AdamW with fastai Adam's hyper-parameters (decoupled wd, no wd on
    BN/bias is fastai's default too), OneCycleLR with the same momentum cycle, eval with accuracy and top-k."""
    model.load_state_dict(state)
    train, valid = [plain(b) for b in train], [plain(b) for b in valid]
    t0 = time.perf_counter()
    from bench.train.fastpath import memory_format
    if memory_format(cfg.channels_last, torch.device("cpu"), cfg.img_size) == "channels_last":  # as the harness
        model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([dict(params=decay), dict(params=no_decay, weight_decay=0.0)], lr=lr,
                            betas=(cfg.adam_mom, cfg.sqr_mom), eps=cfg.eps, weight_decay=cfg.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=len(train), pct_start=0.25,
                                                base_momentum=0.85, max_momentum=0.95)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for x, y in train:
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    correct = topk = total = 0
    vloss = 0.0
    with torch.no_grad():
        for x, y in valid:
            out = model(x)
            vloss += loss_fn(out, y).item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            topk += (out.topk(min(cfg.top_k, out.shape[1] - 1), 1).indices == y[:, None]).any(1).sum().item()
            total += len(y)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--batches", type=int, default=10, help="training batches per fit")
    ap.add_argument("--valid-batches", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    ap.add_argument("--data", choices=("real", "synthetic"), default="real")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--channels-last", default="auto", choices=("auto", "true", "false"))
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    from bench.config import make_config
    from bench.train.learner import build_model, seed_all
    cfg = make_config("quick", arch=a.arch, img_size=a.size, batch_size=a.bs, pretrained="false",
                      precision=a.precision, channels_last=a.channels_last)
    seed_all(cfg.seed)
    if a.data == "real":
        dls, train, valid = real_batches(cfg, a.batches, a.valid_batches)
        dataset, vocab = dls.train_ds, dls.vocab
    else:
        from fastai.losses import CrossEntropyLossFlat
        train, valid = synthetic_batches(cfg, a.batches, a.valid_batches)
        dataset, vocab = type("DS", (), {"loss_func": CrossEntropyLossFlat()})(), list(range(10))
    built = build_model(cfg, len(vocab))
    state = copy.deepcopy(built.model.state_dict())
    twin = copy.deepcopy(built.model)
    lr = 1e-3
    from bench.train.fastpath import memory_format
    fmt = memory_format(cfg.channels_last, torch.device("cpu"), a.size)
    print(f"# {a.arch} {a.size}px bs{a.bs} {a.precision} {fmt}, "
          f"{a.batches}+{a.valid_batches} batches, {a.data} data, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}", flush=True)
    run_harness(cfg, built, state, train[:2], valid[:1], dataset, vocab, lr)  # warm-up: oneDNN plans, allocator
    run_plain(cfg, twin, state, train[:2], valid[:1], lr)
    ratios, th, tp = [], [], []
    for r in range(a.rounds):
        order = ("harness", "plain") if r % 2 == 0 else ("plain", "harness")
        t = {}
        for who in order:
            t[who] = (run_harness(cfg, built, state, train, valid, dataset, vocab, lr) if who == "harness"
                      else run_plain(cfg, twin, state, train, valid, lr))
        th.append(t["harness"]), tp.append(t["plain"]), ratios.append(t["plain"] / t["harness"])
        print(f"round {r + 1}: harness {t['harness']:.2f} s, plain {t['plain']:.2f} s, ratio {ratios[-1]:.3f}",
              flush=True)
    n_img = a.batches * a.bs
    print(f"harness train+valid {n_img / statistics.median(th):.1f} img/s (train imgs / fit seconds), "
          f"plain {n_img / statistics.median(tp):.1f} img/s (medians)")
    print(f"ratio plain/harness: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}"
          f", n={a.rounds}); best-of {min(tp) / min(th):.3f} (fastest plain {min(tp):.2f} s / fastest harness "
          f"{min(th):.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
