"""The pre-resized cache (fastai's "presizing": resize once on the CPU, augment on the batch) and the image type that
reads it.

Each image is decoded, converted to RGB and shrunk to shorter side = item_size once, stored as a raw uint8 array
keyed by (content hash, size). Keying by content instead of by dataset means every architecture, subsample and
dataset version shares the entries, a changed file gets a new entry automatically, and concurrent runs can fill the
cache without a lock (same key = same bytes, written by atomic rename). Shorter side = item_size loses nothing the
pipeline uses: RandomResizedCrop(item_size) is followed by a batch resize down to img_size < item_size.
"""
from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from fastai.vision.core import PILImage
from PIL import Image
from torch.utils.data import get_worker_info

from ..config import ConfigError, cache_dir
from .images import open_rgb, shrink
from .scan import inspect

CACHE_VERSION = 1  # bump when the resize changes, so older entries are not mixed in


def cache_folder(size: int) -> Path:
    return cache_dir() / "presized" / f"v{CACHE_VERSION}-s{size}"


def entry(folder: Path, sha: str) -> Path:
    return folder / sha[:2] / f"{sha}.npy"


def _build(src: Path, dst: Path, size: int) -> None:
    arr = np.asarray(shrink(open_rgb(src, min_short=size), size))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, dst)


def presized_files(root: Path, rel_paths, size: int) -> list[str]:
    """Cache file for each path (building the missing ones, with a progress bar), in the order given."""
    root = Path(root)
    rel_paths = list(rel_paths)
    scanned = inspect(root, rel_paths, desc="hashing").set_index("path")
    bad = scanned[scanned["problem"] != ""]
    if len(bad):
        raise ConfigError(f"dataset: {root / bad.index[0]} changed since the scan and is now unusable "
                          f"({bad['problem'].iloc[0]}); run again so the dataset is rescanned")
    folder = cache_folder(size)
    files = [entry(folder, sha) for sha in scanned.loc[rel_paths, "sha"]]
    todo = {dst: root / rel for rel, dst in zip(rel_paths, files) if not dst.exists()}
    if todo:
        from tqdm.auto import tqdm
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as ex:  # PIL decode and resize release the GIL
            jobs = ex.map(lambda kv: _build(kv[1], kv[0], size), todo.items())
            for _ in tqdm(jobs, total=len(todo), desc=f"bench: pre-resizing to {size}px", unit="img",
                          file=sys.stderr, disable=None, leave=False):
                pass
    return [str(f) for f in files]


# Cache entries already read by this process, so that epochs after the first open none of them again: np.load costs
# ~0.2 ms an entry (mostly parsing its header), a few times what the image is; the quick run's 1,797 digits read 5
# times make 1.5 s of its 24 s. Same bytes, same numbers. Bounded: entries past MEMO_BYTES are read from disk every
# time as before; DataLoader worker processes (CUDA) keep none, or each of them would hold its own copy.
MEMO_BYTES = 1 << 30
_memo: dict[str, np.ndarray] = {}
_memo_size = [0]


def load_entry(fn: str) -> np.ndarray:
    arr = _memo.get(fn)
    if arr is None:
        arr = np.load(fn)
        if _memo_size[0] + arr.nbytes <= MEMO_BYTES and get_worker_info() is None:
            arr.flags.writeable = False  # shared by every epoch: nothing may write it (PIL copies RGB pixels)
            _memo[fn], _memo_size[0] = arr, _memo_size[0] + arr.nbytes
    return arr


class RGBImage(PILImage):
    """fastai's PILImage, opened through bench.data.images (16-bit, alpha, CMYK and EXIF handled) or from the cache."""

    @classmethod
    def create(cls, fn, **kwargs):
        if isinstance(fn, (str, Path)):
            fn = str(fn)
            return cls(Image.fromarray(load_entry(fn)) if fn.endswith(".npy") else open_rgb(fn))
        return super().create(fn, **kwargs)
