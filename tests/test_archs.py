"""Every registry entry: builds, cuts to a body that takes small images, gets a head with n_classes outputs, and
its parameter groups cover every parameter exactly once. (Which parameters each group holds: test_fidelity.py.)"""
from __future__ import annotations

import pytest
import torch

from bench.train.archs import REGISTRY, count_params_1k, get_arch
from bench.config import ConfigError
from bench.train.heads import HEADS, make_head
from bench.train.learner import num_features, param_groups

NAMES = sorted(REGISTRY) + ["timm:resnet10t"]

# Published parameter counts (library docs / papers) with a 1000-class head.
PUBLISHED = {"resnet18": 11_689_512, "resnet50": 25_557_032, "resnet152": 60_192_808,
             "seresnet50": 28_088_024, "resnext50_32x4d": 25_028_904, "tf_efficientnet_b3": 12_233_232,
             # pytorchcv's model table (imgclsmob): the article's smaller and "b" SE-ResNets
             "seresnet10": 5_463_332, "seresnet18": 11_778_592, "seresnet26": 18_093_852,
             "seresnet50b": 28_088_024, "seresnet101b": 49_326_872}


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name):
        if name not in cache:
            spec = get_arch(name)
            torch.manual_seed(0)
            full = spec.build(False)
            n_full = sum(p.numel() for p in full.parameters())
            body = spec.body(full)
            cache[name] = (spec, n_full, body, num_features(body))
        return cache[name]
    return get


@pytest.mark.parametrize("name", NAMES)
def test_build_forward_and_groups(name, built):
    spec, n_full, body, nf = built(name)
    assert count_params_1k(spec) == n_full  # the meta-device count is the real one
    model = torch.nn.Sequential(body, make_head("fastai", nf, 7)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)
    all_ids = [id(p) for p in model.parameters()]
    for kind in ("default", "custom"):
        groups = param_groups(model, spec, kind)
        ids = [id(p) for g in groups for p in g]
        assert sorted(ids) == sorted(all_ids), f"{kind} split must cover each parameter exactly once"
        assert len(ids) == len(set(ids))
        assert [id(p) for p in groups[-1]] == [id(p) for p in model[1].parameters()], "last group is the head"
    assert len(param_groups(model, spec, "custom")) == 3, "custom split is stem + 2 stages / rest of body / head"


@pytest.mark.parametrize("name,count", sorted(PUBLISHED.items()))
def test_published_param_counts(name, count):
    assert count_params_1k(get_arch(name)) == count


def test_pytorchcv_body_takes_any_size(built):
    """The fixed AvgPool2d(7) is cut: 96 px (3x3 final map) must work."""
    _, _, body, _ = built("seresnet50")
    assert not any(isinstance(m, torch.nn.AvgPool2d) for m in body.modules())
    with torch.no_grad():
        assert body.eval()(torch.randn(1, 3, 96, 96)).shape[-1] == 3


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_heads(kind):
    head = make_head(kind, 64, 5)
    assert head.eval()(torch.randn(2, 64, 3, 3)).shape == (2, 5)


def test_manual_head_has_fastais_layers():
    """The article's manual head is create_head's layer stack built by hand: same types, shapes and dropout."""
    manual, auto = make_head("manual", 32, 9), make_head("fastai", 32, 9)
    kinds = [type(m).__name__ for m in manual]
    assert kinds == ["AdaptiveConcatPool2d", "Flatten", "BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d",
                     "Dropout", "Linear"]
    assert kinds == [type(m).__name__ for m in auto]
    assert {k: v.shape for k, v in manual.state_dict().items()} == {k: v.shape for k, v in auto.state_dict().items()}
    assert manual[4].in_features == 64 and manual[4].out_features == 512 and manual[4].bias is None
    assert manual[-1].out_features == 9 and manual[-1].bias is None
    assert [m.p for m in manual if isinstance(m, torch.nn.Dropout)] == [0.25, 0.5] == \
        [m.p for m in auto if isinstance(m, torch.nn.Dropout)]


def test_unknown_arch_suggests():
    with pytest.raises(ConfigError, match="resnet50"):
        get_arch("resnet5O")
    with pytest.raises(ConfigError, match="not a timm model"):
        get_arch("timm:definitely_not_a_model")


@pytest.mark.parametrize("arch", ["timm:mobilenetv3_small_100", "timm:lcnet_050"])
def test_timm_bodies_with_a_conv_head_get_the_head_they_feed(arch):
    """These models apply a 1x1 conv head after their stages: the head must be built for what the body really
    outputs (1024 / 1280 channels), not for timm's `num_features` (576 / 256), or training fails at once."""
    import torch
    from bench.config import make_config
    from bench.train.learner import build_model
    built = build_model(make_config(arch=arch, pretrained="false"), n_classes=3)
    built.model.train()
    assert built.model(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    assert built.nf == built.model[0](torch.randn(1, 3, 64, 64)).shape[1]
