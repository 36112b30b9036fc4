"""IDX files (the MNIST family's format: Fashion-MNIST, MNIST, EMNIST), plain or gzipped, read with numpy alone.

Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of dimensions, one big-endian
uint32 per dimension, then the values in C order, big-endian.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..config import ConfigError

# type code -> big-endian numpy dtype
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path: Path):
    # the gzip magic, not the name, decides: Debian ships .gz, other mirrors unpack them under the same names
    with open(path, "rb") as f:
        zipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if zipped else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """The array an IDX file holds (native byte order). A file that is not IDX, or shorter than its header says,
    is a ConfigError naming it."""
    path = Path(path)
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ConfigError(f"IDX file {path}: cannot read it ({e})") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in DTYPES:
        raise ConfigError(f"IDX file {path}: not an IDX file (header {data[:4].hex() or 'empty'})")
    ndim = data[3]
    start = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:start], ">u4")) if len(data) >= start else ()
    dtype = np.dtype(DTYPES[data[2]])
    need = start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < start or len(data) != need:
        raise ConfigError(f"IDX file {path}: {len(data)} bytes, its header ({ndim} dims {shape}) says {need}")
    return np.frombuffer(data, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write `array` as an IDX file (gzipped when the name ends in .gz): the tests' fixtures, and a way to cut a
    small IDX set from a large one."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items()}
    array = np.asarray(array)
    if array.dtype not in codes:
        raise ValueError(f"IDX has no type for {array.dtype}")
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + body)
    return path
