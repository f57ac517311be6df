"""Optimisers with Keras' defaults, and per-step learning-rate schedules."""

from __future__ import annotations

import torch

from cnnlab.engine.config import TrainConfig

KERAS_EPSILON = 1e-7
KERAS_ADAMW_DECAY = 0.004
KERAS_RMSPROP_RHO = 0.9


class KerasRMSprop(torch.optim.Optimizer):
    """Keras' RMSprop: ``v = rho v + (1 - rho) g^2``, ``w -= lr g / sqrt(v + eps)``.

    torch's RMSprop divides by ``sqrt(v) + eps`` instead, which on small gradients takes
    steps up to ten times larger than Keras' with eps 1e-7; this keeps Keras' rule exactly.
    """

    def __init__(self, params, lr: float, rho: float = KERAS_RMSPROP_RHO, eps: float = KERAS_EPSILON):
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["square_avg"] = torch.zeros_like(param)
                state["step"] += 1
                average = state["square_avg"].mul_(group["rho"]).addcmul_(param.grad, param.grad,
                                                                          value=1 - group["rho"])
                param.addcdiv_(param.grad, (average + group["eps"]).sqrt_(), value=-group["lr"])
        return loss


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """adam and adamw with Keras' epsilon 1e-7; rmsprop with Keras' rho; sgd with optional momentum / nesterov."""
    params = list(params)
    # One fused kernel for every parameter: on a 2-core CPU this halves the MLP's step time.
    fused = {"fused": True}
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999), eps=KERAS_EPSILON, **fused)
    if config.optimizer == "adamw":
        decay = KERAS_ADAMW_DECAY if config.weight_decay is None else config.weight_decay
        return torch.optim.AdamW(params, lr=config.lr, eps=KERAS_EPSILON, weight_decay=decay, **fused)
    if config.optimizer == "rmsprop":
        return KerasRMSprop(params, lr=config.lr)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def make_schedule(optimizer, config: TrainConfig, steps_per_epoch: int):
    """None for a constant rate; else a scheduler stepped once per training step."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    return None
