"""The architecture registry: name -> ArchSpec (family, library, how to build, where to cut, how to split).

Each library gets one small factory; the registry itself is a table of one-liners, as in fastai's xresnet.py. Every
builder returns the library's *full* ImageNet model (1000-class head) so parameter counts match published figures and
pretrained state dicts load strictly; `spec.body(model)` then cuts the pooling/classifier tail off.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from difflib import get_close_matches
from functools import partial
from typing import TYPE_CHECKING, Callable

from ..config import ConfigError

if TYPE_CHECKING:  # torch is imported where models are built: `bench list` reads the registry without it
    from torch import nn


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str                     # resnet | xresnet | seresnet | resnext | seresnext | efficientnet | timm
    source: str                     # torchvision | fastai | pytorchcv | geffnet | timm
    build: Callable[[bool], nn.Module]          # build(pretrained) -> full 1000-class model
    cut: Callable[[nn.Module], nn.Module]       # full model -> body (feature map out)
    stem: str | Callable[[nn.Module], str]      # regex over body parameter names: stem group (custom split)
    default_split: tuple[str, ...] = ()         # regexes: leading body groups of the library's own split
    weights_tag: str | None = "imagenet"        # what "pretrained" loads; None: the library has no such weights
    notes: str = ""

    def body(self, model: nn.Module) -> nn.Module:
        return self.cut(model)

    def stem_pattern(self, body: nn.Module) -> str:
        return self.stem(body) if callable(self.stem) else self.stem


REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"architecture {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def _children(model: nn.Module, stop: int) -> nn.Sequential:
    """Named children up to `stop` as a plain Sequential: keeps parameter names readable (`layer1.0.conv1`)."""
    from torch import nn
    return nn.Sequential(OrderedDict(list(model.named_children())[:stop]))


# --- torchvision ResNets: the article used IMAGENET1K_V1 (torchvision's default is V2 since 0.13)
TV_WEIGHTS = "IMAGENET1K_V1"


def _tv_build(name: str, pretrained: bool) -> nn.Module:
    import torchvision
    return torchvision.models.get_model(name, weights=TV_WEIGHTS if pretrained else None)


def tv_resnet(name: str) -> ArchSpec:
    # fastai's _resnet_split: (conv1..layer2) / (layer3, layer4) / head
    return ArchSpec(name, "resnet", "torchvision", partial(_tv_build, name), partial(_children, stop=-2),
                    stem=r"^(conv1|bn1)\.", default_split=(r"^(conv1|bn1|layer1|layer2)\.",),
                    weights_tag=TV_WEIGHTS)


# --- fastai xResNet: one checkpoint (xrn50_940.pth) exists, for xresnet50 only; fastai loads it with strict=False
# into every depth, which would silently leave most weights random, so other depths report "no weights".
def _xresnet_build(name: str, sa: bool, pretrained: bool) -> nn.Module:
    from fastai.vision.models import xresnet
    return getattr(xresnet, name)(pretrained=pretrained, sa=sa)


def fastai_xresnet(depth: int, sa: bool = False) -> ArchSpec:
    base = f"xresnet{depth}"
    name = base + ("_sa" if sa else "")
    has_weights = depth == 50 and not sa
    # fastai's _xresnet_split: stem (3 ConvLayers) / rest of body / head; body = model[:-4]
    return ArchSpec(name, "xresnet", "fastai", partial(_xresnet_build, base, sa), partial(_children, stop=-4),
                    stem=r"^[0-2]\.", default_split=(r"^[0-2]\.",),
                    weights_tag="xrn50_940" if has_weights else None,
                    notes="self-attention" if sa else "")


# --- pytorchcv: model = [features, output]; features ends in a fixed AvgPool2d(7) that breaks other sizes: cut it
def _ptcv_build(name: str, pretrained: bool) -> nn.Module:
    from pytorchcv.model_provider import get_model
    root = os.environ.get("PYTORCHCV_ROOT")  # pytorchcv's own default: ~/.torch/models
    return get_model(name, pretrained=pretrained, **({"root": root} if root else {}))


def _ptcv_body(model: nn.Module) -> nn.Sequential:
    return _children(model.features, stop=-1)


def pytorchcv(name: str, family: str) -> ArchSpec:
    # no fastai metadata for pytorchcv: fastai's default split is body / head
    return ArchSpec(name, family, "pytorchcv", partial(_ptcv_build, name), _ptcv_body, stem=r"^init_block\.")


# --- geffnet EfficientNets: the article's `as_sequential=True` layout. Built unsequenced first because geffnet's
# checkpoints (and users' copies of them) are keyed on that model; as_sequential() then happens in the cut, which
# drops its last four modules (pool, flatten, dropout, linear).
def _geffnet_build(name: str, drop_rate: float, pretrained: bool) -> nn.Module:
    import geffnet
    return geffnet.create_model(name, pretrained=pretrained, drop_rate=drop_rate, drop_connect_rate=0.2)


def _geffnet_body(model: nn.Module) -> nn.Sequential:
    return _children(model.as_sequential(), stop=-4)


def geffnet_effnet(name: str, drop_rate: float) -> ArchSpec:
    return ArchSpec(name, "efficientnet", "geffnet", partial(_geffnet_build, name, drop_rate), _geffnet_body,
                    stem=r"^[01]\.", notes=f"drop_rate={drop_rate}, drop_connect_rate=0.2")


# --- timm, for anything nobody registered: `timm:<model name>`
def _timm_build(name: str, pretrained: bool) -> nn.Module:
    import timm
    return timm.create_model(name, pretrained=pretrained)


def _timm_body(model: nn.Module) -> nn.Module:
    model.reset_classifier(0, global_pool="")  # leaves the feature map: our head pools it
    return model


def _timm_stem(body: nn.Module) -> str:
    matcher = body.group_matcher(coarse=True) if hasattr(body, "group_matcher") else {}
    stem = matcher.get("stem") if isinstance(matcher, dict) else None
    if isinstance(stem, str):
        return stem
    first = next(n for n, _ in body.named_parameters()).split(".")[0]
    return rf"^{re.escape(first)}\."


def timm_arch(name: str) -> ArchSpec:
    return ArchSpec(f"timm:{name}", "timm", "timm", partial(_timm_build, name), _timm_body, stem=_timm_stem)


for _spec in [
    *(tv_resnet(f"resnet{d}") for d in (18, 34, 50, 101, 152)),
    *(fastai_xresnet(d) for d in (18, 34, 50, 101, 152)),
    *(fastai_xresnet(d, sa=True) for d in (18, 34, 50, 101, 152)),
    pytorchcv("seresnet50", "seresnet"), pytorchcv("seresnet101", "seresnet"), pytorchcv("seresnet152", "seresnet"),
    pytorchcv("resnext50_32x4d", "resnext"), pytorchcv("resnext101_32x4d", "resnext"),
    pytorchcv("seresnext50_32x4d", "seresnext"), pytorchcv("seresnext101_32x4d", "seresnext"),
    *(geffnet_effnet(f"tf_efficientnet_{b}{ns}", dr) for b, dr in (("b3", .3), ("b5", .4), ("b7", .5))
      for ns in ("", "_ns")),
]:
    register(_spec)


def get_arch(name: str) -> ArchSpec:
    """Registry lookup; `timm:<name>` for any timm model. Unknown names: ConfigError with the closest names."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("timm:"):
        import timm
        tname = name[len("timm:"):]
        if not timm.is_model(tname):
            close = get_close_matches(tname, timm.list_models(), n=3)
            raise ConfigError(f"arch: {tname!r} is not a timm model" +
                              (f" (closest: {', '.join('timm:' + c for c in close)})" if close else ""))
        return timm_arch(tname)
    close = get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
    hint = f"closest: {', '.join(close)}; " if close else ""
    raise ConfigError(f"arch: unknown architecture {name!r} ({hint}`bench list` shows all; any timm model works "
                      f"as timm:<name>)")


def count_params_1k(spec: ArchSpec) -> int:
    """Parameter count of the library's full 1000-class model, built on the meta device (no memory, no init cost)."""
    import torch
    with torch.device("meta"):
        model = spec.build(False)
    return sum(p.numel() for p in model.parameters())
