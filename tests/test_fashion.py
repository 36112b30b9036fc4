"""IDX files and the fashion-mnist dataset, on IDX files the tests write (no dependency on the Debian package)."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from bench.config import ConfigError
from bench.data.idx import read_idx, write_idx


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    a = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    back = read_idx(write_idx(tmp_path / name, a))
    assert back.dtype == a.dtype and back.shape == (2, 3, 4) and (back == a).all()


def test_idx_reads_the_published_byte_layout(tmp_path):
    # written by hand as the format's page describes it: magic 0x00000801 (ubyte, 1 dim), 3 labels, big-endian
    (tmp_path / "labels").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 9, 0, 7]))
    assert read_idx(tmp_path / "labels").tolist() == [9, 0, 7]
    # int16 values are big-endian on disk: 0x0102 = 258
    (tmp_path / "shorts").write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 1, 1, 2]))
    assert read_idx(tmp_path / "shorts").tolist() == [258]
    # gzipped under a name without .gz (some mirrors do that): the magic decides
    (tmp_path / "zipped").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 1, 5])))
    assert read_idx(tmp_path / "zipped").tolist() == [5]


@pytest.mark.parametrize("content, message", [(b"", "not an IDX file"), (b"PK\x03\x04rest", "not an IDX file"),
                                              (bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2]), "header")])
def test_idx_rejects_what_is_not_idx(tmp_path, content, message):
    (tmp_path / "f").write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        read_idx(tmp_path / "f")


def fake_fashion(src, n_train=30, n_test=20, seed=0):
    """IDX files laid out as the Debian package's: every class present, each image's brightness its label."""
    rng = np.random.default_rng(seed)
    src.mkdir(parents=True, exist_ok=True)
    for stem_i, stem_l, n in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte", n_train),
                              ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        images = (labels[:, None, None] * 25 + rng.integers(0, 5, (n, 28, 28))).astype(np.uint8)
        write_idx(src / f"{stem_i}.gz", images)
        write_idx(src / f"{stem_l}.gz", labels)
    return src


def test_fashion_mnist_is_written_once_as_train_and_test_class_folders(tmp_path, monkeypatch):
    from PIL import Image

    from bench.data.dataset import resolve
    from bench.data.fashion import CLASSES, materialise_fashion_mnist
    monkeypatch.setenv("BENCH_FASHION_MNIST", str(fake_fashion(tmp_path / "idx")))
    name, kind, root, items, _, _ = resolve("fashion-mnist")
    assert name == "fashion-mnist" and (root / ".complete").exists()
    train, test = sorted((root / "train").rglob("*.png")), sorted((root / "test").rglob("*.png"))
    assert len(train) == 30 and len(test) == 20
    assert sorted(p.name for p in (root / "test").iterdir()) == sorted(CLASSES)
    labels = read_idx(tmp_path / "idx" / "t10k-labels-idx1-ubyte.gz")
    img = root / "test" / CLASSES[labels[7]] / "00007.png"  # the 8th test image, in its class's folder
    assert np.asarray(Image.open(img)).mean() == pytest.approx(labels[7] * 25 + 2, abs=1)
    stamp = img.stat().st_mtime_ns
    assert materialise_fashion_mnist() == root and img.stat().st_mtime_ns == stamp  # not written again


def test_missing_debian_package_is_one_line_naming_apt_get(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))  # not the dataset another test wrote
    monkeypatch.setenv("BENCH_FASHION_MNIST", str(tmp_path / "nothing-here"))
    rc = main(["run", "--dataset", "fashion-mnist", "--arch", "resnet18", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "apt-get install dataset-fashion-mnist" in err[0]
    assert not (tmp_path / "r").exists()
