"""``model.compile(optimizer, loss, metrics)`` with Keras' names, checked against the labels at fit."""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnlab.engine.config import ConfigError
from cnnlab.engine.inputs import InputError, Labels

LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy")
METRICS = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy")


@dataclass(frozen=True)
class Compiled:
    """What compile() set: training options from the optimizer, and the loss's label format (None: either)."""

    options: dict = field(default_factory=dict)
    loss: str | None = None
    metric: str = "accuracy"  # the accuracy's name in the logs and History, as given: tf.keras' "acc" stays "acc"

    def check_labels(self, labels: Labels, name: str = "y") -> None:
        """Keras refuses labels that do not match the loss's format; so does cnnlab, saying which to use."""
        if self.loss == "categorical_crossentropy" and labels.one_hot_width is None:
            raise InputError(f"{name}: loss 'categorical_crossentropy' expects one-hot labels (N, K), got class "
                             "indices; use loss='sparse_categorical_crossentropy' or cnnlab.utils.to_categorical(y)")
        if self.loss == "sparse_categorical_crossentropy" and labels.one_hot_width is not None:
            raise InputError(f"{name}: loss 'sparse_categorical_crossentropy' expects class indices (N,), got "
                             "one-hot rows; use loss='categorical_crossentropy'")


def compile_options(optimizer="adam", loss=None, metrics=None, **unsupported) -> Compiled:
    """Validate compile()'s arguments (Keras' names) into a :class:`Compiled`."""
    from cnnlab import optimizers

    if unsupported:
        key = sorted(unsupported)[0]
        raise ConfigError(f"compile: argument '{key}' is not supported; compile takes optimizer, loss, metrics")
    return Compiled(optimizers.get(optimizer).options(), _loss(loss), check_metrics(metrics))


def _loss(loss) -> str | None:
    if loss is None:
        return None
    name = loss.lower() if isinstance(loss, str) else None
    if name not in LOSSES:
        raise ConfigError(f"compile: unsupported loss {loss!r}; cnnlab trains with cross-entropy: "
                          f"{' or '.join(LOSSES)}")
    return name


def check_metrics(metrics) -> str:
    """Accuracy is the metric cnnlab reports; anything else is refused by name. Returns the name its
    logs take, as Keras names them after the metric given (``"acc"`` gives ``acc`` and ``val_acc``)."""
    names = [metrics] if isinstance(metrics, str) else list(metrics or [])
    for metric in names:
        if not isinstance(metric, str) or metric.lower() not in METRICS:
            raise ConfigError(f"compile: unsupported metric {metric!r}; cnnlab reports loss and accuracy "
                              "(metrics=['accuracy'])")
    return names[0] if names else "accuracy"
