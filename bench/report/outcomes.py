"""Reading a run's per-image outcomes (written by bench.train.outcomes; docs/SCHEMA.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd


def read_outcomes(results_dir: str | Path, row: Mapping) -> pd.DataFrame | None:
    """The outcomes of the run an index row describes: split, item, label, pred (text) and p_true (float), in the
    order scored; None when the row names no file (rows from before outcomes existed, failed runs) or it is gone."""
    rel = row.get("outcomes") if hasattr(row, "get") else None
    if not isinstance(rel, str) or not rel.strip():
        return None
    path = Path(results_dir) / rel
    if not path.is_file():
        return None
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return df.assign(p_true=pd.to_numeric(df["p_true"], errors="coerce"))


def correct_by_item(outcomes: pd.DataFrame, split: str = "valid") -> pd.Series:
    """Per-image correctness (pred == label) of one split, indexed by item: what the verdict compares across runs."""
    d = outcomes[outcomes["split"] == split]
    return pd.Series((d["pred"] == d["label"]).to_numpy(), index=pd.Index(d["item"], name="item"), name="correct")
