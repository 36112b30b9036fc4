"""The two-phase protocol: phase 1 frozen body (BatchNorm still training), phase 2 unfrozen with discriminative
learning rates. `run(cfg)` trains, logs every epoch and appends one provenance row to the results index (or hands
the rows to a sink: a Ray task returns them to the driver); `cfg.track` mirrors the run to a tracker (MLflow)."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..config import RunConfig
from ..data.loaders import make_dls, stats_label
from ..console import one_line
from ..identity import ids
from ..sinks import FileSink
from .archs import arch_for, count_params_1k
from .epochlog import EpochLog
from .estimate import estimate_callback
from .fastpath import keep_freed_memory
from .learner import build_model, effective_top_k, make_learner, resolve_device, seed_all
from .outcomes import record_outcomes
from .prepare import Prepared, prepare
from .realise import context, loader_workers, numeric_precision
from .record import (INDEX_FIELDS, MOMS, base_row, check_trained, device_name, final_metrics, index_path,
                     now_attempt)
from .track import tracker_for
from .weights import weights_identity


def run(cfg: RunConfig, prepared: Prepared | None = None, sink=None) -> dict:
    """Train `cfg` under the two-phase protocol; returns the index row (also appended to results/runs.csv, or
    written through `sink`, see bench.sinks). A failure after preparation is recorded as a `failed`
    row and re-raised."""
    attempt = now_attempt()
    p = prepared or prepare(cfg)
    sink = sink or FileSink(cfg.results_dir)
    epoch_log = Path(p.dataset.name) / "epochs" / f"{p.run_id}.csv"
    row = base_row(cfg, attempt)
    row.update(ids(p.ident))
    row.update(run_id=p.run_id, dataset=p.dataset.name, dataset_fingerprint=p.dataset.fingerprint,
               split_hash=p.split_hash, epoch_log=epoch_log.as_posix())
    tracker = tracker_for(cfg, row)  # a fastai callback mirroring the run to MLflow (None when cfg.track is none)
    try:
        device = resolve_device(cfg.device)
        keep_freed_memory(device)  # same numbers, less system time (bench.train.fastpath)
        if device.type == "cpu":
            torch.set_num_threads(p.threads)  # context: another count sums in another order (recorded, not hashed)
        row["threads"] = torch.get_num_threads()
        numeric_precision(cfg.precision, device)  # the precision the identity names, on any device (no TF32)
        seed_all(cfg.seed)
        stats = arch_for(cfg.arch, cfg.activation, cfg.self_attention).input_stats()  # what its weights expect
        dls = make_dls(cfg, p.dataset.root, p.items, device=device, stats=stats)
        built = build_model(cfg, n_classes=len(dls.vocab))
        check_weights_used(built.weights_used, p.ident["weights"])
        k = effective_top_k(cfg.top_k, len(dls.vocab))
        logger = EpochLog(epoch_log, p.run_id, attempt, k=k, total=cfg.head_epochs + cfg.ft_epochs, sink=sink)
        # one `bench: estimated ... per run` line from the first batches (bench.train.estimate)
        estimate = estimate_callback(cfg.head_epochs, cfg.ft_epochs, p.run_id)
        learn = make_learner(cfg, dls, built, cbs=[logger, estimate] + ([tracker] if tracker else []))
        row.update(top_k=k, family=built.spec.family,
                   source=built.spec.source, weights_used=built.weights_used, normalize=stats_label(stats),
                   n_classes=len(dls.vocab), n_train=len(dls.train_ds), n_valid=len(dls.valid_ds),
                   device=device_name(device), memory_format=learn.memory_format, params_1k=count_params_1k(built.spec),
                   context=context(device, row["threads"], learn.memory_format, loader_workers(dls)),
                   params_total=sum(q.numel() for q in learn.model.parameters()))

        learn.freeze()
        row["params_trainable_phase1"] = sum(q.numel() for q in learn.model.parameters() if q.requires_grad)
        fit_two_phase(learn, cfg, logger)
        row.update(training_seconds(logger), status="ok", error="")
        if logger.rows:  # images really trained / seconds of training batches (validation not counted)
            row["train_img_per_s"] = round(logger.train_images / max(logger.train_seconds, 1e-9), 2)
            row.update(final_metrics(logger.rows))
        check_trained(logger.rows, logger.train_images)  # no ok row without training, nor with a NaN/inf loss
        # the final model's per-image outcomes (one inference pass), written before the row that points at them
        row.update(record_outcomes(learn, p, sink, row["final_accuracy"], without=[logger, tracker]))
    except BaseException as e:
        # Ctrl-C is the user stopping the run, not the model failing: `interrupted`, which a restarted sweep re-runs
        # and the report does not count as a failure
        row.update(status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed", error=one_line(e))
        record(row, sink, tracker)
        raise
    record(row, sink, tracker)
    return row


def training_seconds(logger) -> dict[str, float]:
    """phase1/phase2/total_seconds: the sum of each phase's epochs (training batches and validation), as the epoch
    log shows them. Not the wall clock around fit: what callbacks do when a fit starts or ends (a tracker
    connecting to its store: seconds on a fresh MLflow store) and after each epoch is not training time."""
    p1, p2 = (logger.phase_seconds.get(k, 0.0) for k in (1, 2))
    return dict(phase1_seconds=round(p1, 3), phase2_seconds=round(p2, 3), total_seconds=round(p1 + p2, 3))


def check_weights_used(used: str, planned: str) -> None:
    """The weights loaded are the ones the run id was made from (e.g. a cached file that failed to load makes
    pretrained=auto fall back to random init): otherwise the row would carry numbers of another run."""
    if weights_identity(used) != planned:
        raise RuntimeError(f"weights: the run was planned with {planned} but loaded {used}; its run id would name "
                           "other numbers, so it is not recorded as ok (run it again)")


def record(row: dict, sink, tracker=None) -> None:
    row["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sink.write(index_path(""), [row], INDEX_FIELDS)
    if tracker is not None:  # after the row is kept: a tracker can neither lose nor change it
        tracker.finish(row)


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


