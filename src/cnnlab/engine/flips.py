"""Alternating flips (airbench's derandomised flip): which training images a ``random_flip`` layer
with ``alternating: true`` mirrors in each batch.

Each training image gets one coin, drawn once from the run's seed: in even epochs (the first is
epoch 0) the image is mirrored where its coin says so, in odd epochs where it does not. So every
image is seen both ways in any two epochs in a row, where independent coins show a quarter of
them the same way twice. The plan depends on the seed, the image's index and the epoch alone,
so a resumed run flips as the uninterrupted one would.
"""

from __future__ import annotations

import torch

COIN_STREAM = 0x5F1B  # the coins' generator is seeded apart from the shuffle's (the same seed)


class AlternatingFlips:
    """The ``alternating`` flip layers of a model, and each training image's coin."""

    def __init__(self, layers: list[torch.nn.Module], images: int, seed: int):
        generator = torch.Generator().manual_seed(seed ^ COIN_STREAM)
        self.layers, self.coins = layers, torch.rand(images, generator=generator) < 0.5  # (N,) bool

    def plan(self, indices: torch.Tensor, epoch: int) -> None:
        """Tell each layer which images of the next batch (training-set ``indices``) to mirror."""
        if self.coins.device != indices.device:
            self.coins = self.coins.to(indices.device)
        planned = self.coins[indices] ^ bool(epoch % 2)  # (B,) bool
        for layer in self.layers:
            layer.planned = planned


def alternating_flips(model: torch.nn.Module, images: int, seed: int) -> AlternatingFlips | None:
    """The plan for ``model``'s alternating flip layers over ``images`` training images, or None."""
    layers = [module for module in model.modules() if getattr(module, "alternating", False)]
    return AlternatingFlips(layers, images, seed) if layers else None
