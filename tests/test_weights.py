"""Pretrained loading from local files and warm caches, for one architecture of each source library, offline."""
from __future__ import annotations

import hashlib
import time
import warnings

import pytest
import torch

from bench.train.archs import get_arch
from bench.train.weights import WeightsError, cached_file, load_model, resolve_weights, weights_identity

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
    assert weights_identity(used) == f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
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


@pytest.mark.parametrize("name", ONE_PER_SOURCE)
def test_misfit_is_refused_before_training_for_every_library(name, tmp_path):
    """One wrong shape (a 10-class classifier) in an otherwise right state dict: refused by resolve_weights, which
    preparation calls, naming the tensor and both shapes; formerly torchvision/pytorchcv/geffnet/fastai files failed
    inside load_state_dict at training time."""
    spec = get_arch(name)
    sd = spec.build(False).state_dict()
    last = [k for k, v in sd.items() if v.ndim == 2][-1]  # the 1000-class classifier's weight
    sd[last] = torch.zeros(10, sd[last].shape[1])
    torch.save(sd, tmp_path / "w.pth")
    with pytest.raises(WeightsError, match=rf"1 shape mismatch\(es\): {last} 10x\d+ in file vs 1000x\d+ in model"):
        resolve_weights(spec, "true", str(tmp_path / "w.pth"))


def test_wrong_library_checkpoint_is_one_line_exit_2_and_nothing_written(tmp_path):
    """The new user's case: a timm EfficientNet checkpoint given to resnet18 (a torchvision body)."""
    import subprocess
    import sys
    torch.save(get_arch("timm:efficientnet_b0").build(False).state_dict(), tmp_path / "effnet.pth")
    results = tmp_path / "results"
    out = subprocess.run([sys.executable, "-m", "bench", "run", "--arch", "resnet18", "--weights",
                          str(tmp_path / "effnet.pth"), "--results-dir", str(results)], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if "Warning" not in line and "warnings.warn" not in line]
    assert len(lines) == 1 and "does not fit resnet18" in lines[0] and "missing key(s): conv1.weight" in lines[0]
    assert "unexpected: conv_stem.weight" in lines[0] and "Traceback" not in out.stderr
    assert not results.exists()


def test_folder_finds_the_bare_timm_name(tmp_path):
    spec = get_arch("timm:resnet10t")
    sd = _perturbed_state_dict(spec)
    torch.save(sd, tmp_path / "resnet10t.pth")
    model, _ = load_model(spec, "true", str(tmp_path))
    _assert_equal(model, sd)


def test_file_weights_are_identified_by_content(tmp_path):
    """Same bytes under another name: same identity; rewritten bytes under the same name: another (the hash cache is
    keyed by size and mtime, so it cannot serve a stale hash)."""
    import os
    spec = get_arch("resnet18")
    sd = spec.build(False).state_dict()
    torch.save(sd, tmp_path / "a.pth")
    (tmp_path / "b.pth").write_bytes((tmp_path / "a.pth").read_bytes())
    first = resolve_weights(spec, "auto", str(tmp_path / "a.pth"))
    assert first == resolve_weights(spec, "auto", str(tmp_path / "b.pth"))
    sd["fc.bias"] += 1
    torch.save(sd, tmp_path / "a.pth")
    os.utime(tmp_path / "a.pth", ns=(1, 1))
    second = resolve_weights(spec, "auto", str(tmp_path / "a.pth"))
    assert second != first and second == f"sha256:{hashlib.sha256((tmp_path / 'a.pth').read_bytes()).hexdigest()[:16]}"
