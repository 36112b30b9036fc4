"""The index row: its columns, the part every row shares (config, provenance), final metrics from the epoch log,
and the failed row written for a run that could not record itself."""
from __future__ import annotations

import json
import math
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..config import RunConfig
from ..identity import ids
from .libraries import VERSION_FIELDS, versions
from ..files import append_rows
from ..provenance import git_sha, host

MOMS = (0.95, 0.85, 0.95)  # fastai fit_one_cycle's momentum schedule; it overrides Adam's mom=0.9 while fitting

# RunConfig's fields a row records as they were asked (config_json holds every one); the run writes `dataset` (its
# name), `device` and `threads` (what it ran on) itself, and where results go or how a run is watched are not columns.
REALISED = ("dataset", "device", "threads")
NOT_RECORDED = ("test_set", "weights", "num_workers", "results_dir", "on_bad_image", "track")
SETTINGS = [f.name for f in fields(RunConfig) if f.name not in REALISED + NOT_RECORDED]

INDEX_FIELDS = [
    "run_id", "variant_id", "protocol_id", "attempt", "timestamp", "status", "error", "family", "source",
    "weights_used", "dataset", "dataset_fingerprint", "n_classes", "n_train", "n_valid", "split_hash", *SETTINGS,
    "moms",
    "memory_format", "normalize", "params_total", "params_trainable_phase1", "params_1k", "final_accuracy",
    "best_accuracy", "best_epoch", "final_top_k", "final_valid_loss", "test_accuracy", "test_n", "phase1_seconds",
    "phase2_seconds",
    "total_seconds", "train_img_per_s", "device", "threads", "context", *VERSION_FIELDS, "git_sha", "host",
    "epoch_log", "outcomes", "config_json", "identity_json",
]


def index_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "runs.csv"


def device_name(device: torch.device) -> str:
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def base_row(cfg: RunConfig, attempt: str) -> dict:
    row = {k: getattr(cfg, k) for k in SETTINGS}
    row.update(attempt=attempt, moms="-".join(f"{m:g}" for m in MOMS), threads=torch.get_num_threads(),
               git_sha=git_sha(), host=host(), config_json=json.dumps(cfg.to_dict(), sort_keys=True),
               dataset=cfg.dataset, **versions())
    return row


class NonFiniteLoss(RuntimeError):
    pass


def check_trained(epochs: list[dict], train_images: int) -> None:
    """A run is `ok` only if it trained: at least one training batch ran, and every epoch's train and valid loss
    is finite (a NaN in any epoch, even one that recovered, means the numbers are not the protocol's)."""
    if not epochs or train_images <= 0:
        raise NonFiniteLoss("no training batch ran (fewer training images than one batch?); nothing was trained")
    for r in epochs:
        for name in ("train_loss", "valid_loss"):
            v = r.get(name)
            if v is None or not math.isfinite(float(v)):
                raise NonFiniteLoss(f"{name.replace('_', ' ')} is {v} in epoch {r['epoch']} (phase {r['phase']}): "
                                    f"training diverged; lower the learning rate")


def final_metrics(rows: list[dict]) -> dict:
    """Final and best figures over both phases, from the epoch log rows."""
    if not rows:
        return {}
    best = max(rows, key=lambda r: r["accuracy"])
    last = rows[-1]
    return {"final_accuracy": last["accuracy"], "final_top_k": last["top_k_accuracy"],
            "final_valid_loss": last["valid_loss"], "best_accuracy": best["accuracy"], "best_epoch": best["epoch"]}


def now_attempt() -> str:
    """An attempt id: UTC time to the microsecond, so the attempts of one run sort in order."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def record_failure(cfg: RunConfig, run_id: str, fingerprint: str, split_hash: str, dataset: str, error: str,
                   sink=None, ident: dict | None = None) -> dict:
    """Append a failed row for a run that ended before the protocol could record it itself (to the index, or
    through `sink`: see bench.sinks); `ident`, the identity it was planned with, keeps it beside its run."""
    row = base_row(cfg, now_attempt())
    if ident:
        row.update(ids(ident))
    row.update(run_id=run_id, dataset_fingerprint=fingerprint, split_hash=split_hash, dataset=dataset,
               status="failed", error=error, timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if sink is not None:
        sink.write(index_path(""), [row], INDEX_FIELDS)
    else:
        append_rows(index_path(cfg.results_dir), [row], INDEX_FIELDS)
    return row
