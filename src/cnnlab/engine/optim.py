"""Optimisers with Keras' defaults, and per-step learning-rate schedules."""

from __future__ import annotations

import torch

from cnnlab.engine.config import TrainConfig

KERAS_EPSILON = 1e-7
KERAS_ADAMW_DECAY = 0.004


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """adam and adamw with Keras' epsilon 1e-7; sgd with optional momentum / nesterov."""
    params = list(params)
    # One fused kernel for every parameter: on a 2-core CPU this halves the MLP's step time.
    fused = {"fused": True}
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999), eps=KERAS_EPSILON, **fused)
    if config.optimizer == "adamw":
        decay = KERAS_ADAMW_DECAY if config.weight_decay is None else config.weight_decay
        return torch.optim.AdamW(params, lr=config.lr, eps=KERAS_EPSILON, weight_decay=decay, **fused)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def make_schedule(optimizer, config: TrainConfig, steps_per_epoch: int):
    """None for a constant rate; else a scheduler stepped once per training step."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    return None
