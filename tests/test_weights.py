"""Pretrained loading from local files and warm caches, for one architecture of each source library, offline."""
from __future__ import annotations

import hashlib
import time
import warnings

import pytest
import torch

from bench.train.archs import get_arch
from bench.train.weights import WeightsError, cached_file, load_model, resolve_weights, stable_label

ONE_PER_SOURCE = ["resnet18", "xresnet18", "seresnext50_32x4d", "tf_efficientnet_b3", "timm:resnet10t"]


def _perturbed_state_dict(spec):
    torch.manual_seed(123)
    model = spec.build(False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model.state_dict()


def _assert_equal(model, sd):
    got = model.state_dict()
    assert set(got) == set(sd)
    assert all(torch.equal(got[k], sd[k]) for k in sd)


@pytest.mark.parametrize("name", ONE_PER_SOURCE)
def test_local_file_is_loaded(name, tmp_path):
    spec = get_arch(name)
    sd = _perturbed_state_dict(spec)
    path = tmp_path / "w.pth"
    torch.save({"model": sd}, path)  # a wrapped checkpoint, as fastai saves them
    model, used = load_model(spec, "true", str(path))
    _assert_equal(model, sd)
    assert used == f"{resolve_weights(spec, 'true', str(path))} (file {path.resolve()})"
    assert stable_label(used) == f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    # a folder holding <arch>.pth works too
    torch.save(sd, tmp_path / f"{name.replace(':', '_')}.pth")
    model, _ = load_model(spec, "true", str(tmp_path))
    _assert_equal(model, sd)


def test_wrong_file_is_a_clear_error(tmp_path):
    torch.save(get_arch("resnet18").build(False).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match="does not fit resnet34"):
        load_model(get_arch("resnet34"), "true", str(tmp_path / "r18.pth"))
    with pytest.raises(WeightsError, match="no file for resnet34"):
        load_model(get_arch("resnet34"), "true", str(tmp_path))


@pytest.mark.parametrize("name", ["resnet18", "xresnet50", "tf_efficientnet_b3"])
def test_warm_torch_hub_cache_is_used_offline(name, tmp_path, monkeypatch):
    """torchvision, fastai and geffnet read $TORCH_HOME/hub/checkpoints/<url basename> before downloading."""
    from bench.train.weights import CACHES
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # its own cache: other tests fill the shared one
    spec = get_arch(name)
    assert cached_file(spec) is None
    sd = _perturbed_state_dict(spec)
    path = CACHES[spec.source][0](spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": sd} if spec.source == "fastai" else sd, path)
    assert cached_file(spec) == path
    model, used = load_model(spec, "true")
    _assert_equal(model, sd)
    assert used.endswith("(cache)")


@pytest.mark.parametrize("name", ["resnet50", "seresnet50", "tf_efficientnet_b5_ns", "timm:resnet10t"])
def test_offline_without_cache_fails_fast(name):
    spec = get_arch(name)
    t0 = time.perf_counter()
    with pytest.raises(WeightsError, match="unreachable|no cached"):
        load_model(spec, "true")
    assert time.perf_counter() - t0 < 30, "must not sit in a library's retry loop"  # generous: build time only
    with pytest.warns(UserWarning, match="random init"):
        model, used = load_model(spec, "auto")
    assert used == "random"


def test_no_published_weights_is_said():
    with pytest.raises(WeightsError, match="publishes no ImageNet weights for xresnet18"):
        load_model(get_arch("xresnet18"), "true")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_model(get_arch("xresnet18"), "false")[1] == "random"
