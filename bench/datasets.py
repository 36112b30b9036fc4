"""Dataset sources -> a `Dataset` (root + sorted item table), and the content fingerprint.

Sources: a folder of class subfolders, or the embedded default (scikit-learn's handwritten digits, materialised once
as such a folder, so it goes through the same code path as a user's folder).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import ConfigError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def cache_dir() -> Path:
    """Where materialised datasets, fingerprints and resized images live (BENCH_CACHE overrides)."""
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")).expanduser()


@dataclass
class Dataset:
    name: str
    root: Path
    items: pd.DataFrame      # columns: path (relative to root, posix), label; optional is_valid; sorted by path
    fingerprint: str = ""

    @property
    def classes(self) -> list[str]:
        return sorted(self.items["label"].unique())


# --- the embedded default
DIGITS_SIZE = 32  # px: the 8x8 originals upscaled so every profile's crop has something to cut from


def materialise_digits(dest: Path | None = None) -> Path:
    """scikit-learn's 1,797 real 8x8 digits as RGB PNGs in class folders, written once (atomically)."""
    dest = dest or cache_dir() / "datasets" / "digits"
    if (dest / ".complete").exists():
        return dest
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digits-", dir=dest.parent))
    for i, (img, target) in enumerate(zip(digits.images, digits.target)):
        folder = tmp / str(target)
        folder.mkdir(exist_ok=True)
        pixels = (img * (255.0 / 16.0)).astype("uint8")
        Image.fromarray(pixels, mode="L").resize((DIGITS_SIZE, DIGITS_SIZE), Image.BILINEAR) \
            .convert("RGB").save(folder / f"{i:04d}.png")
    (tmp / ".complete").touch()
    if dest.exists():  # an interrupted earlier attempt: replace it whole
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


EMBEDDED = {"digits": materialise_digits}


# --- folders
def scan_folder(root: Path) -> pd.DataFrame:
    """Image files under class subfolders (nested allowed: the label is the top-level folder). Hidden files and
    folders are ignored; symlinked folders are followed once (no loops)."""
    rows, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            continue  # files directly under root have no class
        for fn in sorted(filenames):
            if fn.startswith(".") or Path(fn).suffix.lower() not in IMAGE_EXTS:
                continue
            rows.append(((rel_dir / fn).as_posix(), rel_dir.parts[0]))
    return pd.DataFrame(rows, columns=["path", "label"]).sort_values("path", ignore_index=True)


def load_dataset(spec: str) -> Dataset:
    """A registered embedded name or a folder path -> Dataset with its fingerprint."""
    if spec in EMBEDDED:
        root, name = EMBEDDED[spec](), spec
    else:
        root = Path(spec).expanduser()
        if not root.exists():
            raise ConfigError(f"dataset: {spec!r} is neither a known dataset ({', '.join(EMBEDDED)}) nor an "
                              f"existing path")
        if not root.is_dir():
            raise ConfigError(f"dataset: {root} is a file; give a folder of class subfolders")
        name = root.resolve().name
    items = scan_folder(root)
    if items.empty:
        raise ConfigError(f"dataset: no images found under {root} (expected <root>/<class>/<image>)")
    return Dataset(name, root, items, fingerprint(root, items["path"]))


# --- fingerprint: content hashes, cached per file by (size, mtime) so re-runs only hash what changed
def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(root: Path, rel_paths) -> str:
    cache_file = cache_dir() / "fingerprints" / (hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
                                                 + ".json")
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    total, fresh = hashlib.sha256(), {}
    for rel in rel_paths:
        st = (root / rel).stat()
        key = [st.st_size, st.st_mtime_ns]
        hit = cache.get(rel)
        digest = hit[2] if hit and hit[:2] == key else _file_hash(root / rel)
        fresh[rel] = key + [digest]
        total.update(f"{rel}\t{st.st_size}\t{digest}\n".encode())
    if fresh != cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(fresh))
        os.replace(tmp, cache_file)
    return total.hexdigest()[:16]
