"""Every registry entry: builds, cuts to a body that takes small images, gets a head with n_classes outputs, and
its parameter groups cover every parameter exactly once."""
from __future__ import annotations

import pytest
import torch

from bench.train.archs import REGISTRY, count_params_1k, get_arch
from bench.config import ConfigError, make_config
from bench.train.heads import HEADS, make_head
from bench.train.learner import num_features, param_groups

NAMES = sorted(REGISTRY) + ["timm:resnet10t"]

# Published parameter counts (library docs / papers) with a 1000-class head.
PUBLISHED = {"resnet18": 11_689_512, "resnet50": 25_557_032, "resnet152": 60_192_808,
             "seresnet50": 28_088_024, "resnext50_32x4d": 25_028_904, "tf_efficientnet_b3": 12_233_232}


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
    model = torch.nn.Sequential(body, make_head("custom", nf, 7)).eval()
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
    assert len(param_groups(model, spec, "custom")) == 3, "custom split is stem / rest of body / head"


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


def test_article_head_layout():
    head = make_head("custom", 32, 9)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["AdaptiveConcatPool2d", "Flatten", "BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d",
                     "Dropout", "Linear"]
    assert head[4].in_features == 64 and head[4].out_features == 512 and head[4].bias is None
    assert head[-1].out_features == 9 and head[-1].bias is None
    assert head[3].p == 0.25 and head[7].p == 0.5


def test_unknown_arch_suggests():
    with pytest.raises(ConfigError, match="resnet50"):
        get_arch("resnet5O")
    with pytest.raises(ConfigError, match="not a timm model"):
        get_arch("timm:definitely_not_a_model")


def test_config_accepts_every_registry_name():
    for name in REGISTRY:
        assert make_config(arch=name).arch == name
