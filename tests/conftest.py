"""Shared fixtures: every test runs offline, with its own cache and results folders and small generated images."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "bench-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch-home"))
    monkeypatch.setenv("BENCH_TOLD", "")  # dataset notes already said (bench.data.dataset.tell_once): none yet
    from bench.network import online
    online.cache_clear()


def make_image_folder(root: Path, n_classes: int = 3, per_class: int = 10, size: int = 24, seed: int = 0) -> Path:
    """Class folders of small RGB PNGs whose mean colour depends on the class (learnable in an epoch or two)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for c in range(n_classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.zeros((size, size, 3), np.float32)
            base[..., c % 3] = 200
            img = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"img_{i:03d}.png")
    return root


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "tiny")


@pytest.fixture
def results_dir(tmp_path) -> Path:
    return tmp_path / "results"


def tiny_config(dataset, results_dir, **kw):
    """The smallest real run: 32 px, 1+1 epochs, batch 8."""
    from bench.config import make_config
    base = dict(arch="resnet18", dataset=str(dataset), results_dir=str(results_dir), pretrained="false",
                img_size=32, item_size=32, batch_size=8, pct_images=1.0, head_epochs=1, ft_epochs=1,
                ft_lr_min=1e-4, ft_lr_max=1e-3)
    base.update(kw)
    return make_config(**base)
