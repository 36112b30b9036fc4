"""Fashion-MNIST (Xiao et al. 2017; MIT): 70,000 real 28x28 grey product photos, 10 classes, from the Debian package
`dataset-fashion-mnist` (IDX files). Written once as PNG class folders, `train/` (60,000) and `test/` (10,000), so it
takes the code path of a user's folder, and so a small world drawn from `train/` can share the one `test/` folder.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..config import ConfigError, cache_dir
from .idx import read_idx

PACKAGE = "dataset-fashion-mnist"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
# the dataset's own class names (label 0-9), spelt as folder names ("T-shirt/top" holds a slash)
CLASSES = ("tshirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_files(src: Path, split: str) -> tuple[Path, Path]:
    """(images, labels) of one split in `src`, gzipped or not; a missing file is one error naming the package."""
    found = []
    for stem in FILES[split]:
        hit = next((src / (stem + ext) for ext in (".gz", "") if (src / (stem + ext)).is_file()), None)
        if hit is None:
            raise ConfigError(f"dataset: fashion-mnist needs {src / stem}.gz (Debian package {PACKAGE}): run "
                              f"`apt-get install {PACKAGE}`, or set BENCH_FASHION_MNIST to a folder of its IDX files")
        found.append(hit)
    return found[0], found[1]


def load_split(src: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images n x 28 x 28 uint8, labels n) of `train` or `test`, checked against each other."""
    images, labels = (read_idx(p) for p in idx_files(src, split))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or labels.max() >= len(CLASSES):
        raise ConfigError(f"dataset: fashion-mnist {split} files in {src} do not match: images {images.shape}, "
                          f"labels {labels.shape} (values up to {labels.max()})")
    return images.astype(np.uint8), labels


def image_name(split: str, index: int, label: int) -> str:
    """The PNG's path inside the dataset: <split>/<class>/<index in the IDX file>.png, so a world drawn from it can
    name each image's origin."""
    return f"{split}/{CLASSES[label]}/{index:05d}.png"


def materialise_fashion_mnist(dest: Path | None = None, src: Path | None = None) -> Path:
    """Fashion-MNIST as grey PNGs in train/<class>/ and test/<class>/ folders, written once (atomically: an
    interrupted attempt leaves a hidden temp folder, never a half dataset)."""
    dest = dest or cache_dir() / "datasets" / "fashion-mnist"
    if (dest / ".complete").exists():
        return dest
    src = Path(src or os.environ.get("BENCH_FASHION_MNIST") or SYSTEM_DIR)
    from PIL import Image
    splits = {split: load_split(src, split) for split in FILES}  # every file read before anything is written
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fashion-mnist-", dir=dest.parent))
    for split, (images, labels) in splits.items():
        for c in CLASSES:
            (tmp / split / c).mkdir(parents=True)
        for i, (img, label) in enumerate(zip(images, labels)):
            Image.fromarray(img, mode="L").save(tmp / image_name(split, i, int(label)))
    (tmp / ".complete").touch()
    if dest.exists():  # an interrupted earlier attempt: replace it whole
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest
