"""The training recipe, with the experiment's defaults, validated before anything runs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from cnnlab.errors import CnnlabError
from cnnlab.net.fields import shown

OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop", "muon")
SCHEDULES = ("constant", "cosine", "linear", "onecycle")
REDUCTIONS = ("sum_over_batch_size", "sum")  # Keras' loss reductions: the batch mean, or its sum
LOOKAHEAD_SCHEDULES = ("constant", "cubic")
DEVICES = ("auto", "cpu", "cuda")
INITS = ("keras", "torch")
PRECISIONS = ("fp32", "bf16", "auto")
LOSSES = ("crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy")
MAX_SEED = 2**63 - 1  # torch's seeds are 64-bit; compare adds the seed index to it


class ConfigError(CnnlabError):
    """A training option out of range; names the option."""


@dataclass
class TrainConfig:
    """Adam lr 0.001, batch 32, 5 epochs, 20% validation: the experiment's recipe by default."""

    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0          # sgd, and muon's sgd part
    nesterov: bool = False         # sgd, and muon's sgd part
    muon_lr: float = 0.1           # muon: the convolution kernels' rate (cnnlab's, from airbench)
    muon_momentum: float = 0.6     # muon: the convolution kernels' Nesterov momentum
    weight_decay: float | None = None  # decoupled, as Keras 3 (adamw: Keras' 0.004 when None)
    l2: float = 0.0                # sgd: Keras' L2 regularizer on every trainable weight (through momentum)
    schedule: str = "constant"
    warmup_epochs: float = 0.0     # linear warm-up from 0 to lr, before any schedule
    warmup_start_factor: float = 0.0  # the warm-up starts at lr times this (torch's LinearLR start_factor)
    schedule_alpha: float = 0.0    # linear/cosine decay ends at lr times this (Keras' CosineDecay alpha)
    bias_lr_scale: float = 1.0     # the biases' learning rate is lr times this (cnnlab's, from airbench)
    label_smoothing: float = 0.0   # Keras' CategoricalCrossentropy(label_smoothing=...)
    loss: str = "crossentropy"     # or a Keras loss compile() names (engine/steps.py: Objective)
    loss_reduction: str = "sum_over_batch_size"  # Keras' reduction: the batch's mean loss, or "sum"
    from_logits: bool = False      # Keras' losses' from_logits (not read by "crossentropy")
    ema_momentum: float | None = None  # Keras' use_ema: evaluation and the final weights use the average
    lookahead_sync_period: int = 0     # Lookahead (Zhang et al. 2019): every k steps the weights move to
    lookahead_slow_step_size: float = 0.5  # slow += step_size * (fast - slow), and fast = slow (0: off)
    lookahead_schedule: str = "constant"   # "cubic": step size 1 -> slow_step_size as (step/total)^3
    drop_remainder: bool = False   # tf.data's batch(drop_remainder=True): no short last batch an epoch
    val_split: float = 0.2
    split_method: str = "stratified"
    seed: int = 0
    device: str = "auto"
    init: str = "keras"
    deterministic: bool = False
    early_stopping: str | None = None  # a metric to monitor, e.g. "val_loss"
    patience: int = 2
    eval_batch_size: int = 1024    # evaluation only: results do not depend on it
    precision: str = "fp32"        # "bf16": autocast, fast where the CPU or GPU has bf16 units
    recipe: str | None = None      # the named recipe these options started from (recorded, shown)

    def validate(self, train_size: int | None = None) -> TrainConfig:
        """Check every option, so a bad one is refused before a run folder or a model exists."""
        self._check_types()
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("eval_batch_size", self.eval_batch_size)
        _non_negative_int("patience", self.patience)
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be an integer from 0 to 2**63 - 1, got {self.seed}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        for name, options in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("device", DEVICES),
                              ("init", INITS), ("precision", PRECISIONS), ("loss", LOSSES),
                              ("split_method", ("stratified", "keras")), ("loss_reduction", REDUCTIONS),
                              ("lookahead_schedule", LOOKAHEAD_SCHEDULES)):
            if getattr(self, name) not in options:
                raise ConfigError(f"unknown {name} '{getattr(self, name)}'; expected one of {', '.join(options)}")
        if not 0 <= self.val_split < 1:
            raise ConfigError(f"val_split must be in [0, 1), got {self.val_split}")
        self._check_optimizer_options()
        self._check_regularisers()
        if self.early_stopping and self.early_stopping not in ("loss", "accuracy", "val_loss", "val_accuracy"):
            raise ConfigError(f"cannot monitor '{self.early_stopping}'; expected loss, accuracy, "
                              "val_loss or val_accuracy")
        if train_size is not None and self.batch_size > train_size:
            raise ConfigError(f"batch_size {self.batch_size} is larger than the training data "
                              f"({train_size} images after the validation split)")
        return self

    def _check_types(self) -> None:
        """Each field's type (a config.json, or a Python caller, can hold anything)."""
        for item in fields(self):
            value, kinds = getattr(self, item.name), _TYPES[item.name]
            if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
                expected = " or ".join("none" if kind is type(None) else kind.__name__ for kind in kinds)
                raise ConfigError(f"{item.name} must be {expected}, got {shown(value)}")

    def _check_optimizer_options(self) -> None:
        """momentum, nesterov and weight_decay: where torch would refuse them, or ignore them unseen."""
        if not 0 <= self.momentum <= 1:
            raise ConfigError(f"momentum must be in [0, 1] (as in Keras), got {self.momentum}")
        if self.optimizer not in ("sgd", "muon") and (self.momentum or self.nesterov):
            raise ConfigError(f"momentum and nesterov apply to the sgd and muon optimizers, not {self.optimizer}")
        if self.nesterov and not self.momentum:
            raise ConfigError("nesterov needs a momentum above 0 (e.g. --momentum 0.9)")
        if self.weight_decay is not None and not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(f"weight_decay must be a non-negative number, got {self.weight_decay}")
        if not (self.l2 >= 0 and math.isfinite(self.l2)):
            raise ConfigError(f"l2 must be a non-negative number, got {self.l2}")
        if self.l2 and self.optimizer != "sgd":
            raise ConfigError(f"l2 (an L2 penalty through the optimizer's momentum) applies to the sgd optimizer, "
                              f"not {self.optimizer}; use weight_decay")
        if not (self.bias_lr_scale > 0 and math.isfinite(self.bias_lr_scale)):
            raise ConfigError(f"bias_lr_scale must be a positive number, got {self.bias_lr_scale}")
        self._check_muon_options()

    def _check_muon_options(self) -> None:
        """muon_lr and muon_momentum: in range, and only where the muon optimizer reads them."""
        if not (self.muon_lr > 0 and math.isfinite(self.muon_lr)):
            raise ConfigError(f"muon_lr must be a positive number, got {self.muon_lr}")
        if not 0 <= self.muon_momentum < 1:
            raise ConfigError(f"muon_momentum must be in [0, 1), got {self.muon_momentum}")
        defaults = (TrainConfig.muon_lr, TrainConfig.muon_momentum)
        if self.optimizer != "muon" and (self.muon_lr, self.muon_momentum) != defaults:
            raise ConfigError(f"muon_lr and muon_momentum apply to the muon optimizer, not {self.optimizer}")

    def _check_regularisers(self) -> None:
        """label_smoothing, warmup and the weight average: ranges Keras allows, and a warm-up that ends."""
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.ema_momentum is not None and not 0 <= self.ema_momentum < 1:
            raise ConfigError(f"ema_momentum must be in [0, 1), got {self.ema_momentum}")
        if not (0 <= self.warmup_epochs < self.epochs and math.isfinite(self.warmup_epochs)):
            raise ConfigError(f"warmup_epochs must be at least 0 and below epochs ({self.epochs}), "
                              f"got {self.warmup_epochs}")
        for name in ("warmup_start_factor", "schedule_alpha"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1] (a fraction of lr), got {getattr(self, name)}")
        self._check_lookahead()

    def _check_lookahead(self) -> None:
        """Lookahead's period, step size and schedule: in range, and the step size only where it is used."""
        _non_negative_int("lookahead_sync_period", self.lookahead_sync_period)
        if not 0 < self.lookahead_slow_step_size <= 1:
            raise ConfigError(f"lookahead_slow_step_size must be in (0, 1], got {self.lookahead_slow_step_size}")
        if self.lookahead_sync_period and self.ema_momentum is not None:
            raise ConfigError("lookahead_sync_period and ema_momentum both average the weights: choose one")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"training options must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown training options: {', '.join(sorted(unknown))}")
        return cls(**data)


_NUMBER = (int, float)
_TYPES = {"epochs": (int,), "batch_size": (int,), "lr": _NUMBER, "optimizer": (str,), "momentum": _NUMBER,
          "nesterov": (bool,), "muon_lr": _NUMBER, "muon_momentum": _NUMBER,
          "weight_decay": (*_NUMBER, type(None)), "schedule": (str,),
          "val_split": _NUMBER, "split_method": (str,), "seed": (int,), "device": (str,), "init": (str,),
          "deterministic": (bool,), "early_stopping": (str, type(None)), "patience": (int,),
          "eval_batch_size": (int,), "precision": (str,), "warmup_epochs": _NUMBER,
          "label_smoothing": _NUMBER, "bias_lr_scale": _NUMBER, "ema_momentum": (*_NUMBER, type(None)),
          "recipe": (str, type(None)), "loss": (str,), "from_logits": (bool,), "l2": _NUMBER,
          "warmup_start_factor": _NUMBER, "schedule_alpha": _NUMBER, "loss_reduction": (str,),
          "lookahead_sync_period": (int,), "lookahead_slow_step_size": _NUMBER, "lookahead_schedule": (str,),
          "drop_remainder": (bool,)}


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _non_negative_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
