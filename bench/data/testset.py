"""The held-out test set: images each run's final model is scored on after training, and that no decision uses (not
in the split, not in a validation fold, not in a verdict).

Three ways to have one: test/ of class folders beside train/ and valid/; an `is_test` column in a table; or
`--test-set PATH`, a folder of class folders or a path,label table anywhere (relative to the dataset's folder first).
Beside train/ alone, test/ has always been read as the validation folder; `--test-set test` makes it the test set
instead (the validation set is then a fold of train/). Test items keep paths relative to the dataset root (`../`
for a test set elsewhere), so an outcome's `item` names one file for every run. The test images are part of the
dataset's fingerprint, so another test set is another dataset version.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..config import ConfigError
from .sources import TABLE_EXTS, TEST_DIR, class_folder_layout, list_folder, read_table


def locate(test_set: str, root: Path) -> Path:
    """--test-set's path: relative to the dataset's folder first (`test`), else as given (relative to here)."""
    for p in (Path(root) / test_set, Path(test_set).expanduser()):
        if p.exists():
            return p
    raise ConfigError(f"test_set: {test_set!r} is neither {Path(root) / test_set} nor an existing path; give a folder "
                      f"of class folders or a path,label table")


def holds_own_test(test_set: str | None, root: Path) -> bool:
    """The run names the dataset's own test/ folder (beside train/) as its test set."""
    return bool(test_set) and locate(test_set, root).resolve() == (Path(root) / TEST_DIR).resolve()


def external(test_set: str, root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items with is_test=True, ignored files) of a test set outside the dataset's own layout; paths relative to
    the dataset root."""
    where = locate(test_set, root)
    if where.is_dir():
        if class_folder_layout(where) is not None:
            raise ConfigError(f"test_set: {where} holds train/ (a dataset of its own); give one folder of class "
                              f"folders, e.g. {where / TEST_DIR}")
        items, _, ignored = list_folder(where)
        base = where
    elif where.suffix.lower() in TABLE_EXTS:
        items, ignored, base = read_table(where), pd.DataFrame(columns=["path", "problem"]), where.parent
    else:
        raise ConfigError(f"test_set: {where} is neither a folder of class folders nor a path,label table "
                          f"({', '.join(sorted(TABLE_EXTS))})")
    if items.empty:
        raise ConfigError(f"test_set: no image files in {where} (expected {where}/<class>/<image>)")
    rel = lambda p: Path(os.path.relpath(Path(base).resolve() / p, Path(root).resolve())).as_posix()  # noqa: E731
    items = pd.DataFrame({"path": [rel(p) for p in items["path"]], "label": items["label"], "is_test": True})
    return items, ignored.assign(path=[rel(p) for p in ignored["path"]])


def with_test(items: pd.DataFrame, ignored: pd.DataFrame, test_set: str | None,
              root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The source's items plus the --test-set's (none when not asked for, or when it names the dataset's own)."""
    if not test_set:
        return items, ignored
    if "is_test" in items.columns:
        if not holds_own_test(test_set, root):
            raise ConfigError(f"test_set: the dataset already has its own test set ({Path(root) / TEST_DIR} or an "
                              f"is_test column); a second one from {test_set} is refused (drop --test-set)")
        return items, ignored
    ext, ext_ignored = external(test_set, root)
    both = pd.concat([items.assign(is_test=False), ext], ignore_index=True)
    if "is_valid" in both.columns:
        both["is_valid"] = both["is_valid"].fillna(False).astype(bool)
    return both, pd.concat([ignored, ext_ignored], ignore_index=True)


def fingerprint_text(items: pd.DataFrame) -> str:
    """Which files are test images: part of the fingerprint, so moving images in or out of the test set (or
    holding test/ out instead of validating on it) is another dataset version."""
    if "is_test" not in items.columns:
        return ""
    return "".join(f"test\t{p}\n" for p in items.loc[items["is_test"], "path"])


def split_off(good: pd.DataFrame, dups: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train/validation items, test items, duplicates among the former, duplicates touching the test set). A test
    image identical to a training or validation image is dropped from the test set: it would score memory."""
    if "is_test" not in good.columns:
        return good, good.iloc[:0].assign(is_test=True), dups, dups.iloc[:0]
    is_test = good["is_test"].to_numpy(bool)
    rest, test = good[~is_test].drop(columns="is_test"), good[is_test].drop(columns="is_test")
    seen = set(rest["sha"])
    leak = test["sha"].isin(seen)
    test_paths = set(test["path"])
    touches = dups["path"].isin(test_paths) | dups["duplicate_of"].isin(test_paths)
    test_dups = dups[touches].copy()
    if len(test_dups):
        leaked = set(test.loc[leak, "path"])
        test_dups["action"] = ["dropped from the test set (same file in training or validation)"
                               if {p, q} & leaked else "kept (test set)"
                               for p, q in zip(test_dups["path"], test_dups["duplicate_of"])]
    return (rest.reset_index(drop=True), test[~leak].reset_index(drop=True),
            dups[~touches].reset_index(drop=True), test_dups)


def check(name: str, test: pd.DataFrame, good: pd.DataFrame, asked: bool) -> None:
    """A test image's class must be one the model learns; an asked-for test set must keep an image."""
    if asked and test.empty:
        raise ConfigError(f"test_set: {name}'s test set has no usable image (all bad, or copies of training images)")
    unknown = sorted(set(test["label"]) - set(good["label"]))
    if unknown:
        raise ConfigError(f"test_set: class {unknown[0]!r} of the test set has no training images in {name} "
                          f"({len(unknown)} such class(es)); a model cannot predict a class it never saw")


def roles(root: Path, test: pd.DataFrame, kind: str) -> str:
    """What the start line says about test/ and the test set ('' when there is nothing to say)."""
    if len(test):
        top = {Path(p).parts[0] for p in test["path"]}
        where = f"{Path(root) / TEST_DIR}" if top == {TEST_DIR} else "held out"
        return f"test set: {len(test)} images ({where}), scored after training, in no decision"
    if kind != "table" and Path(root).is_dir() and class_folder_layout(Path(root)) == (TEST_DIR, None):
        return (f"{Path(root) / TEST_DIR} is the validation set (it picks the models); --test-set test holds it out "
                f"as a test set instead")
    return ""
