"""Per-image outcomes of a run's final model (docs/SCHEMA.md, `results/<dataset>/outcomes/<run_id>.csv.gz`): for each
scored image, in the DataLoader's un-shuffled order, its split, identity (path relative to its folder, posix), true
and predicted class and the softmax probability of the true class. Scored once, after the last epoch, with fastai's
`get_preds`: one inference pass, no augmentation beyond the validation transforms, no test-time augmentation."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

OUTCOME_FIELDS = ["split", "item", "label", "pred", "p_true"]
TEST_BATCH = 256  # inference only: a larger batch than training's runs the 10,000 images of a test set faster


def outcomes_path(dataset: str, run_id: str) -> Path:
    """Relative to the results folder, like the epoch log."""
    return Path(dataset) / "outcomes" / f"{run_id}.csv.gz"


def score(learn, dl, items: pd.Series, labels: pd.Series, split: str, without=()) -> list[dict]:
    """One row per image of `dl` (un-shuffled, not dropping a last partial batch: fastai's valid and test loaders),
    whose items and labels are `items`/`labels` in the same order. The prediction is the argmax of the raw outputs,
    as fastai's `accuracy` metric takes it, so the outcomes' accuracy is the epoch log's. `without`: callbacks left
    out of this pass (the epoch logger and a tracker would count it as another validation epoch)."""
    import torch
    from fastcore.basics import noop
    with learn.removed_cbs([cb for cb in without if cb is not None]):
        out, targ = learn.get_preds(dl=dl, act=noop)
    if len(out) != len(items):
        raise RuntimeError(f"outcomes: scored {len(out)} {split} images but the split has {len(items)}")
    vocab = list(learn.dls.vocab)
    pred = out.argmax(dim=1)
    p_true = torch.softmax(out.double(), dim=1).gather(1, targ.long().view(-1, 1)).squeeze(1)
    truth = [vocab[int(t)] for t in targ]
    if truth != [str(x) for x in labels]:
        raise RuntimeError(f"outcomes: the {split} loader's labels are not the split's, in order")
    return [dict(split=split, item=i, label=t, pred=vocab[int(p)], p_true=round(float(q), 5))
            for i, t, p, q in zip(items, truth, pred, p_true)]


def accuracy(rows: list[dict]) -> float:
    return sum(r["pred"] == r["label"] for r in rows) / len(rows) if rows else float("nan")


def record_outcomes(learn, prepared, sink, final_accuracy: float, without=()) -> dict:
    """Score the final model on the run's validation images (and its dataset's test set, if any: test_accuracy,
    test_n) and write its outcomes file through `sink` (one whole gzipped file, replaced atomically: bench.sinks);
    returns the index row's columns for it. `final_accuracy` (the
    last epoch's metric, a float32) must count the same images right; the row then takes the exact fraction, so
    the outcomes and the row agree to the last digit."""
    valid = prepared.items[prepared.items["is_valid"].to_numpy(bool)]
    rows = score(learn, learn.dls.valid, valid["path"], valid["label"], "valid", without)
    exact = accuracy(rows)
    if abs(exact - final_accuracy) * len(rows) >= 0.5:
        raise RuntimeError(f"outcomes: the final model scores {exact:.4f} on the validation images but the last "
                           f"epoch's metric was {final_accuracy:.4f}; the outcomes would not describe the run")
    cols = {"final_accuracy": exact}
    test = prepared.dataset.test
    if len(test):  # the whole test set whatever pct_images, in one pass at an inference batch size
        from ..data.loaders import test_loader
        dl = test_loader(learn.dls, prepared.cfg, prepared.dataset.root, test,
                         bs=max(TEST_BATCH, prepared.cfg.batch_size))
        scored = score(learn, dl, test["path"], test["label"], "test", without)
        cols.update(test_accuracy=accuracy(scored), test_n=len(scored))
        rows += scored
    rel = outcomes_path(prepared.dataset.name, prepared.run_id)
    sink.write(rel, rows, OUTCOME_FIELDS)
    return {"outcomes": rel.as_posix(), **cols}
