"""``model.compile(optimizer, loss, metrics)`` with Keras' names, checked against the labels at fit."""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnlab.engine.config import ConfigError
from cnnlab.engine.inputs import InputError, Labels, check_classes


@dataclass(frozen=True)
class Compiled:
    """What compile() set: training options from the optimizer, and the loss's label format (None: either)."""

    options: dict = field(default_factory=dict)
    loss: str | None = None
    metric: str = "accuracy"  # the accuracy's name in the logs and History, as given: tf.keras' "acc" stays "acc"
    metrics: tuple = ()  # the other metrics (cnnlab.engine.metric_counts), counted each epoch, logged by name

    def check_labels(self, labels: Labels, name: str = "y") -> None:
        """Keras refuses labels that do not match the loss's format; so does cnnlab, saying which to use."""
        if self.loss == "categorical_crossentropy" and labels.one_hot_width is None:
            raise InputError(f"{name}: loss 'categorical_crossentropy' expects one-hot labels (N, K), got class "
                             "indices; use loss='sparse_categorical_crossentropy' or cnnlab.utils.to_categorical(y)")
        if self.loss == "sparse_categorical_crossentropy" and labels.one_hot_width is not None:
            raise InputError(f"{name}: loss 'sparse_categorical_crossentropy' expects class indices (N,), got "
                             "one-hot rows; use loss='categorical_crossentropy'")
        if self.loss == "binary_crossentropy" and (labels.one_hot_width is not None or labels.indices.max() > 1):
            raise InputError(f"{name}: loss 'binary_crossentropy' expects labels 0 or 1 (N,) or (N, 1) for one "
                             "sigmoid unit; multi-label or one-hot labels are not supported")

    def objective(self, module, smoothing: float = 0.0):
        """The loss evaluate computes, the one fit trains with (:class:`cnnlab.engine.steps.Objective`);
        ``smoothing`` the label smoothing fit trained with, where the compiled loss gives none."""
        from cnnlab.engine.steps import Objective

        return Objective(self.options.get("loss", "crossentropy"), self.options.get("from_logits", False),
                         self.options.get("label_smoothing", smoothing), getattr(module, "softmax_output", True))

    def check_classes(self, labels: Labels, outputs: int, name: str = "y") -> None:
        """The labels against the model's ``outputs`` units: classes that fit, or one unit's 0 and 1."""
        if self.loss != "binary_crossentropy":
            check_classes(labels, outputs, name)

    def check_outputs(self, outputs: int, spec) -> None:
        """The network's output against the loss: binary cross-entropy takes one unit (Keras' two-class
        model); a linear output read as probabilities (``from_logits=False``) is Keras' too, but refused
        here, as it trains on meaningless values: say ``from_logits=True`` or end in a softmax."""
        if self.loss == "binary_crossentropy" and outputs != 1:
            raise InputError(f"loss 'binary_crossentropy': the model has {outputs} outputs; cnnlab supports one "
                             "sigmoid unit (Dense(1, activation='sigmoid')); for several classes use "
                             "categorical_crossentropy (multi-label is not supported)")
        activation = spec.layers[-1].fields.get("activation") if spec is not None else None
        if self.loss is not None and not self.options.get("from_logits") and activation == "linear":
            raise InputError(f"loss '{self.loss}' with from_logits=False reads the outputs as probabilities, but "
                             f"the output layer '{spec.layers[-1].name}' is linear (logits); end it with a "
                             "softmax/sigmoid activation, or give the loss from_logits=True")


def compile_options(optimizer="adam", loss=None, metrics=None, **unsupported) -> Compiled:
    """Validate compile()'s arguments (Keras' names) into a :class:`Compiled`."""
    from cnnlab import losses, optimizers

    if unsupported:
        key = sorted(unsupported)[0]
        raise ConfigError(f"compile: argument '{key}' is not supported; compile takes optimizer, loss, metrics")
    chosen = None if loss is None else losses.get(loss)  # a name, a cnnlab.losses function or object
    options = {**optimizers.get(optimizer).options(), **({} if chosen is None else chosen.options())}
    return Compiled(options, None if chosen is None else chosen.name, *check_metrics(metrics))


def check_metrics(metrics) -> tuple[str, tuple]:
    """``compile(metrics=[...])``: Keras' strings, metric functions or :mod:`cnnlab.metrics` objects.

    Returns the accuracy's log name, as Keras names it after the metric given (``"acc"`` gives ``acc`` and
    ``val_acc``; cnnlab always reports an accuracy: ``"accuracy"`` where none is given), and what the
    engine counts for the others, each logged under its name (``precision``, ``val_precision``).
    """
    from cnnlab import metrics as keras_metrics

    given = list(metrics) if isinstance(metrics, (list, tuple)) else [] if metrics is None else [metrics]
    objects = [keras_metrics.get(metric) for metric in given]
    names = [metric.name for metric in objects]
    twice = next((name for name in names if names.count(name) > 1 or name in ("loss", "learning_rate")), None)
    if twice is not None:
        raise ConfigError(f"compile: {twice!r} would be logged twice; give the metric another name (name=...)")
    accuracies = [metric.name for metric in objects if metric.counted() is None]
    if len(accuracies) > 1:
        raise ConfigError(f"compile: {' and '.join(map(repr, accuracies))} are the same accuracy; cnnlab logs it "
                          "once: give one of them")
    counted = tuple(metric.counted() for metric in objects if metric.counted() is not None)
    return (accuracies[0] if accuracies else "accuracy"), counted
