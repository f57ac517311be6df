"""Data-aware initialisation: layers whose first weights come from the training data.

A convolution with ``kernel_initializer: patch_whitening`` starts as a whitening of the
patches it sees: its filters are the eigenvectors of the patches' covariance, each scaled
by ``1 / sqrt(eigenvalue + eps)`` and used with both signs, so its outputs are decorrelated
with unit variance (the first layer of airbench, Jordan 2024; kept frozen there and in
``fast``). The patches are what reaches the layer: the training images passed through the
layers before it in inference mode (augmentation is the identity there).

Runs once, on a freshly built model (:attr:`SpecModel.fresh`): loaded or trained weights are
never replaced. Deterministic: the first :data:`SAMPLE_IMAGES` training images, in order.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch.nn import functional as F

from cnnlab.engine.batches import as_batches

SAMPLE_IMAGES = 10_000   # enough for a 2x2x3 (12-dimensional) covariance; bounded work and memory
INPUT_BUDGET = 2**20     # input values per forward pass (341 CIFAR images)
PATCH_BUDGET = 2**22     # patch values unfolded at once (16 MB as float32), whatever the layer's size
RELATIVE_EPS = 1e-2      # eps as a share of the mean eigenvalue: bounds the gain of near-empty directions
MIN_EPS = 1e-6           # for pixels in [0, 1], far below a real image's patch variance (~0.06)


class _Reached(Exception):
    """Stops the forward pass once the layer being initialised has seen its input."""


def initialise_from_data(model: torch.nn.Module, images) -> int:
    """Set every data-initialised layer of a fresh ``model`` from ``images`` (cnnlab's image batches
    or a float tensor ``(N, C, H, W)``); returns how many were set. Layers are set in order, so
    a later one sees the earlier ones' new weights."""
    targets = [module for module in model.modules() if getattr(module, "data_init", None)]
    if not targets or not getattr(model, "fresh", True):
        return 0
    was_training = model.training
    model.eval()
    try:
        for module in targets:
            moments = _patch_moments(model, module, images)
            if moments is not None:  # no images: the layer keeps its glorot kernel
                _whiten(module, moments)
    finally:
        model.train(was_training)
    model.fresh = False
    return len(targets)


@torch.no_grad()
def _patch_moments(model, module, images) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Mean ``(D,)`` and covariance ``(D, D)`` (float64) of the kh x kw patches reaching ``module``."""
    conv = module.conv
    total, outer, count = None, None, 0

    def capture(_, inputs):
        nonlocal total, outer, count
        x = inputs[0].float()                                                      # (N, C, H, W)
        per_image = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1] * x.shape[2] * x.shape[3]
        for part in x.split(max(1, PATCH_BUDGET // per_image)):
            patches = F.unfold(part, conv.kernel_size, dilation=conv.dilation)     # (n, D, L)
            flat = patches.transpose(1, 2).reshape(-1, patches.shape[1]).double()  # (n*L, D)
            total = flat.sum(0) if total is None else total + flat.sum(0)
            outer = flat.T @ flat if outer is None else outer + flat.T @ flat
            count += flat.shape[0]
        raise _Reached

    images = as_batches(images)
    sample = min(len(images), SAMPLE_IMAGES)
    chunk = max(1, INPUT_BUDGET // max(1, math.prod(images.pixels.shape[1:])))
    handle = module.register_forward_pre_hook(capture)
    try:
        for start in range(0, sample, chunk):
            with contextlib.suppress(_Reached):
                model(images.slice(start, min(start + chunk, sample)))  # (n, C, H, W)
    finally:
        handle.remove()
    if not count:
        return None
    mean = total / count
    return mean, outer / count - torch.outer(mean, mean)


@torch.no_grad()
def _whiten(module, moments: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Filters: the eigenvectors, largest variance first, each scaled to unit output variance and
    followed by its negative; a bias, if any, centres the outputs."""
    mean, covariance = moments
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)          # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    # Floored: on constant data (no variance at all) the filters stay finite.
    relative = getattr(module, "whitening_epsilon", RELATIVE_EPS)  # the layer's whitening_epsilon
    eps = max(relative * float(eigenvalues.clamp_min(0).mean()), MIN_EPS)
    scaled = eigenvectors / (eigenvalues.clamp_min(0) + eps).sqrt()    # (D, D): column k is filter k
    weight = module.conv.weight
    filters = torch.stack([sign * scaled[:, k] for k in range(scaled.shape[1]) for sign in (1, -1)])
    filters = filters[:weight.shape[0]]                                 # (F, D)
    weight.copy_(filters.reshape(weight.shape).to(weight.dtype))
    if module.conv.bias is not None:
        module.conv.bias.copy_((-filters @ mean).to(weight.dtype))
