"""The training recipe, with the experiment's defaults, validated before anything runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from cnnlab.errors import CnnlabError

OPTIMIZERS = ("adam", "sgd", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda")
INITS = ("keras", "torch")
PRECISIONS = ("fp32", "bf16")


class ConfigError(CnnlabError):
    """A training option out of range; names the option."""


@dataclass
class TrainConfig:
    """Adam lr 0.001, batch 32, 5 epochs, 20% validation: the experiment's recipe by default."""

    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0          # sgd
    nesterov: bool = False         # sgd
    weight_decay: float | None = None  # adamw (Keras' default 0.004 when None)
    schedule: str = "constant"
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

    def validate(self, train_size: int | None = None) -> TrainConfig:
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("eval_batch_size", self.eval_batch_size)
        _non_negative_int("patience", self.patience)
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        for name, options in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("device", DEVICES),
                              ("init", INITS), ("precision", PRECISIONS),
                              ("split_method", ("stratified", "keras"))):
            if getattr(self, name) not in options:
                raise ConfigError(f"unknown {name} '{getattr(self, name)}'; expected one of {', '.join(options)}")
        if not 0 <= self.val_split < 1:
            raise ConfigError(f"val_split must be in [0, 1), got {self.val_split}")
        if self.early_stopping and self.early_stopping not in ("loss", "accuracy", "val_loss", "val_accuracy"):
            raise ConfigError(f"cannot monitor '{self.early_stopping}'; expected loss, accuracy, "
                              "val_loss or val_accuracy")
        if train_size is not None and self.batch_size > train_size:
            raise ConfigError(f"batch_size {self.batch_size} is larger than the training data "
                              f"({train_size} images after the validation split)")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown training options: {', '.join(sorted(unknown))}")
        return cls(**data)


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _non_negative_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
