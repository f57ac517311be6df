"""Muon for convolution kernels, Nesterov SGD for everything else (airbench94_muon's optimiser).

Muon (Jordan et al., 2024) replaces a weight matrix's momentum step by its nearest semi-orthogonal
matrix (a few Newton-Schulz iterations), so every direction of the update moves at the same rate
whatever the gradient's scale. Here it updates the kernels of the convolutions, each seen as a
``(filters, in_channels * kh * kw)`` matrix, and, as in airbench, each such kernel is rescaled to
the Frobenius norm ``sqrt(filters)`` before its step (about unit norm per filter: a batch
normalisation after the convolution makes the network blind to that norm), which takes the place
of weight decay for them. Biases, batch normalisation and dense layers take SGD with decoupled
weight decay, as cnnlab's ``sgd``.

Keras 3's ``Muon`` is another split: Muon for 2-D kernels, AdamW for the rest (convolution kernels
included), and no renormalisation; cnnlab's ``muon`` follows airbench, whose networks it trains.
"""

from __future__ import annotations

import math

import torch

# The quintic iteration's coefficients (Jordan's, Keras' muon_a/b/c): the steepest slope at zero,
# so five steps take every singular value of a unit-norm matrix into about [0.7, 1.2].
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


@torch.no_grad()
def orthogonalise(update: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """About ``U V^T`` of ``update = U S V^T`` (2-D), by Newton-Schulz iterations in float32.

    float32, not bf16 as in Muon's reference: a CPU without bf16 units multiplies bf16 matrices
    many times slower, and these matrices are small (at most a few hundred rows).
    """
    a, b, c = NS_COEFFICIENTS
    x = update.float()
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else x.T                      # (rows, cols), rows <= cols: the Gram matrix is small
    x = x / x.norm().clamp_min(1e-7)            # spectral norm <= Frobenius norm = 1
    for _ in range(steps):
        gram = x @ x.T                          # (rows, rows)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.T).to(update.dtype)


class MuonSGD(torch.optim.Optimizer):
    """Groups with ``muon: True`` take Muon steps (convolution kernels, 4-D); the others SGD with
    decoupled weight decay (``lr * weight_decay * decay_scale`` per step). Each group has its own
    ``lr``, ``momentum`` and ``nesterov``; the momentum buffers are the checkpoint's state."""

    def __init__(self, groups: list[dict], lr: float, momentum: float, nesterov: bool, weight_decay: float):
        defaults = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
                    "muon": False, "decay_scale": 1.0}
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                (self._muon_step if group["muon"] else self._sgd_step)(group, params)
        return loss

    def _direction(self, group: dict, params: list) -> list[torch.Tensor]:
        """Each parameter's momentum direction (Nesterov's look-ahead if asked); buffers start at 0."""
        buffers = []
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buffers.append(state["momentum_buffer"])
        grads = [p.grad for p in params]
        torch._foreach_mul_(buffers, group["momentum"])
        torch._foreach_add_(buffers, grads)
        if group["nesterov"]:
            return torch._foreach_add(grads, buffers, alpha=group["momentum"])
        return buffers

    def _sgd_step(self, group: dict, params: list) -> None:
        shrink = group["lr"] * group["weight_decay"] * group["decay_scale"]
        if shrink:
            torch._foreach_mul_(params, 1 - shrink)  # Keras 3's decoupled decay, before the step
        torch._foreach_add_(params, self._direction(group, params), alpha=-group["lr"])

    def _muon_step(self, group: dict, params: list) -> None:
        for p, direction in zip(params, self._direction(group, params)):
            filters = p.shape[0]
            p.mul_(math.sqrt(filters) / p.norm().clamp_min(1e-12))  # the kernel at norm sqrt(filters)
            step = orthogonalise(direction.reshape(filters, -1))    # (filters, in * kh * kw)
            p.add_(step.view_as(p), alpha=-group["lr"])
