"""Test-time augmentation: a model's predictions averaged over each image and its horizontal mirror.

``tta="flip"`` (``--tta flip``) scores the mean of the class *probabilities* on an image
and on its mirror, not the mean of the logits: the loss is the cross-entropy of that
mean, whether the network ends in a softmax or returns logits (training's cross-entropy
reads its output as logits either way, so the probabilities are their softmax).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import CnnlabError

TTA_MODES = ("flip",)


class AugmentationError(CnnlabError):
    """A test-time augmentation that does not exist, or that does not apply to the model's input."""


def mirror(images: torch.Tensor) -> torch.Tensor:
    """Images ``(N, C, H, W)`` flipped left to right (along the width W)."""
    return images.flip(-1)


class FlipAveraged(nn.Module):
    """``model`` seen through test-time augmentation: each batch scored as itself and as its mirror.

    ``forward`` returns the log of the mean of the two views' softmax probabilities: a
    normalised log-probability, so cross-entropy on it (which applies log-softmax, here a
    no-op) is the cross-entropy of the mean probabilities, and its argmax their argmax.
    The two views run as two forwards of the same batch (no doubled memory).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        views = (self.model(images).float(), self.model(mirror(images)).float())
        # log((p1 + p2) / 2) from log-probabilities: no log(0) where a probability underflows.
        log_probs = torch.stack([F.log_softmax(view, dim=1) for view in views])
        return torch.logsumexp(log_probs, dim=0) - math.log(2)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """The mean of what the model's ``probabilities`` gives for the two views."""
        return (self.model.probabilities(images).float() + self.model.probabilities(mirror(images)).float()) / 2


def check_tta(tta: str | None, input_shape: tuple[int, ...]) -> None:
    """Refuse an unknown augmentation, or ``flip`` for a model whose input is not an image ``(H, W, C)``."""
    if tta is None:
        return
    if not isinstance(tta, str) or tta not in TTA_MODES:
        raise AugmentationError(f"unknown tta {tta!r}; expected {', '.join(TTA_MODES)} (or none)"[:200])
    if len(input_shape) != 3:
        raise AugmentationError(f"tta 'flip' mirrors images: it needs a model whose input is an image "
                                f"(height, width, channels), not {tuple(input_shape)}")


def with_tta(model: nn.Module, tta: str | None) -> nn.Module:
    """``model`` itself without augmentation (``tta=None``), else it wrapped to average the views."""
    check_tta(tta, tuple(model.info.input_shape))
    return model if tta is None else FlipAveraged(model)
