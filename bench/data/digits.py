"""The embedded default dataset: scikit-learn's 1,797 real handwritten digits, written once as a PNG class folder so
it takes exactly the code path of a user's folder."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..config import cache_dir
from .fashion import materialise_fashion_mnist

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


# name -> writer of the class folders; fashion-mnist comes from a Debian package, not from inside bench
EMBEDDED = {"digits": materialise_digits, "fashion-mnist": materialise_fashion_mnist}
