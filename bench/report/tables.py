"""results/ CSVs -> one frame of runs, the latest attempt of each, epoch curves, and the per-model summary table
(with the article's published figures and `bench speed`'s GMACs beside it)."""
from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC = ["img_size", "batch_size", "pct_images", "head_epochs", "ft_epochs", "top_k", "params_total", "params_1k",
           "final_accuracy", "best_accuracy", "best_epoch", "final_top_k", "final_valid_loss",
           "phase1_seconds", "phase2_seconds", "total_seconds"]
TEXT = ["run_id", "attempt", "timestamp", "status", "error", "experiment", "arch", "family", "source", "head",
        "layer_groups", "pretrained", "dataset", "seed", "split_seed", "fold", "n_folds", "epoch_log"]
# Configuration that changes what is measured: runs differing here are never pooled into one mean.
VARIANT = ["head", "layer_groups", "pretrained", "weights_used", "img_size", "item_size", "batch_size", "pct_images",
           "head_epochs", "head_lr", "ft_epochs", "ft_lr_min", "ft_lr_max", "wd", "precision", "channels_last",
           "n_folds"]


class ReportError(Exception):
    """Bad or absent input, worth one line to the user rather than a traceback."""


def read_csv(path: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """All complete rows as strings (a run id like "1e5a…" or "000123…" must stay an id); absent file → empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return pd.DataFrame()
    if text and not text.endswith("\n"):
        # Writers append whole newline-terminated lines (bench.logs): an unterminated tail is a write in progress
        # or a killed writer, so it is left out, as bench.logs.read_rows does.
        text = text[: text.rfind("\n") + 1]
        _note(notes, f"{path}: ignored an incomplete last line (a run still writing, or a killed writer)")
    bad: list = []
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], engine="python",
                         on_bad_lines=lambda line: bad.append(line))
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    if bad:
        _note(notes, f"{path}: skipped {len(bad)} malformed line(s) (wrong number of fields)")
    return df


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None:
        notes.append(text)


def variant_labels(runs: pd.DataFrame) -> pd.Series:
    """`arch`, plus the settings that differ between runs of that arch on that dataset (so common cases stay short)."""
    keys = runs.reindex(columns=VARIANT).astype("string").fillna("")
    labels = runs.arch.astype(str).copy()
    for _, idx in runs.groupby(["dataset", "arch"], dropna=False).groups.items():
        varying = [c for c in VARIANT if keys.loc[idx, c].nunique() > 1]
        if varying:
            extra = keys.loc[idx, varying].apply(lambda r: ", ".join(f"{c}={v}" for c, v in r.items()), axis=1)
            labels[idx] = labels[idx] + " [" + extra + "]"
    return labels


def load_runs(results_dir: Path, notes: list[str] | None = None) -> pd.DataFrame:
    if not results_dir.is_dir():
        raise ReportError(f"results directory {results_dir} does not exist")
    runs = read_csv(results_dir / "runs.csv", notes)
    if runs.empty:
        raise ReportError(f"no runs in {results_dir / 'runs.csv'} (missing or empty): run `bench run` or a sweep first")
    runs = runs.reindex(columns=list(dict.fromkeys([*TEXT, *NUMERIC, *runs.columns])))
    runs["model"] = variant_labels(runs)
    for c in NUMERIC:
        runs[c] = pd.to_numeric(runs[c], errors="coerce")
    # Rows from before `status` existed: a row with an accuracy finished.
    runs["status"] = runs.status.fillna(pd.Series(np.where(runs.final_accuracy.notna(), "ok", "failed"), runs.index))
    runs["run_id"] = runs.run_id.fillna(pd.Series([f"row{i}" for i in runs.index], runs.index))
    runs["attempt"] = runs.attempt.fillna(runs.timestamp).fillna("")
    runs["dataset"] = runs.dataset.fillna("unknown")
    runs[["arch", "family", "source"]] = runs[["arch", "family", "source"]].fillna("?")
    runs["params_m"] = runs.params_1k.fillna(runs.params_total) / 1e6
    # Phase-2 seconds per epoch is what the article quotes (stage2_epoch_time); phase 1 only when there is no phase 2.
    runs["epoch_s"] = np.where(runs.ft_epochs > 0, runs.phase2_seconds / runs.ft_epochs,
                               runs.total_seconds / runs.head_epochs.where(runs.head_epochs > 0))
    return runs


def filter_runs(runs: pd.DataFrame, **wanted: str | None) -> pd.DataFrame:
    for col, value in wanted.items():
        if value is None:
            continue
        kept = runs[runs[col] == value]
        if kept.empty:
            have = ", ".join(sorted(runs[col].dropna().astype(str).unique())) or "none"
            raise ReportError(f"no runs with {col}={value!r} (available: {have})")
        runs = kept
    return runs


def latest_attempts(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Latest ok attempt per run id; failures only for run ids that never succeeded; count of retried failures."""
    runs = runs.sort_values(["attempt", "timestamp"], na_position="first", kind="stable")
    ok = runs[runs.status == "ok"].drop_duplicates("run_id", keep="last")
    bad = runs[runs.status != "ok"]
    retried = bad.run_id.isin(ok.run_id)
    return ok, bad[~retried].drop_duplicates("run_id", keep="last"), int(retried.sum())


def load_curves(results_dir: Path, ok: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch rows of exactly the attempts kept in `ok`; a missing log (older or partial run) is skipped."""
    frames = []
    for run in ok.itertuples():
        rel = run.epoch_log if isinstance(run.epoch_log, str) else f"{run.dataset}/epochs/{run.run_id}.csv"
        path = results_dir / rel
        log = read_csv(path)
        if log.empty or "epoch" not in log:
            continue
        if "attempt" in log and (log.attempt == run.attempt).any():
            log = log[log.attempt == run.attempt]
        elif "attempt" in log:  # attempt ids disagree (older writer): keep the file's last attempt
            log = log[log.attempt == log.attempt.dropna().iloc[-1]] if log.attempt.notna().any() else log
        log = log.reindex(columns=["epoch", "phase", "accuracy", "valid_loss", "seconds"])
        log = log.apply(pd.to_numeric, errors="coerce")
        frames.append(log.assign(dataset=run.dataset, model=run.model, run_id=run.run_id))
    cols = ["dataset", "model", "run_id", "epoch", "phase", "accuracy", "valid_loss", "seconds"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def load_reference() -> pd.DataFrame:
    try:
        ref = resources.files("bench.report").joinpath("reference/blog_results.csv")
        with ref.open() as f:
            return pd.read_csv(f)
    except (NotADirectoryError, FileNotFoundError):  # namespace-package edge cases of editable installs
        return pd.read_csv(Path(__file__).with_name("reference") / "blog_results.csv")


def published(row, ref: pd.DataFrame) -> tuple[float, float]:
    """The article's accuracy/top-k for this arch; layer_groups and img_size narrow it only where the article has
    both."""
    cand = ref[ref.arch == row.arch]
    for col in ("layer_groups", "img_size"):
        if cand[col].nunique() > 1:
            same = cand[cand[col].astype(str) == str(row[col]).removesuffix(".0")]
            if same.empty and col == "img_size":  # fall back to the article's default protocol, its smallest size
                same = cand[cand.img_size == cand.img_size.min()]
            cand = same
    if len(cand) != 1:
        return np.nan, np.nan
    return float(cand.accuracy.iloc[0]), float(cand.top_k_accuracy.iloc[0])


def gmacs_lookup(speed: pd.DataFrame) -> dict:
    """(arch, img_size) → median GMACs of successful `bench speed` rows; other sizes do not describe the run."""
    if not {"arch", "gmacs"} <= set(speed.columns):
        return {}
    speed = speed.reindex(columns=["arch", "img_size", "gmacs", "status"])
    speed = speed[speed.status.fillna("ok") == "ok"]
    num = speed[["img_size", "gmacs"]].apply(pd.to_numeric, errors="coerce").assign(arch=speed.arch)
    return num.dropna(subset=["gmacs"]).groupby(["arch", "img_size"]).gmacs.median().to_dict()


def summarise(ok: pd.DataFrame, failed: pd.DataFrame, comps: pd.DataFrame, speed: pd.DataFrame,
              ref: pd.DataFrame) -> pd.DataFrame:
    first = {c: (c, "first") for c in ["arch", "family", "source", "layer_groups", "img_size", "params_m", "top_k"]}
    s = ok.groupby(["dataset", "model"], sort=False).agg(
        **first, n=("final_accuracy", "count"), acc_mean=("final_accuracy", "mean"), acc_std=("final_accuracy", "std"),
        topk_mean=("final_top_k", "mean"), topk_std=("final_top_k", "std"),
        total_s=("total_seconds", "mean"), epoch_s=("epoch_s", "mean"), best_epoch=("best_epoch", "median"))
    f = failed.groupby(["dataset", "model"], sort=False).agg(
        **{k: v for k, v in first.items() if k != "top_k"}, n_failed=("run_id", "size"), error=("error", "last"))
    s = s.combine_first(f).reset_index() if len(f) else s.reset_index().assign(n_failed=0, error=np.nan)
    s["n"] = s.n.fillna(0).astype(int)
    s["n_failed"] = s.n_failed.fillna(0).astype(int)
    s["status"] = np.where(s.n == 0, "failed", np.where(s.n_failed > 0, s.n_failed.astype(str) + " failed", "ok"))
    gm = gmacs_lookup(speed)
    s["gmacs"] = [gm.get((a, i), np.nan) for a, i in zip(s.arch, s.img_size)]
    s[["published_acc", "published_top_k"]] = [published(r, ref) for _, r in s.iterrows()] or np.empty((0, 2))
    s = s.sort_values(["dataset", "acc_mean"], ascending=[True, False], na_position="last", kind="stable")
    return pd.concat([_versus_best(d, comps) for _, d in s.groupby("dataset", sort=False)], ignore_index=True)


def _versus_best(s: pd.DataFrame, comps: pd.DataFrame) -> pd.DataFrame:
    s = s.copy()
    s["gap"] = s["gap_lo"] = s["gap_hi"] = s["gap_n"] = np.nan
    s["noise"] = ""
    if s.acc_mean.notna().any():
        best = s.model.iloc[0]
        s.loc[s.index[0], "noise"] = "best"
        c = comps[(comps.dataset == s.dataset.iloc[0]) & (comps.a == best)].set_index("b")
        for i, m in zip(s.index[1:], s.model.iloc[1:]):
            if m in c.index:
                gap = c.loc[m, ["diff", "ci_lo", "ci_hi", "n_pairs"]].to_numpy(float)
                s.loc[i, ["gap", "gap_lo", "gap_hi", "gap_n"]] = gap
                s.loc[i, "noise"] = "within noise" if c.loc[m, "within_noise"] else "beyond noise"
            elif pd.notna(s.loc[i, "acc_mean"]):
                s.loc[i, "noise"] = "untested (<2 paired)"
    return s


