"""Saliency: how much each input pixel moves the explained class's score (works on any network, MLP too).

* ``gradient`` (Simonyan et al., 2014): ``|d logit_c / d x|``, the largest over the colour channels.
* ``integrated_gradients`` (Sundararajan et al., 2017): ``x * mean_alpha d logit_c / d x`` along the straight
  path from a black image (zeros, in the network's input) to ``x``, ``steps`` midpoints; summed over the
  channels, its size.
* ``smoothgrad`` (Smilkov et al., 2017): the gradient map averaged over ``samples`` copies of the image with
  Gaussian noise of ``noise`` times the image's range added (a seeded generator of its own).

Each map is divided by its maximum: ``(N, H, W)`` in [0, 1] (``(N, D)`` for a network on flat vectors).
"""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.engine.inputs import InputError
from cnnlab.explain.network import (
    ClassIndex,
    ModelLike,
    chosen_classes,
    evaluating,
    in_batches,
    network_input,
    predicted,
    real_number,
    resolve_model,
    scaled_to_max,
    to_numpy,
    whole_number,
)

SALIENCY_METHODS = ("gradient", "integrated_gradients", "smoothgrad")


def saliency(model: ModelLike, images: np.ndarray, method: str = "gradient", class_index: ClassIndex = None, *,
             steps: int = 32, samples: int = 25, noise: float = 0.15, seed: int = 0,
             batch_size: int = 64) -> np.ndarray:
    """Saliency maps ``(N, H, W)`` in [0, 1] (``(N, D)`` for flat input).

    Args:
        model: a :class:`cnnlab.Model`, a run folder or a ``.cnnlab`` file.
        images: ``(N, H, W, C)`` (or one image), checked as ``predict`` checks them.
        method: ``"gradient"``, ``"integrated_gradients"`` or ``"smoothgrad"``.
        class_index: ``None`` (each image's predicted class), an index or class name, or one per image.
        steps: integrated gradients' points along the path.
        samples: smoothgrad's noisy copies per image.
        noise: smoothgrad's noise, a share of each image's value range.
        seed: smoothgrad's noise generator (the global generators are never touched).
        batch_size: images per forward and backward pass.
    """
    model = resolve_model(model)
    options = SaliencyOptions.checked(method, steps, samples, noise, seed)
    x = network_input(model, images)
    return to_numpy(saliency_maps(model.module, x, chosen_classes(class_index, len(x), model), options, batch_size))


class SaliencyOptions:
    """A saliency method and its settings, checked once."""

    def __init__(self, method: str, steps: int, samples: int, noise: float, seed: int):
        self.method, self.steps, self.samples, self.noise, self.seed = method, steps, samples, noise, seed

    @classmethod
    def checked(cls, method, steps=32, samples=25, noise=0.15, seed=0) -> SaliencyOptions:
        if method not in SALIENCY_METHODS:
            raise InputError(f"saliency: method must be one of {', '.join(SALIENCY_METHODS)}, got {method!r}"[:200])
        return cls(method, whole_number(steps, "saliency: steps", 1), whole_number(samples, "saliency: samples", 1),
                   real_number(noise, "saliency: noise", 0, 10), whole_number(seed, "saliency: seed", 0, 2**63 - 1))


def saliency_maps(module, x: torch.Tensor, classes: torch.Tensor | None, options: SaliencyOptions,
                  batch_size: int = 64) -> torch.Tensor:
    """The maps of ``options.method`` for the network inputs ``x``, scaled into [0, 1]."""
    done = [0]  # images before this batch: smoothgrad's noise is drawn per image, whatever the batches

    def compute(batch: torch.Tensor, chosen: torch.Tensor | None) -> torch.Tensor:
        chosen = predicted(module, batch) if chosen is None else chosen  # decided on the image itself
        start, done[0] = done[0], done[0] + len(batch)
        if options.method == "gradient":
            return per_pixel(input_gradient(module, batch, chosen))
        if options.method == "integrated_gradients":
            return per_pixel(integrated_gradients(module, batch, chosen, options.steps), signed=True)
        return smoothgrad(module, batch, chosen, options, range(start, done[0]))

    with evaluating(module):
        return scaled_to_max(in_batches(x, classes, compute, batch_size))


def input_gradient(module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``d logit_c / d x``, the shape of ``x``."""
    x = x.detach().requires_grad_(True)
    logits = module(x).float()
    (gradient,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), x)
    return gradient.detach()


def integrated_gradients(module, x: torch.Tensor, classes: torch.Tensor, steps: int) -> torch.Tensor:
    """``x * mean_k grad(alpha_k x)``, alpha the midpoints of ``steps`` equal parts of [0, 1] (baseline 0)."""
    total = torch.zeros_like(x)
    for step in range(steps):
        total += input_gradient(module, x * ((step + 0.5) / steps), classes)
    return x.detach() * total / steps


def smoothgrad(module, x: torch.Tensor, classes: torch.Tensor, options: SaliencyOptions,
               positions: range) -> torch.Tensor:
    """The mean of the gradient maps of ``samples`` noisy copies of ``x``; image ``positions[i]``'s noise comes
    from a generator of its own, seeded from ``options.seed`` and its position (the same in any batch size)."""
    spread = (x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1)).reshape(-1, *[1] * (x.dim() - 1))
    noise = torch.stack([torch.randn((options.samples, *x.shape[1:]), generator=_generator(options.seed, position))
                         for position in positions], dim=1).to(x.device)  # (samples, N, ...)
    total = torch.zeros(x.shape[:1] + x.shape[2:] if x.dim() == 4 else x.shape, device=x.device)
    for sample in noise:
        total += per_pixel(input_gradient(module, x + sample * spread * options.noise, classes))
    return total / options.samples


def _generator(seed: int, position: int) -> torch.Generator:
    """A CPU generator for one image: its seed mixed from ``seed`` and the image's position by numpy's
    SeedSequence (never the global generators)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, position]).generate_state(1)[0]))


def per_pixel(values: torch.Tensor, signed: bool = False) -> torch.Tensor:
    """One value per pixel from ``(N, C, H, W)``: the largest size over the channels, or (``signed``: an
    attribution) the size of their sum; flat ``(N, D)`` values by their size."""
    if values.dim() != 4:
        return values.abs()
    return values.sum(dim=1).abs() if signed else values.abs().amax(dim=1)
