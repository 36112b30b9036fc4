"""Mirror each run to an experiment tracker (MLflow) from a fastai callback; the CSVs in results/ stay the record.

With `track=mlflow` a run becomes an MLflow run: params = the resolved config, one point per epoch of both phases
for every curve (step = the run's epoch, 1..head_epochs+ft_epochs), tags = what the run really used (dataset
fingerprint, split hash, weights, git SHA, status), this attempt's epoch CSV and the index row as artifacts.
MLFLOW_TRACKING_URI picks the server (and MLFLOW_EXPERIMENT_NAME the experiment: default the sweep's name, else
"bench"); without it the store is local, `sqlite:///<results_dir>/mlflow.db` with artifacts in
`<results_dir>/mlartifacts` (MLflow 3 refuses its old file store by default and recommends a database).

Tracking is a side channel: its first failure (server down, bad URI) is one `bench: warning:` line and tracking
stops for that run, which goes on and keeps its rows and its status.
"""
from __future__ import annotations

import io
import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from fastai.callback.core import Callback

from ..config import RunConfig
from ..console import console_mode, one_line
from ..files import encode_rows
from .epochlog import EPOCH_FIELDS

CURVES = ("phase", "train_loss", "valid_loss", "accuracy", "top_k_accuracy", "lr", "mom", "seconds", "train_seconds")
FINAL = ("final_accuracy", "best_accuracy", "best_epoch", "final_top_k", "final_valid_loss", "total_seconds",
         "train_img_per_s", "params_total", "params_trainable_phase1")
TAGS = ("run_id", "attempt", "status", "error", "experiment", "arch", "family", "source", "dataset",
        "dataset_fingerprint", "split_hash", "weights_used", "device", "memory_format", "precision", "threads",
        "git_sha", "host", "python", "torch", "torchvision", "fastai", "timm")
STATUS = {"ok": "FINISHED", "interrupted": "KILLED"}  # bench's row status -> MLflow's run status (else FAILED)
# A dead server should cost seconds, not MLflow's default of 7 retries with backoff (minutes); the user's own
# settings of these variables win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def tracking_uri(results_dir: str | Path) -> str:
    """MLFLOW_TRACKING_URI, else the local store under the results folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def experiment_name(cfg: RunConfig) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or cfg.experiment or "bench"


def tracker_for(cfg: RunConfig, row: dict) -> Callback | None:
    """The callback `cfg.track` asks for, or None. `row` is the run's index row, filled in as the run goes."""
    return MlflowTracker(cfg, row) if cfg.track == "mlflow" else None


@contextmanager
def quiet():
    """MLflow's own chatter (run links on stdout, migration and retry logs) off: bench says what matters itself."""
    import mlflow  # noqa: F401  (its import sets its loggers' levels: first, so the ones set here hold)
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic", "urllib3")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class MlflowTracker(Callback):
    """Starts the MLflow run when training starts, sends each epoch's row as it is logged, and ends the run with
    the final row (`finish`, called by the protocol after the row is kept)."""
    order = 71  # after EpochLog (70): its row for the epoch is the one sent

    def __init__(self, cfg: RunConfig, row: dict):
        self.cfg, self.row, self.rows = cfg, row, []
        self.uri, self.client, self.mlflow_run = tracking_uri(cfg.results_dir), None, None
        self.stopped = False

    def before_fit(self):
        if self.mlflow_run is None:  # once: fit runs once per phase
            self._safely(self._start)

    def after_epoch(self):
        row = self.learn.epoch_log.rows[-1]  # the EpochLog callback, by fastai's callback name
        self.rows.append(row)
        self._safely(self._log_epoch, row)

    def finish(self, row: dict) -> None:
        if self.mlflow_run is None:  # failed before training started: the run is still shown, as failed
            self._safely(self._start)
        self._safely(self._end, row)

    def _safely(self, fn, *args) -> None:
        if self.stopped:
            return
        try:
            with quiet():
                fn(*args)
        except Exception as e:  # noqa: BLE001 (any failure of the side channel: warn once, never fail the run)
            self.stopped = True
            warnings.warn(f"MLflow tracking stopped for run {self.row.get('run_id')}: {self.uri} failed "
                          f"({one_line(root_cause(e))}); the run goes on and its rows are kept in the results folder")

    def _start(self) -> None:
        for k, v in HTTP_DEFAULTS.items():
            os.environ.setdefault(k, v)
        if os.environ.get("BENCH_OFFLINE"):
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow  # deferred: only a run with track=mlflow loads MLflow
        from mlflow.entities import Param
        self.client = client = mlflow.MlflowClient(self.uri)
        name = experiment_name(self.cfg)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            local = None if os.environ.get("MLFLOW_TRACKING_URI") else \
                (Path(self.cfg.results_dir).resolve() / "mlartifacts").as_uri()
            try:
                exp_id = client.create_experiment(name, artifact_location=local)
            except mlflow.exceptions.MlflowException:  # created by a concurrent run meanwhile
                exp_id = client.get_experiment_by_name(name).experiment_id
        else:
            exp_id = exp.experiment_id
        c = self.cfg
        self.mlflow_run = client.create_run(exp_id, run_name=f"{c.arch} seed {c.seed} fold {c.fold}",
                                            tags=self._tags(self.row))
        params = [Param(k, "" if v is None else str(v)) for k, v in sorted(c.to_dict().items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(self.mlflow_run.info.run_id, params=params[i:i + 100])

    def _log_epoch(self, row: dict) -> None:
        from mlflow.entities import Metric  # deferred: only a run with track=mlflow loads MLflow
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(row[k]), now, int(row["epoch"])) for k in CURVES if _number(row.get(k))]
        self.client.log_batch(self.mlflow_run.info.run_id, metrics=metrics)

    def _end(self, row: dict) -> None:
        from mlflow.entities import Metric, RunTag  # deferred: only a run with track=mlflow loads MLflow
        run_id, now = self.mlflow_run.info.run_id, int(time.time() * 1000)
        tags = [RunTag(k, v) for k, v in self._tags(row).items()]
        metrics = [Metric(k, float(row[k]), now, 0) for k in FINAL if _number(row.get(k))]
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        self.client.log_text(run_id, encode_rows(self.rows, EPOCH_FIELDS, header=True).decode(),
                             f"epochs/{row['run_id']}.csv")
        self.client.log_dict(run_id, {k: v for k, v in row.items() if v is not None}, "run.json")
        self.client.set_terminated(run_id, STATUS.get(row.get("status"), "FAILED"))
        if console_mode() != "off":
            print(f"bench: tracked in MLflow as run {run_id} of experiment {experiment_name(self.cfg)!r} at "
                  f"{self.uri}", file=sys.stderr, flush=True)

    @staticmethod
    def _tags(row: dict) -> dict[str, str]:
        tags = {k: str(row[k])[:5000] for k in TAGS if row.get(k) not in (None, "")}
        sha = str(row.get("git_sha") or "").split("+")[0]
        if sha:
            tags["mlflow.source.git.commit"] = sha  # MLflow's own tag: shown in its UI
        return tags


def root_cause(e: BaseException) -> BaseException:
    """The innermost exception (`Connection refused`, not MLflow's and requests' wrappers around it)."""
    seen = {id(e)}
    while (nxt := e.__cause__ or e.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        e = nxt
    return e


def _number(v) -> bool:
    try:
        float(v)
        return v is not None and v != ""
    except (TypeError, ValueError):
        return False
