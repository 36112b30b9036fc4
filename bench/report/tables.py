"""results/ CSVs -> one frame of runs (identity, variant label, stale mark), the latest attempt of each, epoch curves,
and the per-model summary table (with `bench speed`'s GMACs beside it)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from .groups import label_sections
from .variants import fill_from_finished, from_keys, identities, identity_keys, mark_stale
from ..stats import Verdict
from .verdicts import order

NUMERIC = ["img_size", "batch_size", "pct_images", "head_epochs", "ft_epochs", "head_lr", "ft_lr_min", "ft_lr_max",
           "top_k", "params_total", "params_1k",
           "final_accuracy", "best_accuracy", "best_epoch", "final_top_k", "final_valid_loss",
           "phase1_seconds", "phase2_seconds", "total_seconds"]
TEXT = ["run_id", "attempt", "timestamp", "status", "error", "experiment", "arch", "family", "source", "head",
        "layer_groups", "pretrained", "weights_used", "dataset", "dataset_fingerprint", "split_hash", "seed",
        "split_seed", "fold", "n_folds", "epoch_log", "outcomes", "config_json"]
# Statuses that are not a model's failure: a run stopped by the user (Ctrl-C, a killed sweep) that resume re-runs.
NOT_FAILED = {"ok", "interrupted"}


class ReportError(Exception):
    """Bad or absent input, worth one line to the user rather than a traceback."""


def read_csv(path: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """All complete rows as strings (a run id like "1e5a…" or "000123…" must stay an id); absent file → empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return pd.DataFrame()
    if text and not text.endswith("\n"):
        # Writers append whole newline-terminated lines (bench.files): an unterminated tail is a write in progress
        # or a killed writer, so it is left out, as bench.files.read_rows does.
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


def load_runs(results_dir: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """Every row of runs.csv with `identity` (the full comparable configuration, JSON) and `stale` (why the row is
    from a superseded dataset version or split, '' if current)."""
    if not results_dir.is_dir():
        raise ReportError(f"results directory {results_dir} does not exist")
    runs = read_csv(results_dir / "runs.csv", notes)
    if runs.empty:
        raise ReportError(f"no runs in {results_dir / 'runs.csv'} (missing or empty): run `bench run` or a sweep first")
    runs = runs.reindex(columns=list(dict.fromkeys([*TEXT, *NUMERIC, *runs.columns])))
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
    runs["stale"] = mark_stale(runs)
    runs["identity"] = identity_keys(fill_from_finished(identities(runs), runs))
    return runs


def label_models(runs: pd.DataFrame) -> pd.DataFrame:
    """Sections and `model` labels (groups.label_sections), made within the rows being reported (after filters),
    separately for current, stale and interrupted rows, so a variant that is not on the page does not lengthen the
    labels that are."""
    runs = runs.assign(model="", protocol="", section="", protocol_text="")
    groups = [runs.stale != "", (runs.stale == "") & (runs.status == "interrupted"),
              (runs.stale == "") & (runs.status != "interrupted")]
    for mask in groups:
        if mask.any():
            labelled = label_sections(runs[mask], from_keys(runs.identity[mask]))
            runs.loc[mask, labelled.columns] = labelled
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


def latest_attempts(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int, int]:
    """(latest ok attempt per run id; failures of run ids that never succeeded; retried failures; interrupted runs
    never finished). Interrupted runs are neither results nor failures: the user stopped them."""
    runs = runs.sort_values(["attempt", "timestamp"], na_position="first", kind="stable")
    # an ok row without an accuracy (a torn or hand-edited file) is no result: it never replaces a valid one
    ok = runs[(runs.status == "ok") & runs.final_accuracy.notna()].drop_duplicates("run_id", keep="last")
    bad = runs[~runs.status.isin(NOT_FAILED)]
    retried = bad.run_id.isin(ok.run_id)
    stopped = runs[(runs.status == "interrupted") & ~runs.run_id.isin(ok.run_id)].run_id.nunique()
    return ok, bad[~retried].drop_duplicates("run_id", keep="last"), int(retried.sum()), int(stopped)


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


def gmacs_lookup(speed: pd.DataFrame) -> dict:
    """(arch, img_size) → median GMACs of successful `bench speed` rows; other sizes do not describe the run."""
    if not {"arch", "gmacs"} <= set(speed.columns):
        return {}
    speed = speed.reindex(columns=["arch", "img_size", "gmacs", "status"])
    speed = speed[speed.status.fillna("ok") == "ok"]
    num = speed[["img_size", "gmacs"]].apply(pd.to_numeric, errors="coerce").assign(arch=speed.arch)
    return num.dropna(subset=["gmacs"]).groupby(["arch", "img_size"]).gmacs.median().to_dict()


def _lower_median(x: pd.Series) -> float:
    """A best epoch that is an epoch: the lower median of the runs' best epochs, never a 2.5."""
    x = x.dropna().sort_values()
    return float(x.iloc[(len(x) - 1) // 2]) if len(x) else np.nan


def summarise(ok: pd.DataFrame, failed: pd.DataFrame, speed: pd.DataFrame,
              verdicts: dict[str, Verdict]) -> pd.DataFrame:
    """One row per (section, model): mean ± sd over its instances, n, time, size, GMACs, best epoch, failures; the
    ranked models first (rank, paired mean, gap to the leader with its interval and claim: all on the instances and
    images they share, bench.stats), then the models not ranked (with the instances they lack), failed-only last."""
    keys = ["dataset", "section", "protocol_text", "model"]
    first = {c: (c, "first") for c in ["arch", "family", "source", "head", "layer_groups", "img_size", "batch_size",
                                       "pct_images", "head_epochs", "ft_epochs", "head_lr", "ft_lr_min", "ft_lr_max",
                                       "weights_used", "params_m", "top_k", "config_json"]}
    s = ok.groupby(keys, sort=False).agg(
        **first, n=("final_accuracy", "count"), acc_mean=("final_accuracy", "mean"), acc_std=("final_accuracy", "std"),
        topk_mean=("final_top_k", "mean"), topk_std=("final_top_k", "std"),
        total_s=("total_seconds", "mean"), epoch_s=("epoch_s", "mean"), best_epoch=("best_epoch", _lower_median),
        best_epoch_min=("best_epoch", "min"), best_epoch_max=("best_epoch", "max"))
    f = failed.groupby(keys, sort=False).agg(
        **{k: v for k, v in first.items() if k != "top_k"}, n_failed=("run_id", "size"), error=("error", "last"))
    s = s.combine_first(f).reset_index() if len(f) else s.reset_index().assign(n_failed=0, error=np.nan)
    s["n"] = s.n.fillna(0).astype(int)
    s["n_failed"] = s.n_failed.fillna(0).astype(int)
    s["status"] = np.where(s.n == 0, "failed", np.where(s.n_failed > 0, s.n_failed.astype(str) + " failed", "ok"))
    gm = gmacs_lookup(speed)
    s["gmacs"] = [gm.get((a, i), np.nan) for a, i in zip(s.arch, s.img_size)]
    parts = [_ranked(d, verdicts.get(sec), instance_sets(ok[ok.section == sec]))
             for sec, d in s.groupby("section", sort=False)]
    cols = [*s.columns, *RANK_COLS]
    return pd.concat(parts, ignore_index=True)[cols] if parts else s.reindex(columns=cols)


RANK_COLS = ["rank", "n_paired", "acc_paired", "gap", "gap_lo", "gap_hi", "p_value", "p_level", "noise", "lacking"]
# bench.stats' claims as the table's noise column
NOISE = {"worse": "beyond noise", "equivalent": "equivalent", "not separated": "within noise",
         "not compared": "not ranked"}


def instance_sets(ok: pd.DataFrame) -> dict[str, dict]:
    """model -> {its (seed, fold) instance: final accuracy}; "" -> every instance of the section."""
    keys = list(zip(ok.seed.astype(str), ok.fold.astype(str)))
    sets: dict[str, dict] = {m: {} for m in ok.model}
    for m, k, acc in zip(ok.model, keys, ok.final_accuracy):
        sets[m][k] = acc
    sets[""] = dict.fromkeys(keys)
    return sets


def _sorted_instances(items) -> list[tuple]:
    return sorted(items, key=lambda i: tuple(int(x) if x.lstrip("-").isdigit() else 0 for x in i))


def lacking(sets: dict[str, dict], model: str) -> list[tuple]:
    """The section's (seed, fold) instances this model has no result for."""
    return _sorted_instances(set(sets.get("", {})) - set(sets.get(model, {})))


def _instances(items) -> str:
    return "; ".join(f"seed {s} fold {f}" for s, f in items)


def _ranked(s: pd.DataFrame, v: Verdict | None, sets: dict[str, dict]) -> pd.DataFrame:
    """Ranking columns for one section's rows, in the verdict's order."""
    s = s.assign(**{c: np.nan for c in RANK_COLS}).astype({"noise": object, "lacking": object})
    s["noise"] = s["lacking"] = ""
    if v is None:
        return s
    s = s.set_index("model", drop=False)
    for m in s.index:
        if m in sets:
            s.at[m, "lacking"] = _instances(lacking(sets, m))
    models = [m for m in order(v) if m in s.index]
    if models:
        s.loc[models, "rank"] = range(1, len(models) + 1)
        lead = models[0]
        s.at[lead, "noise"], s.at[lead, "n_paired"], s.at[lead, "acc_paired"] = "best", s.at[lead, "n"], \
            s.at[lead, "acc_mean"]
        comps = v.comparisons.set_index("candidate") if len(v.comparisons) else pd.DataFrame()
        for m in models[1:]:
            c = comps.loc[m]
            s.loc[m, ["gap", "gap_lo", "gap_hi", "p_value", "p_level", "n_paired"]] = \
                [c["diff"], c["lo"], c["hi"], c["p"], c["level"], c["n"]]
            shared = set(sets.get(m, {})) & set(sets.get(lead, {}))
            s.at[m, "acc_paired"] = np.mean([sets[m][k] for k in shared]) if shared else np.nan
            s.at[m, "noise"] = NOISE.get(c["claim"], c["claim"])
    unranked = [m for m in s.index if m not in models and s.at[m, "n"] > 0]
    for m in unranked:
        s.at[m, "noise"] = "not ranked"
    ordered = models + sorted(unranked, key=lambda m: -s.at[m, "acc_mean"])
    return pd.concat([s.loc[ordered], s.drop(index=ordered)]).reset_index(drop=True)
