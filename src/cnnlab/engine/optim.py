"""Optimisers with Keras' defaults, and per-step learning-rate schedules."""

from __future__ import annotations

import math

import torch

from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.engine.muon import MuonSGD

KERAS_EPSILON = 1e-7
KERAS_ADAMW_DECAY = 0.004
KERAS_RMSPROP_RHO = 0.9


class KerasRMSprop(torch.optim.Optimizer):
    """Keras' RMSprop: ``v = rho v + (1 - rho) g^2``, ``w -= lr g / sqrt(v + eps)``.

    torch's RMSprop divides by ``sqrt(v) + eps`` instead, which on small gradients takes
    steps up to ten times larger than Keras' with eps 1e-7; this keeps Keras' rule exactly.
    """

    def __init__(self, params, lr: float, rho: float = KERAS_RMSPROP_RHO, eps: float = KERAS_EPSILON,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay})

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
                param.mul_(1 - group["lr"] * group["weight_decay"])  # Keras 3's decoupled decay, first
                average = state["square_avg"].mul_(group["rho"]).addcmul_(param.grad, param.grad,
                                                                          value=1 - group["rho"])
                param.addcdiv_(param.grad, (average + group["eps"]).sqrt_(), value=-group["lr"])
        return loss


class DecoupledSGD(torch.optim.SGD):
    """Keras 3's SGD with ``weight_decay``: each weight shrinks by ``lr * weight_decay`` before the step.

    torch's SGD adds the decay to the gradient instead (L2), where momentum then multiplies it.
    """

    def __init__(self, params, lr: float, momentum: float, nesterov: bool, weight_decay: float):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov)
        self.decoupled_decay = weight_decay

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            weights = [param for param in group["params"] if param.grad is not None]
            shrink = group["lr"] * self.decoupled_decay * group.get("decay_scale", 1.0)
            torch._foreach_mul_(weights, 1 - shrink)  # one fused op, no sync
        return super().step(closure)


def parameter_groups(model: torch.nn.Module, config: TrainConfig) -> list:
    """The model's parameters as the optimizer takes them: one list, or groups. With
    ``bias_lr_scale``, the normalisation layers' biases (batchnorm's beta) are a group whose learning rate
    is ``lr`` times the scale and whose decay per step is the other weights' (airbench's bias scaler;
    a convolution's or dense layer's bias stays with the other weights, as there);
    with the ``muon`` optimizer, the trainable convolution kernels are a group of Muon steps at
    ``muon_lr`` and ``muon_momentum``. ``lr_scale`` is each group's rate over ``lr`` (schedules and
    ``Model.learning_rate`` keep it)."""
    named = trainable_parameters(model)
    groups = []
    if config.optimizer == "muon":
        kernels = [param for _, param in named if _takes_muon(param)]
        named = [(name, param) for name, param in named if not _takes_muon(param)]
        groups += [{"params": kernels, "muon": True, "lr": config.muon_lr, "lr_scale": config.muon_lr / config.lr,
                    "momentum": config.muon_momentum, "nesterov": True, "weight_decay": 0.0}] if kernels else []
    if config.bias_lr_scale == 1 and not groups:
        return [param for _, param in named]  # one group: the optimizer (and its checkpoint) as before
    norm_biases = {id(module.bias) for module in model.modules()
                   if isinstance(module, torch.nn.modules.batchnorm._NormBase) and module.bias is not None}
    biases = [param for _, param in named if id(param) in norm_biases]
    others = [param for _, param in named if id(param) not in norm_biases]
    scale = config.bias_lr_scale
    groups += [{"params": others, "lr_scale": 1.0, "decay_scale": 1.0}]
    if not biases:  # no normalisation layer: nothing takes the scaled rate
        return groups if len(groups) > 1 else others
    return groups + [{"params": biases, "lr": config.lr * scale, "lr_scale": scale, "decay_scale": 1 / scale}]


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters the optimizer steps: a frozen layer's (``trainable`` false) are left out, so they
    take neither updates nor weight decay. A network with none is refused (Keras would fit it and
    change nothing)."""
    named = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    if not named and any(True for _ in model.parameters()):
        raise ConfigError("the network has no trainable weights: every layer with weights is frozen "
                          "(trainable=False); unfreeze one (layer.trainable = True, or trainable: true in the spec)")
    if not named:
        raise ConfigError("the network has no weights to train: add a layer with weights (dense, conv2d)")
    return named


def carry_state(old: torch.optim.Optimizer, new: torch.optim.Optimizer) -> None:
    """``new`` (the next fit's optimizer) goes on from ``old``: all of its state where both step the same
    parameters in the same groups; otherwise (a layer frozen or unfrozen between the fits) the moments of
    every parameter both step, and each group's learning rate where the groups are the same kinds."""
    def shapes(optimizer):
        return [[id(param) for param in group["params"]] for group in optimizer.param_groups]

    if shapes(old) == shapes(new):
        new.load_state_dict(old.state_dict())
        return
    kinds = [[group.get("muon", False) for group in optimizer.param_groups] for optimizer in (old, new)]
    if kinds[0] == kinds[1]:  # the same groups (muon, others, biases), other members
        for before, after in zip(old.param_groups, new.param_groups):
            after["lr"] = before["lr"]
    for group in new.param_groups:
        for param in group["params"]:
            if param in old.state:
                new.state[param] = old.state[param]


def _takes_muon(param: torch.nn.Parameter) -> bool:
    """A trainable convolution kernel: (filters, in_channels, kh, kw)."""
    return param.ndim == 4 and param.requires_grad


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """Keras' optimizers: adam and adamw with epsilon 1e-7, rmsprop with rho 0.9, sgd with optional
    momentum / nesterov; ``weight_decay`` is decoupled (scaled by the learning rate), as in Keras 3.
    ``muon`` is cnnlab's (airbench's): Muon for convolution kernels, sgd for the rest (engine/muon.py).
    ``params`` is a list of parameters or :func:`parameter_groups`' groups."""
    optimizer = _optimizer(list(params), config)
    for group in optimizer.param_groups:
        if "weight_decay" in group and config.optimizer != "muon" and not config.l2:
            # adamw, rmsprop: a raised learning rate does not raise the decay (muon scales its own)
            group["weight_decay"] *= group.get("decay_scale", 1.0)
    return optimizer


def _optimizer(params: list, config: TrainConfig) -> torch.optim.Optimizer:
    # One fused kernel for every parameter: on a 2-core CPU this halves the MLP's step time.
    fused = {"fused": True}
    decay = config.weight_decay or 0.0
    if config.optimizer == "adamw" or config.optimizer == "adam" and decay:
        # Keras' Adam(weight_decay=wd) is AdamW's rule; adamw alone defaults to Keras' 0.004.
        decay = KERAS_ADAMW_DECAY if config.weight_decay is None else decay
        return torch.optim.AdamW(params, lr=config.lr, eps=KERAS_EPSILON, weight_decay=decay, **fused)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999), eps=KERAS_EPSILON, **fused)
    if config.optimizer == "rmsprop":
        return KerasRMSprop(params, lr=config.lr, weight_decay=decay)
    if config.optimizer == "muon":
        return MuonSGD(params, config.lr, config.momentum, config.nesterov, decay)
    if decay:
        return DecoupledSGD(params, config.lr, config.momentum, config.nesterov, decay)
    if config.l2:
        return _l2_sgd(params, config)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def _l2_sgd(params: list, config: TrainConfig) -> torch.optim.SGD:
    """SGD with Keras' ``L2(l2)`` penalty on every trainable weight: ``l2 * sum(w^2)`` added to the loss,
    so ``2 * l2 * w`` joins the gradient and passes through momentum (torch's SGD ``weight_decay``).
    A group with a raised rate (``bias_lr_scale``) takes a penalty lowered as much, so that each weight
    shrinks by the same share a step (airbench's decoupled hyperparameters)."""
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    for group in groups:
        group["weight_decay"] = 2 * config.l2 * group.get("decay_scale", 1.0)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def make_schedule(optimizer, config: TrainConfig, steps_per_epoch: int):
    """None for a constant rate; else a scheduler stepped once per training step.

    A warm-up (``warmup_epochs``) rises linearly from 0 to ``lr``, then the schedule runs over
    the remaining steps; onecycle's own rise takes the warm-up's length instead of its 30%.
    """
    total = config.epochs * steps_per_epoch
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "onecycle":
        rise = {"pct_start": warmup / total} if warmup else {}
        peaks = [config.lr * group.get("lr_scale", 1.0) for group in optimizer.param_groups]
        # muon keeps each group's momentum (onecycle's cycling would set Muon's 0.6 to 0.85-0.95)
        rise["cycle_momentum"] = config.optimizer != "muon"
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=total, **rise)
    shaped = config.warmup_start_factor or config.schedule_alpha
    if warmup or shaped and config.schedule != "constant":
        factor = WarmupThen(config.schedule, warmup, total, config.warmup_start_factor, config.schedule_alpha)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupThen("linear", 0, total))
    return None


class WarmupThen:
    """The learning-rate factor at a step: a linear rise over ``warmup`` steps from ``start`` (0: from
    nothing), then ``schedule`` (constant, cosine or linear decay) over the rest, down to ``alpha``
    (Keras' CosineDecay ``alpha``: the last rate as a share of ``lr``). A class, not a lambda, so that a
    scheduler's state (its step count) is what a checkpoint holds."""

    def __init__(self, schedule: str, warmup: int, total: int, start: float = 0.0, alpha: float = 0.0):
        self.schedule, self.warmup, self.total, self.start, self.alpha = schedule, warmup, total, start, alpha

    def __call__(self, step: int) -> float:
        if step < self.warmup:  # from 0, the first step already rises; from a start, it begins there
            rise = step / self.warmup if self.start else (step + 1) / self.warmup
            return self.start + (1 - self.start) * rise
        done = (step - self.warmup) / max(self.total - self.warmup, 1)  # 0 -> 1 after the warm-up
        if self.schedule == "cosine":
            return self.alpha + (1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        if self.schedule == "linear":
            return self.alpha + (1 - self.alpha) * max(1.0 - done, 0.0)
        return 1.0
