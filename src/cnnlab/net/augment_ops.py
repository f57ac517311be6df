"""Torch modules of the augmentation kinds: random flips, translations, crops and erasing.

Each transforms the whole batch at once on its device (a per-sample mask, offset or
sampling grid; no loop over images), only in training (``module.training``). Randomness
comes from torch's default generator of the input's device, which the run seeds and the
checkpoint saves and restores, so a run resumed from a checkpoint draws what it would have.
Inputs are channels-first ``(N, C, H, W)``; outputs keep the input's memory format.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Keras' fill modes -> grid_sample's padding modes. 'reflect' is Keras' (d c b a | a b c d | d c b a):
# grid_sample's 'reflection' with align_corners=False mirrors about the pixel edges, which is that.
PADDING_MODES = {"reflect": "reflection", "nearest": "border", "constant": "zeros"}


def same_format(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``out`` in ``like``'s memory format (the convolutions after it run fastest channels-last)."""
    if like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous():
        return out.contiguous(memory_format=torch.channels_last)
    return out


def coin(x: torch.Tensor, probability: float) -> torch.Tensor:
    """One True/False per sample, True with ``probability``; shaped (N, 1, 1, 1) to select whole images."""
    return (torch.rand(x.shape[0], device=x.device) < probability).view(-1, 1, 1, 1)


class RandomFlip(nn.Module):
    """Mirror each image left-right and/or top-bottom, each with probability 1/2, independently.

    ``alternating``: the training loop sets ``planned`` before each batch, which images to flip
    (:class:`cnnlab.engine.flips.AlternatingFlips`); a batch without a plan flips at random."""

    def __init__(self, mode: str, alternating: bool = False):
        super().__init__()
        self.dims = {"horizontal": (3,), "vertical": (2,), "horizontal_and_vertical": (3, 2)}[mode]
        self.alternating, self.planned = alternating, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        planned, self.planned = self.planned, None  # a plan is for one batch
        if not self.training:
            return x
        if planned is not None and len(planned) == len(x):
            return same_format(torch.where(planned.view(-1, 1, 1, 1), x.flip(self.dims[0]), x), x)
        out = x
        for dim in self.dims:  # width (3), then height (2): one coin per image for each
            out = torch.where(coin(x, 0.5), out.flip(dim), out)
        return same_format(out, x)


def translate(x: torch.Tensor, shift_h: torch.Tensor, shift_w: torch.Tensor, fill_mode: str = "reflect",
              interpolation: str = "bilinear", fill_value: float = 0.0) -> torch.Tensor:
    """Shift each image by (``shift_h[i]``, ``shift_w[i]``) pixels (fractional allowed; positive moves
    the content down / right), filling the uncovered part as Keras' ``fill_mode`` does."""
    n, _, height, width = x.shape
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # Output pixel j reads input pixel j - shift; in grid_sample's [-1, 1] units a pixel is 2 / size.
    theta[:, 0, 2] = -2.0 * shift_w.float() / width
    theta[:, 1, 2] = -2.0 * shift_h.float() / height
    grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)  # (N, H, W, 2)
    source = x.float()
    if fill_mode == "constant":  # sample x - v with zeros outside, add v back: v outside, blended at edges
        source = source - fill_value
    out = F.grid_sample(source, grid.to(source.dtype), mode=interpolation, padding_mode=PADDING_MODES[fill_mode],
                        align_corners=False)
    if fill_mode == "constant":
        out = out + fill_value
    return same_format(out.to(x.dtype), x)


class RandomTranslation(nn.Module):
    """Shift each image by a random fraction of its size, drawn uniformly in [lower, upper] per axis."""

    def __init__(self, height_factor, width_factor, fill_mode: str, interpolation: str, fill_value: float):
        super().__init__()
        self.height_factor, self.width_factor = tuple(height_factor), tuple(width_factor)
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, fill_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, _, height, width = x.shape
        shift_h = uniform(x, n, self.height_factor) * height
        shift_w = uniform(x, n, self.width_factor) * width
        return translate(x, shift_h, shift_w, self.fill_mode, self.interpolation, self.fill_value)


def uniform(x: torch.Tensor, count: int, bounds: tuple[float, float]) -> torch.Tensor:
    """``count`` numbers uniform in [lower, upper), on ``x``'s device."""
    lower, upper = bounds
    return lower + (upper - lower) * torch.rand(count, device=x.device)


def crop_windows(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The ``height`` x ``width`` window at (``top[i]``, ``left[i]``) of each image, in one gather."""
    rows = top.view(-1, 1) + torch.arange(height, device=x.device)    # (N, h)
    cols = left.view(-1, 1) + torch.arange(width, device=x.device)    # (N, w)
    batch = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1)
    windows = x[batch, :, rows.view(-1, height, 1), cols.view(-1, 1, width)]  # (N, h, w, C)
    return windows.permute(0, 3, 1, 2)  # (N, C, h, w), channels-last in memory


def keras_inference_window(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width): the largest centred window of the target's aspect ratio, as Keras'
    ``smart_resize`` (and RandomCrop at inference) computes it."""
    (height, width), (target_h, target_w) = size, target
    crop_h = max(min(height, int(float(width * target_h) / target_w)), 1)
    crop_w = max(min(width, int(float(height * target_w) / target_h)), 1)
    return int(float(height - crop_h) / 2), int(float(width - crop_w) / 2), crop_h, crop_w


class RandomCrop(nn.Module):
    """Training: a random ``height`` x ``width`` window per image. Inference: Keras' documented
    behaviour, the largest centred window of that aspect ratio, resized (bilinear) to that size."""

    def __init__(self, input_size: tuple[int, int], height: int, width: int):
        super().__init__()
        self.input_size, self.height, self.width = tuple(input_size), height, width
        self.window = keras_inference_window(self.input_size, (height, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._random(x) if self.training else self._centre(x)

    def _random(self, x: torch.Tensor) -> torch.Tensor:
        n, (slack_h, slack_w) = x.shape[0], (self.input_size[0] - self.height, self.input_size[1] - self.width)
        top = torch.randint(0, slack_h + 1, (n,), device=x.device)
        left = torch.randint(0, slack_w + 1, (n,), device=x.device)
        return crop_windows(x, top, left, self.height, self.width)

    def _centre(self, x: torch.Tensor) -> torch.Tensor:
        top, left, crop_h, crop_w = self.window
        out = x[:, :, top:top + crop_h, left:left + crop_w]  # (N, C, crop_h, crop_w)
        if (crop_h, crop_w) != (self.height, self.width):
            out = F.interpolate(out, size=(self.height, self.width), mode="bilinear", align_corners=False,
                                antialias=False)  # TensorFlow's resize: half-pixel centres, no antialiasing
        return same_format(out, x)


def erasing_extent(size: int | float, side: int) -> int:
    """The erased box's side in pixels: a fraction of ``side`` (at least 1 pixel), or pixels up to ``side``."""
    return max(1, round(size * side)) if isinstance(size, float) else min(size, side)


class RandomErasing(nn.Module):
    """Cutout (DeVries & Taylor, 2017): with ``probability``, set a box of ``size`` to ``value``.

    The box's centre is uniform over the image, so near a border part of it falls outside
    (the paper's choice: every pixel is erased equally often). All channels are erased.
    """

    def __init__(self, input_size: tuple[int, int], size: int | float, probability: float, value: float):
        super().__init__()
        self.box = (erasing_extent(size, input_size[0]), erasing_extent(size, input_size[1]))
        self.probability, self.value = probability, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.probability == 0:
            return x
        n, _, height, width = x.shape
        rows = _box_span(x, n, height, self.box[0])  # (N, H): rows inside each image's box
        cols = _box_span(x, n, width, self.box[1])   # (N, W)
        erased = rows[:, :, None] & cols[:, None, :] & coin(x, self.probability).view(-1, 1, 1)  # (N, H, W)
        out = torch.where(erased[:, None], torch.tensor(self.value, dtype=x.dtype, device=x.device), x)
        return same_format(out, x)


def _box_span(x: torch.Tensor, count: int, side: int, extent: int) -> torch.Tensor:
    """Per sample, which of ``side`` positions fall in a run of ``extent`` centred at a uniform position."""
    centre = torch.randint(0, side, (count, 1), device=x.device)
    start = centre - extent // 2
    positions = torch.arange(side, device=x.device)
    return (positions >= start) & (positions < start + extent)
