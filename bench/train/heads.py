"""Classifier heads on top of a body's feature map: fastai's automatic head (the article's main runs) and the
article's hand-built "manual" head. Both are the same layers; fastai's BatchNorms start with bias 1e-3 (fastai's
`BatchNorm`), the manual head's plain `nn.BatchNorm1d` with bias 0, so the two differ from the first epoch on."""
from __future__ import annotations

from torch import nn
from fastai.layers import AdaptiveConcatPool2d, Flatten
from fastai.vision.learner import create_head
from fastai.torch_core import apply_init


def fastai_head(nf: int, n_classes: int) -> nn.Sequential:
    """`cnn_learner(custom_head=None)`: concat-pool -> BN -> drop .25 -> Linear(2nf, 512) -> ReLU -> BN -> drop .5 ->
    Linear(512, n) (fastai doubles nf itself for its concat pool)."""
    return create_head(nf, n_classes)


def manual_head(nf: int, n_classes: int) -> nn.Sequential:
    """The article's manual head: fastai's layers built by hand, with plain nn.BatchNorm1d (no biases on the Linears:
    each is followed by BatchNorm or is the logit layer, as in create_head)."""
    return nn.Sequential(
        AdaptiveConcatPool2d(), Flatten(),
        nn.BatchNorm1d(2 * nf), nn.Dropout(0.25), nn.Linear(2 * nf, 512, bias=False), nn.ReLU(inplace=True),
        nn.BatchNorm1d(512), nn.Dropout(0.5), nn.Linear(512, n_classes, bias=False),
    )


HEADS = {"fastai": fastai_head, "manual": manual_head}


def make_head(kind: str, nf: int, n_classes: int) -> nn.Sequential:
    head = HEADS[kind](nf, n_classes)
    apply_init(head, nn.init.kaiming_normal_)  # what fastai's vision_learner does to a new head (BatchNorms untouched)
    return head
