"""The memo of pre-resized cache entries (bench.data.presize.load_entry): epochs after the first read no file again,
and nothing about the images changes — the same batches as reading every entry from disk, entries it holds cannot
be written through an image, it stays within its budget, and DataLoader worker processes keep none."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data import presize
from bench.data.dataset import load_dataset
from bench.data.loaders import make_dls
from bench.data.split import load_or_make_split, subsample
from conftest import make_image_folder, tiny_config


@pytest.fixture
def entries(tmp_path):
    root = make_image_folder(tmp_path / "ds", n_classes=3, per_class=6, size=40)
    cfg = tiny_config(root, tmp_path / "results", batch_size=4)
    ds = load_dataset(str(root))
    items = subsample(load_or_make_split(ds, cfg)[0], 1.0, 0)
    return cfg, ds, items, presize.presized_files(ds.root, items["path"], cfg.item_size)


@pytest.fixture
def empty_memo(monkeypatch):
    monkeypatch.setattr(presize, "_memo", {})
    monkeypatch.setattr(presize, "_memo_size", [0])


def epochs_of_batches(cfg, ds, items, n_epochs=2):
    from bench.train.learner import seed_all
    seed_all(0)
    dls = make_dls(cfg, ds.root, items, device="cpu")
    return [[tuple(t.clone() for t in b) for b in loader] for _ in range(n_epochs) for loader in (dls.train, dls.valid)]


def test_the_memo_gives_the_batches_of_reading_every_entry_from_disk(entries, empty_memo, monkeypatch):
    cfg, ds, items, files = entries
    memo = epochs_of_batches(cfg, ds, items)
    assert set(presize._memo) == set(files)  # every entry read once, then served from memory
    monkeypatch.setattr(presize, "_memo", {})
    monkeypatch.setattr(presize, "MEMO_BYTES", 0)  # nothing kept: every read from disk
    disk = epochs_of_batches(cfg, ds, items)
    assert presize._memo == {}
    for a, b in zip(sum(memo, []), sum(disk, []), strict=True):
        assert all(bool((x == y).all()) for x, y in zip(a, b, strict=True))


def test_an_image_from_the_memo_cannot_change_it(entries, empty_memo):
    """Every epoch gets the same array: an in-place change to an image handed out must not reach it (PIL copies RGB
    pixels into its own storage; the array is also read-only for numpy)."""
    files = entries[-1]
    img = presize.RGBImage.create(files[0])
    kept = presize._memo[files[0]].copy()
    img.paste((255, 0, 0), (0, 0, 8, 8))  # an in-place PIL change on the image handed out
    assert np.array_equal(presize._memo[files[0]], kept)
    assert np.asarray(presize.RGBImage.create(files[0])).tolist() == kept.tolist()
    with pytest.raises(ValueError, match="read-only"):
        presize._memo[files[0]][0, 0] = 0


def test_the_memo_stays_within_its_budget(entries, empty_memo, monkeypatch):
    files = entries[-1]
    one = np.load(files[0]).nbytes
    monkeypatch.setattr(presize, "MEMO_BYTES", 2 * one + one // 2)
    for f in files:
        presize.load_entry(f)
    assert presize._memo_size[0] <= presize.MEMO_BYTES and 1 <= len(presize._memo) < len(files)
    assert presize._memo_size[0] == sum(a.nbytes for a in presize._memo.values())


class _Entries(torch.utils.data.Dataset):
    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        presize.load_entry(self.files[i])
        return len(presize._memo)  # as this process sees its memo


def test_dataloader_worker_processes_keep_no_memo(entries, empty_memo):
    files = entries[-1][:3]
    seen = list(torch.utils.data.DataLoader(_Entries(files), batch_size=None, num_workers=1))
    assert [int(n) for n in seen] == [0, 0, 0]
    assert presize._memo == {}  # nor did this process keep what its worker read
    assert [_Entries(files)[i] for i in range(3)] == [1, 2, 3]  # in this process the same reads are kept
