"""The deterministic learner factory: seed -> data -> body + head -> parameter groups -> fastai Learner.

Order matters: everything that draws random numbers (DataLoader RNGs, head init, dropout) happens after `seed_all`, in
the same order every time, so two runs with the same seed on the CPU give identical numbers.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from .archs import ArchSpec, arch_for
from ..config import ConfigError, RunConfig
from .fastpath import memory_format
from .heads import make_head
from .realise import resolve_device
from .weights import load_model


def seed_all(seed: int) -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required for deterministic cuBLAS
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # warn_only: a few CUDA kernels (e.g. adaptive pooling backward) have no deterministic version; we warn rather
    # than refuse to train. On the CPU every op used here is deterministic.
    torch.use_deterministic_algorithms(True, warn_only=True)


def check_device(name: str) -> torch.device:
    """`name` resolved, or a ConfigError when it is not a device this machine has."""
    try:
        device = resolve_device(name)
    except RuntimeError:
        raise ConfigError(f"device: {name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but no CUDA device is available (use --device cpu)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device: {name!r}: bench trains on cpu or cuda")
    return device


def num_features(body: nn.Module) -> int:
    if not isinstance(body, nn.Sequential):
        # a timm body's `num_features` is what forward_features gives; models with a conv head after the stages
        # (mobilenetv3, lcnet, ghostnet) give more, so the output of a small dummy batch decides
        from fastai.callback.hook import dummy_eval
        return dummy_eval(body, (64, 64)).shape[1]
    # deferred: the sweep's planner imports this module (check_device) without fastai
    from fastai.vision.learner import num_features_model
    return num_features_model(body)


def param_groups(model: nn.Sequential, spec: ArchSpec, kind: str) -> list[list[nn.Parameter]]:
    """The Learner's splitter: the body's groups under `kind` (`default`: fastai's split, `custom`: the author's;
    see bench.train.archs), then the head. Empty groups are dropped (a body too small to split)."""
    groups = [list(g.values()) for g in spec.split(kind)(model[0])] + [list(model[1].parameters())]
    return [g for g in groups if g]


def effective_top_k(top_k: int, n_classes: int) -> int:
    """top-5 of a 3-class problem is undefined (and trivially 1): cap k at n_classes - 1, at least 1."""
    return max(1, min(top_k, n_classes - 1))


@dataclass
class Built:
    model: nn.Sequential
    spec: ArchSpec
    weights_used: str
    nf: int


def build_model(cfg: RunConfig, n_classes: int) -> Built:
    spec = arch_for(cfg.arch, cfg.activation, cfg.self_attention)
    full, used = load_model(spec, cfg.pretrained, cfg.weights)
    body = spec.body(full)
    nf = num_features(body)
    return Built(nn.Sequential(body, make_head(cfg.head, nf, n_classes)), spec, used, nf)


def make_learner(cfg: RunConfig, dls, built: Built, cbs=()):
    # deferred: the sweep's planner imports this module (check_device) without fastai
    from fastai.metrics import accuracy, top_k_accuracy
    from fastai.optimizer import Adam
    from fastai.vision.all import Learner
    opt = partial(Adam, mom=cfg.adam_mom, sqr_mom=cfg.sqr_mom, eps=cfg.eps, wd=cfg.wd, decouple_wd=True)
    k = effective_top_k(cfg.top_k, len(dls.vocab))
    top_k = partial(top_k_accuracy, k=k)
    top_k.__name__ = "top_k_accuracy"  # fastai names metric columns after the function
    learn = Learner(dls, built.model, opt_func=opt, metrics=[accuracy, top_k], loss_func=loss_function(cfg.loss),
                    splitter=partial(param_groups, spec=built.spec, kind=cfg.layer_groups), cbs=list(cbs),
                    train_bn=True)  # as the article ran: BatchNorm keeps training while the body is frozen
    # recorded in every row
    learn.memory_format = memory_format(cfg.channels_last, resolve_device(cfg.device), cfg.img_size)
    if learn.memory_format == "channels_last":
        # deferred: the sweep's planner imports this module (check_device) without fastai
        from fastai.callback.channelslast import ChannelsLast
        learn.add_cb(ChannelsLast())
    if cfg.precision != "fp32":
        learn.add_cb(device_mixed_precision(cfg.precision))
    return learn


def loss_function(kind: str):
    """None = fastai's default for the labels (CrossEntropyLossFlat from the DataBlock's CategoryBlock, as the article's
    main runs); label_smoothing = fastai's LabelSmoothingCrossEntropy (eps 0.1), the article's SOTA xResNet."""
    if kind == "label_smoothing":
        # deferred: the sweep's planner imports this module (check_device) without fastai
        from fastai.losses import LabelSmoothingCrossEntropy
        return LabelSmoothingCrossEntropy()
    return None


def device_mixed_precision(amp_mode: str):
    """fastai's MixedPrecision on the device the model is on. fastai 2.8 hard-codes autocast('cuda'), so on a CPU
    `precision=bf16` silently trained in fp32 (measured: autocast off, fp32 logits); this autocasts on the model's
    device type instead, with a GradScaler only for fp16 (bf16 has fp32's range), exactly as fastai does on CUDA."""
    import torch  # deferred: the sweep's planner imports this module (check_device) without fastai
    from fastai.callback.fp16 import MixedPrecision
    from torch.amp import GradScaler, autocast

    class DeviceMixedPrecision(MixedPrecision):
        def before_fit(self):
            dev = next(self.model.parameters()).device.type  # TrainEvalCallback (order -10) has moved the model
            if dev == "cuda":
                return super().before_fit()
            dtype = torch.bfloat16 if self.amp_mode.value == "bf16" else torch.float16
            self.kwargs["enabled"] = dtype == torch.float16
            self.autocast = autocast(dev, dtype=dtype)
            self.learn.scaler, self.scales = GradScaler(dev, **self.kwargs), []

    return DeviceMixedPrecision(amp_mode=amp_mode)
