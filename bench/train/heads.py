"""Classifier heads: the article's custom head and fastai's default head, both on top of a body's feature map."""
from __future__ import annotations

from torch import nn
from fastai.layers import AdaptiveConcatPool2d, Flatten
from fastai.vision.learner import create_head
from fastai.torch_core import apply_init


def article_head(nf: int, n_classes: int) -> nn.Sequential:
    """The article's head: concat-pool -> BN -> drop .25 -> 512 -> ReLU -> BN -> drop .5 -> n_classes (no biases:
    each Linear is followed by BatchNorm or is the logit layer, as in the article)."""
    return nn.Sequential(
        AdaptiveConcatPool2d(), Flatten(),
        nn.BatchNorm1d(2 * nf), nn.Dropout(0.25), nn.Linear(2 * nf, 512, bias=False), nn.ReLU(inplace=True),
        nn.BatchNorm1d(512), nn.Dropout(0.5), nn.Linear(512, n_classes, bias=False),
    )


def fastai_head(nf: int, n_classes: int) -> nn.Sequential:
    return create_head(nf, n_classes)  # fastai doubles nf itself for its concat pool


HEADS = {"custom": article_head, "fastai": fastai_head}


def make_head(kind: str, nf: int, n_classes: int) -> nn.Sequential:
    head = HEADS[kind](nf, n_classes)
    apply_init(head, nn.init.kaiming_normal_)  # what fastai's vision_learner does to a new head
    return head
