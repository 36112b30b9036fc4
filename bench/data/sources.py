"""Where images come from: a folder of class subfolders, a `path,label[,is_valid]` table, or a fastai `URLs` dataset.

Each source yields (root, items) with items = path (relative to root, posix), label and, when the source carries
its own split, is_valid. Validation of the files themselves is scan.py's job.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..config import ConfigError
from ..network import online

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
# A folder holding `train/` and one of these is taken as the user's own split (ImageNet / fastai layout), first wins.
VALID_DIRS = ("valid", "val", "validation")
# Beside train/ and a validation folder, test/ of class folders is the held-out test set; beside train/ alone it is
# the validation folder (as it always was read) unless the run names it as its test set (--test-set).
TEST_DIR = "test"
TABLE_EXTS = {".csv", ".tsv", ".parquet", ".pq"}
_TRUE, _FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f", ""}


def walk_files(root: Path) -> list[Path]:
    """Non-hidden files under `root`, relative, sorted. Symlinked folders are followed once: a link back to an
    ancestor or to a folder already seen is skipped, so a loop cannot recurse forever."""
    out, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        out += [rel_dir / f for f in filenames if not f.startswith(".")]
    return sorted(out)


def _has_class_folders(folder: Path) -> bool:
    return any(d.is_dir() and not d.name.startswith(".") for d in folder.iterdir())


def class_folder_layout(root: Path, hold_out_test: bool = False) -> tuple[str | None, str | None] | None:
    """(validation folder, test folder) when `root` is laid out as train/<class>/… beside valid/ (val/, validation/)
    and/or test/, else None. train/ + test/ alone: test/ validates, unless `hold_out_test` (the run names it as its
    test set): then there is no validation folder (a fold of train/ validates) and test/ is the test set. An
    unlabelled test/ (no class folders) beside a validation folder is ignored."""
    top = {d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
    if "train" not in top:
        return None
    valid = next((v for v in VALID_DIRS if v in top), None)
    has_test = TEST_DIR in top and _has_class_folders(root / TEST_DIR)
    if valid is None and TEST_DIR in top:
        return (None, TEST_DIR) if hold_out_test and has_test else (TEST_DIR, None)
    if valid is None:
        return None
    return valid, TEST_DIR if has_test else None


def list_folder(root: Path, hold_out_test: bool = False) -> tuple[pd.DataFrame, list[str], pd.DataFrame]:
    """(items, class folders, ignored files). The label is the top folder (nested folders below it allowed), or the
    second one under train/, valid/ and test/ when the folder carries its own split (an is_valid column) or test set
    (an is_test column)."""
    layout = class_folder_layout(root, hold_out_test)
    valid_dir, test_dir = layout or (None, None)
    depth = 1 if layout else 0
    sides = ("train", valid_dir, test_dir)
    rows, ignored, classes = [], [], set()
    for rel in walk_files(root):
        parts = rel.parts
        if layout and parts[0] not in sides:
            continue  # e.g. an unlabelled test/ folder next to train/ and valid/
        if len(parts) < depth + 2:
            continue  # files beside the class folders (labels.csv, README) belong to no class
        classes.add("/".join(parts[:depth + 1]))
        if rel.suffix.lower() not in IMAGE_EXTS:
            ignored.append((rel.as_posix(), f"ignored: {rel.suffix or 'no'} extension is not an image type"))
            continue
        rows.append([rel.as_posix(), parts[depth]] + [parts[0] == d for d in (valid_dir, test_dir) if d])
    # class folders that hold no files at all never show up in the walk above
    for t in [root / d for d in sides if d] if layout else [root]:
        for d in t.iterdir():
            if d.is_dir() and not d.name.startswith("."):
                classes.add(d.relative_to(root).as_posix())
    cols = ["path", "label"] + [c for c, d in (("is_valid", valid_dir), ("is_test", test_dir)) if d]
    return (pd.DataFrame(rows, columns=cols), sorted(classes),
            pd.DataFrame(ignored, columns=["path", "problem"]))


def read_table(file: Path) -> pd.DataFrame:
    """A CSV/TSV/parquet of path,label[,is_valid][,is_test]; paths relative to the table's folder. Returns items."""
    ext = file.suffix.lower()
    try:
        if ext in (".parquet", ".pq"):
            df = pd.read_parquet(file).astype(str)
        else:
            df = pd.read_csv(file, sep="\t" if ext == ".tsv" else ",", dtype=str, keep_default_na=False)
    except ImportError as e:
        raise ConfigError(f"dataset: reading {file} needs a parquet engine ({e}); `pip install pyarrow` or "
                          f"save the table as CSV") from None
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise ConfigError(f"dataset: cannot read {file}: {str(e).splitlines()[0]}") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = {"path", "label"} - set(df.columns)
    if missing:
        raise ConfigError(f"dataset: {file} needs columns path,label[,is_valid]; missing {', '.join(sorted(missing))} "
                          f"(found {', '.join(df.columns) or 'none'})")
    if df.empty:
        raise ConfigError(f"dataset: {file} has no rows")
    df = df[[c for c in ("path", "label", "is_valid", "is_test") if c in df.columns]].copy()
    for col in ("path", "label"):
        df[col] = df[col].str.strip()
        blank = df.index[df[col] == ""]
        if len(blank):
            raise ConfigError(f"dataset: {file} row {blank[0] + 2}: empty {col} ({len(blank)} such row(s))")
    root = file.parent.resolve()
    df["path"] = [Path(os.path.relpath(p, root)).as_posix() if os.path.isabs(p) else Path(p).as_posix()
                  for p in df["path"]]
    dup = df["path"][df["path"].duplicated()]
    if len(dup):
        raise ConfigError(f"dataset: {file} lists {dup.iloc[0]!r} more than once ({len(dup)} repeated path(s)); "
                          f"keep one row per image")
    for col in ("is_valid", "is_test"):
        if col in df.columns:
            low = df[col].str.strip().str.lower()
            bad = df.index[~low.isin(_TRUE | _FALSE)]
            if len(bad):
                raise ConfigError(f"dataset: {file} row {bad[0] + 2}: {col} {df[col][bad[0]]!r} is not "
                                  f"true/false/1/0")
            df[col] = low.isin(_TRUE)
    if {"is_valid", "is_test"} <= set(df.columns) and (both := df.index[df.is_valid & df.is_test]).size:
        raise ConfigError(f"dataset: {file} row {both[0] + 2}: an image is either for validation (is_valid) or for "
                          f"the test set (is_test), not both ({len(both)} such row(s))")
    return df.sort_values("path", ignore_index=True)


def fastai_urls() -> dict[str, str]:
    """fastai `URLs` datasets by lower-case archive stem (imagenette2-160) and attribute name (imagenette_160)."""
    from fastai.data.external import URLs
    out = {}
    for attr, url in vars(URLs).items():
        if isinstance(url, str) and url.startswith("http") and url.endswith((".tgz", ".tar.gz", ".zip")):
            out[_stem(url).lower()] = out[attr.lower()] = url
    return out


def _stem(url: str) -> str:
    name = url.rsplit("/", 1)[-1]
    for suffix in (".tar.gz", ".tgz", ".zip"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def fetch_fastai(name: str) -> tuple[str, Path] | None:
    """(dataset name, local folder) for a fastai `URLs` name, or None if `name` is not one. Offline it uses what is
    already in fastai's data folder (or an archive in its archive folder); online it calls `untar_data`."""
    url = fastai_urls().get(name.lower())
    if url is None:
        return None
    from fastai.data.external import fastai_path, untar_data
    stem = _stem(url)
    data, archive = fastai_path("data") / stem, fastai_path("archive") / url.rsplit("/", 1)[-1]
    if data.is_dir():
        return stem, data
    if archive.is_file():
        # the user's own copy: unpack it without fastai's checksum test, which would try to re-download
        from fastcore.xtras import untar_dir
        data.parent.mkdir(parents=True, exist_ok=True)
        return stem, Path(untar_dir(archive, data.parent, rename=True))
    how = (f"download {url} elsewhere and unpack it into {data.parent} (or copy the archive to {archive}), "
           f"or set FASTAI_HOME to where fastai keeps its data")
    from urllib.parse import urlparse
    if not online(urlparse(url).hostname or ""):
        raise ConfigError(f"dataset: fastai dataset {stem!r} is not in {data} and there is no network: {how}")
    try:
        return stem, Path(untar_data(url))
    except Exception as e:  # fastdownload raises bare Exceptions for network and checksum failures
        raise ConfigError(f"dataset: fetching {url} failed ({type(e).__name__}: {str(e)[:200]}): {how}") from None
