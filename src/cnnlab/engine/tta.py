"""Test-time augmentation: a model's predictions averaged over views of each image.

``tta="flip"`` (``--tta flip``) scores the mean of the class *probabilities* on an image
and on its mirror; ``tta="flip_translate"`` adds both of them shifted one pixel down-right
and one pixel up-left (reflected at the border, as training's ``random_translation`` with
``fill_mode: reflect`` fills): six views, each weighing the same. The mean is of the
probabilities, not of the logits: the loss is the cross-entropy of that mean, whether the
network ends in a softmax or returns logits (training's cross-entropy reads its output as
logits either way, so the probabilities are their softmax).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import CnnlabError

TTA_MODES = ("flip", "flip_translate")


class AugmentationError(CnnlabError):
    """A test-time augmentation that does not exist, or that does not apply to the model's input."""


def mirror(images: torch.Tensor) -> torch.Tensor:
    """Images ``(N, C, H, W)`` flipped left to right (along the width W)."""
    return images.flip(-1)


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images ``(N, C, H, W)`` moved ``dy`` pixels down and ``dx`` right, the border reflected."""
    pad = max(abs(dy), abs(dx))
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")  # (N, C, H + 2p, W + 2p)
    height, width = images.shape[-2:]
    return padded[..., pad - dy:pad - dy + height, pad - dx:pad - dx + width]


def views(tta: str) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The transformations whose predictions a mode averages (the identity first)."""
    flips = [lambda x: x, mirror]
    if tta == "flip":
        return flips
    return flips + [lambda x, f=f, d=d: shifted(f(x), d, d) for d in (1, -1) for f in flips]


class ViewAveraged(nn.Module):
    """``model`` seen through test-time augmentation: each batch scored as the mean over its views.

    ``forward`` returns the log of the mean of the views' softmax probabilities: a
    normalised log-probability, so cross-entropy on it (which applies log-softmax, here a
    no-op) is the cross-entropy of the mean probabilities, and its argmax their argmax.
    The views run as separate forwards of the same batch (no multiplied memory).
    """

    def __init__(self, model: nn.Module, tta: str = "flip"):
        super().__init__()
        self.model, self.views = model, views(tta)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # log(mean p) from log-probabilities: no log(0) where a probability underflows.
        log_probs = torch.stack([F.log_softmax(self.model(view(images)).float(), dim=1) for view in self.views])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.views))

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """The mean of what the model's ``probabilities`` gives for the views."""
        return sum(self.model.probabilities(view(images)).float() for view in self.views) / len(self.views)


def check_tta(tta: str | None, input_shape: tuple[int, ...]) -> None:
    """Refuse an unknown augmentation, one for a model whose input is not an image ``(H, W, C)``, or
    ``flip_translate`` for images too small to shift by a reflected pixel (below 2x2)."""
    if tta is None:
        return
    if not isinstance(tta, str) or tta not in TTA_MODES:
        raise AugmentationError(f"unknown tta {tta!r}; expected {', '.join(TTA_MODES)} (or none)"[:200])
    if len(input_shape) != 3:
        raise AugmentationError(f"tta '{tta}' transforms images: it needs a model whose input is an image "
                                f"(height, width, channels), not {tuple(input_shape)}")
    if tta == "flip_translate" and min(input_shape[:2]) < 2:
        raise AugmentationError(f"tta 'flip_translate' shifts images by a pixel, reflecting the border: it needs "
                                f"images of at least 2x2, not {input_shape[0]}x{input_shape[1]}; use tta 'flip'")


def with_tta(model: nn.Module, tta: str | None) -> nn.Module:
    """``model`` itself without augmentation (``tta=None``), else it wrapped to average the views."""
    check_tta(tta, tuple(model.info.input_shape))
    return model if tta is None else ViewAveraged(model, tta)
