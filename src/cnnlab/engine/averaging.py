"""An exponential moving average of the weights (Keras' ``use_ema`` / ``ema_momentum``).

After every optimisation step ``average = m * average + (1 - m) * weight`` for each
trainable weight, except the first step, which copies the weights (Keras does the same,
so the average never starts from the initial weights). Evaluation during training and the
final weights use the average; the running statistics of batch normalisation, which do
not train, are the model's own, as Keras keeps them.
"""

from __future__ import annotations

import contextlib

import torch


class WeightAverage:
    """The averaged copies of a model's trainable weights, updated with one fused op per step."""

    def __init__(self, model: torch.nn.Module, momentum: float):
        self.momentum = momentum
        self.steps = 0
        self.averages = [param.detach().clone() for param in _weights(model)]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold the weights after a step into the average (no host sync)."""
        weight = 1.0 if self.steps == 0 else 1.0 - self.momentum
        torch._foreach_lerp_(self.averages, [param.detach() for param in _weights(model)], weight)
        self.steps += 1

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Overwrite the model's trainable weights with the average (Keras' end of ``fit``)."""
        torch._foreach_copy_([param.data for param in _weights(model)], self.averages)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module):
        """The model with the averaged weights inside the block, its own weights after it."""
        own = [param.detach().clone() for param in _weights(model)]
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                torch._foreach_copy_([param.data for param in _weights(model)], own)

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "steps": self.steps, "averages": list(self.averages)}

    def load_state_dict(self, saved: dict) -> None:
        averages = saved["averages"]
        if len(averages) != len(self.averages) or any(
                a.shape != b.shape for a, b in zip(averages, self.averages)):
            raise ValueError("the saved weight average does not match this network")
        self.momentum, self.steps = float(saved["momentum"]), int(saved["steps"])
        with torch.no_grad():
            torch._foreach_copy_(self.averages, [a.to(self.averages[0].device) for a in averages])


def _weights(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [param for param in model.parameters() if param.requires_grad]
