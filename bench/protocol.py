"""The two-phase protocol: phase 1 frozen body (BatchNorm still training), phase 2 unfrozen with discriminative
learning rates. `run(cfg)` trains, logs every epoch and appends one provenance row to the results index."""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from .config import RunConfig
from .logs import append_rows, epoch_callback, git_sha, host, versions

MOMS = (0.95, 0.85, 0.95)  # fastai fit_one_cycle's momentum schedule; it overrides Adam's mom=0.9 while fitting

INDEX_FIELDS = [
    "run_id", "attempt", "timestamp", "status", "error", "experiment", "arch", "family", "source", "head",
    "layer_groups", "pretrained", "weights_used", "dataset", "dataset_fingerprint", "n_classes", "n_train",
    "n_valid", "img_size", "item_size", "batch_size", "pct_images", "seed", "split_seed", "n_folds", "fold",
    "split_hash", "head_epochs", "head_lr", "ft_epochs", "ft_lr_min", "ft_lr_max", "moms", "adam_mom", "sqr_mom",
    "eps", "wd", "top_k", "precision", "channels_last", "params_total", "params_trainable_phase1", "params_1k",
    "final_accuracy", "best_accuracy", "best_epoch", "final_top_k", "final_valid_loss", "phase1_seconds",
    "phase2_seconds", "total_seconds", "train_img_per_s", "device", "threads", "python", "torch", "torchvision",
    "fastai", "timm", "pytorchcv", "geffnet", "git_sha", "host", "epoch_log", "config_json",
]


def index_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "runs.csv"


def run_id_for(cfg: RunConfig, fingerprint: str, split_hash: str) -> str:
    return hashlib.sha256(f"{cfg.identity()}|{fingerprint}|{split_hash}".encode()).hexdigest()[:12]


@dataclass
class Prepared:
    """Everything resolved before training: the data, the split and the run's identity."""
    cfg: RunConfig
    dataset: object
    items: object
    split_hash: str
    run_id: str


def prepare(cfg: RunConfig) -> Prepared:
    """Resolve arch, dataset and split (all user errors surface here, before any training)."""
    from .archs import get_arch
    from .data import load_or_make_split, subsample
    from .datasets import load_dataset
    get_arch(cfg.arch)
    ds = load_dataset(cfg.dataset, results_dir=cfg.results_dir, on_bad_image=cfg.on_bad_image)
    split, split_hash = load_or_make_split(ds, cfg)
    items = subsample(split, cfg.pct_images, cfg.fold)
    return Prepared(cfg, ds, items, split_hash, run_id_for(cfg, ds.fingerprint, split_hash))


def _device_name(device: torch.device) -> str:
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def _base_row(cfg: RunConfig, attempt: str) -> dict:
    keep = ("experiment", "arch", "head", "layer_groups", "pretrained", "img_size", "item_size", "batch_size",
            "pct_images", "seed", "split_seed", "n_folds", "fold", "head_epochs", "head_lr", "ft_epochs",
            "ft_lr_min", "ft_lr_max", "adam_mom", "sqr_mom", "eps", "wd", "top_k", "precision", "channels_last")
    row = {k: getattr(cfg, k) for k in keep}
    row.update(attempt=attempt, moms="-".join(f"{m:g}" for m in MOMS), threads=torch.get_num_threads(),
               git_sha=git_sha(), host=host(), config_json=json.dumps(cfg.to_dict(), sort_keys=True),
               dataset=cfg.dataset, **versions())
    return row


def run(cfg: RunConfig, prepared: Prepared | None = None) -> dict:
    """Train `cfg` under the two-phase protocol; returns the index row (also appended to results/runs.csv).
    A failure after preparation is recorded as a `failed` row and re-raised."""
    from .learner import build_model, make_learner, resolve_device, seed_all
    from .data import make_dls
    attempt = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    p = prepared or prepare(cfg)
    results = Path(cfg.results_dir)
    epoch_log = Path(p.dataset.name) / "epochs" / f"{p.run_id}.csv"
    row = _base_row(cfg, attempt)
    row.update(run_id=p.run_id, dataset=p.dataset.name, dataset_fingerprint=p.dataset.fingerprint,
               split_hash=p.split_hash, epoch_log=epoch_log.as_posix())
    try:
        seed_all(cfg.seed)
        device = resolve_device(cfg.device)
        dls = make_dls(cfg, p.dataset.root, p.items, device=device)
        built = build_model(cfg, n_classes=len(dls.vocab))
        logger = epoch_callback(results / epoch_log, p.run_id, attempt)
        learn = make_learner(cfg, dls, built, cbs=[logger])
        from .archs import count_params_1k
        from .learner import effective_top_k
        row.update(top_k=effective_top_k(cfg.top_k, len(dls.vocab)), family=built.spec.family, source=built.spec.source, weights_used=built.weights_used,
                   n_classes=len(dls.vocab), n_train=len(dls.train_ds), n_valid=len(dls.valid_ds),
                   device=_device_name(device), params_1k=count_params_1k(built.spec),
                   params_total=sum(q.numel() for q in learn.model.parameters()))

        learn.freeze()
        row["params_trainable_phase1"] = sum(q.numel() for q in learn.model.parameters() if q.requires_grad)
        t0, t1, t2 = fit_two_phase(learn, cfg, logger)
        row.update(phase1_seconds=round(t1 - t0, 3), phase2_seconds=round(t2 - t1, 3),
                   total_seconds=round(t2 - t0, 3), status="ok", error="")
        epochs = cfg.head_epochs + cfg.ft_epochs
        if epochs:
            row["train_img_per_s"] = round(len(dls.train_ds) * epochs / max(t2 - t0, 1e-9), 2)
            row.update(_final_metrics(logger.rows))
        check_finite(row)
    except BaseException as e:
        row.update(status="failed", error=one_line(e))
        row["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        append_rows(index_path(results), [row], INDEX_FIELDS)
        raise
    row["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    append_rows(index_path(results), [row], INDEX_FIELDS)
    return row


def fit_two_phase(learn, cfg: RunConfig, logger=None, after_phase=None) -> tuple[float, float, float]:
    """Phase 1: body frozen except BatchNorm, fit_one_cycle(head_epochs, head_lr). Phase 2: unfrozen,
    fit_one_cycle(ft_epochs, lr_max=slice(ft_lr_min, ft_lr_max)). Returns the three phase-boundary clock times."""
    learn.freeze()
    t0 = time.perf_counter()
    if cfg.head_epochs:
        learn.fit_one_cycle(cfg.head_epochs, cfg.head_lr, moms=MOMS)
    t1 = time.perf_counter()
    if after_phase:
        after_phase(1, learn)
    learn.unfreeze()
    if logger is not None:
        logger.run_phase = 2
    if cfg.ft_epochs:
        learn.fit_one_cycle(cfg.ft_epochs, lr_max=slice(cfg.ft_lr_min, cfg.ft_lr_max), moms=MOMS)
    t2 = time.perf_counter()
    if after_phase:
        after_phase(2, learn)
    return t0, t1, t2


def one_line(e: BaseException) -> str:
    msg = str(e).strip()
    return f"{type(e).__name__}: {msg.splitlines()[0][:300]}" if msg else type(e).__name__


class NonFiniteLoss(RuntimeError):
    pass


def check_finite(row: dict) -> None:
    loss = row.get("final_valid_loss")
    if loss is not None and not math.isfinite(float(loss)):
        raise NonFiniteLoss(f"valid loss is {loss} after training (diverged; lower the learning rate)")


def _final_metrics(rows: list[dict]) -> dict:
    """Final and best figures over both phases, from the epoch log rows."""
    if not rows:
        return {}
    best = max(rows, key=lambda r: r["accuracy"])
    last = rows[-1]
    return {"final_accuracy": last["accuracy"], "final_top_k": last["top_k_accuracy"],
            "final_valid_loss": last["valid_loss"], "best_accuracy": best["accuracy"], "best_epoch": best["epoch"]}
