"""The validation scan: every file hashed and fully decoded once per content version, the dataset fingerprint, the
duplicate groups and the bad-file report.

Results are cached per file by (size, mtime): a re-run only re-reads files that changed, so "once per dataset
version" costs a stat per file afterwards.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from ..config import cache_dir
from ..console import progress
from ..files import atomic_write

SCAN_VERSION = 1  # bump when the checks change, so cached verdicts are redone
COLUMNS = ["path", "size", "sha", "problem", "mode", "width", "height"]


def _inspect_one(path: Path) -> list:
    """[sha, problem, mode, width, height] for one file; problem is "" when the file decodes."""
    from PIL import Image, UnidentifiedImageError
    from .images import to_rgb
    try:
        data = path.read_bytes()
    except OSError as e:
        return ["", f"unreadable: {e.strerror or e}", "", 0, 0]
    sha = hashlib.sha256(data).hexdigest()
    if not data:
        return [sha, "empty file (0 bytes)", "", 0, 0]
    try:
        with Image.open(io.BytesIO(data)) as im:
            mode, (w, h) = im.mode, im.size
            im.load()
            to_rgb(im)
        return [sha, "", mode, w, h]
    except UnidentifiedImageError:
        return [sha, "not an image (no decoder recognises the content)", "", 0, 0]
    except Image.DecompressionBombError as e:
        return [sha, f"too large to decode safely: {e}", "", 0, 0]
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        kind = "truncated" if "truncated" in msg.lower() else "corrupt"
        return [sha, f"{kind}: {msg}", "", 0, 0]


def inspect(root: Path, rel_paths, desc: str = "scan") -> pd.DataFrame:
    """One row per path (COLUMNS): content hash and decode verdict, from the cache when size and mtime match."""
    root = Path(root)
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    cache_file = cache_dir() / "scans" / f"{key}.v{SCAN_VERSION}.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    records, todo = {}, []
    for rel in rel_paths:
        try:
            st = (root / rel).stat()
        except OSError as e:  # a broken symlink or a path listed in a table that does not exist
            records[rel] = [0, 0, "", f"missing: {e.strerror or e}", "", 0, 0]
            continue
        stamp = [st.st_size, st.st_mtime_ns]
        hit = cache.get(rel)
        if hit and hit[:2] == stamp:
            records[rel] = hit
        else:
            todo.append((rel, stamp))
    if todo:
        workers = min(8, os.cpu_count() or 1)  # hashing and decoding release the GIL
        # PIL warns on odd metadata; the decode is what decides. Silenced here, in the calling thread, for as long
        # as the workers run: catch_warnings inside the workers is not thread-safe (overlapping enters and exits
        # left "ignore everything" installed for the rest of the process, hiding later warnings).
        with warnings.catch_warnings(), ThreadPoolExecutor(workers) as ex:
            warnings.simplefilter("ignore")
            results = ex.map(lambda t: t[1] + _inspect_one(root / t[0]), todo)
            for (rel, _), rec in zip(todo, progress(results, len(todo), f"bench: {desc}")):
                records[rel] = cache[rel] = rec
        atomic_write(cache_file, json.dumps(cache).encode())
    rows = [[rel, r[0]] + r[2:] for rel, r in records.items()]
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("path", ignore_index=True)


def fingerprint_of(scanned: pd.DataFrame, extra: str = "") -> str:
    """16 hex chars over every path, size and content hash (and `extra`, e.g. a table's labels)."""
    total = hashlib.sha256()
    for rel, size, sha in scanned[["path", "size", "sha"]].itertuples(index=False):
        total.update(f"{rel}\t{size}\t{sha}\n".encode())
    total.update(extra.encode())
    return total.hexdigest()[:16]


def duplicates(items: pd.DataFrame) -> pd.DataFrame:
    """Exact copies (same content hash): each later copy with the first path of its group (sorted order)."""
    dup = items[items.duplicated("sha", keep=False)].sort_values("path")
    if dup.empty:
        return pd.DataFrame(columns=["path", "label", "duplicate_of", "label_of_first"])
    first = dup.drop_duplicates("sha").set_index("sha")
    later = dup[dup.duplicated("sha", keep="first")]
    return pd.DataFrame({"path": later["path"].values, "label": later["label"].values,
                         "duplicate_of": first.loc[later["sha"], "path"].values,
                         "label_of_first": first.loc[later["sha"], "label"].values})


def write_report(folder: Path, bad: pd.DataFrame, dups: pd.DataFrame, summary: dict) -> None:
    """bad_images.csv, duplicates.csv and scan.json next to the dataset's results; rewritten every time (even when
    empty) so a report never describes an older version of the data."""
    folder = Path(folder)
    atomic_write(folder / "bad_images.csv", bad.to_csv(index=False).encode())
    atomic_write(folder / "duplicates.csv", dups.to_csv(index=False).encode())
    atomic_write(folder / "scan.json", json.dumps(summary, indent=1, sort_keys=True).encode())
