"""Keras' classification losses for ``model.compile(loss=...)``: objects, functions and lowercase names.

``CategoricalCrossentropy`` (one-hot labels), ``SparseCategoricalCrossentropy`` (class indices),
both with Keras' ``from_logits`` and ``label_smoothing``, and ``BinaryCrossentropy`` (one sigmoid
unit, labels 0 or 1); the functions ``categorical_crossentropy``, ``sparse_categorical_crossentropy``
and ``binary_crossentropy``; and those names as strings. Each is a small record of the training
options it stands for: the engine computes the loss in one place
(:class:`cnnlab.engine.steps.Objective`), in training and evaluation alike, with Keras' meaning:
``from_logits=False`` reads the outputs as probabilities (a softmax output's, taken in the stable
log form; any other output normalised to sum 1 and clipped, as Keras does), ``from_logits=True``
reads them as logits (a softmax output's probabilities then get a second softmax, as in Keras).

Calling a loss object, ``CategoricalCrossentropy()(y_true, y_pred)``, gives Keras' value: the
mean over the batch of each sample's loss (times ``sample_weight``, summed and divided by the
batch size). Multi-label binary cross-entropy (several sigmoid units), soft labels, ``reduction``
and ``axis`` other than Keras' defaults are refused by name.
"""

from __future__ import annotations

from cnnlab.engine.config import ConfigError

_DEFAULT_ONLY = {"reduction": "sum_over_batch_size", "axis": -1, "dtype": None, "ignore_class": None}


class Loss:
    """Base class: ``options()`` gives the TrainConfig fields (loss, from_logits, label_smoothing) it sets."""

    name = ""

    def __init__(self, from_logits: bool = False, label_smoothing: float | None = None, name: str | None = None,
                 **kwargs):
        for key, value in kwargs.items():
            if key not in _DEFAULT_ONLY or value != _DEFAULT_ONLY[key]:
                raise ConfigError(f"{type(self).__name__}: argument '{key}'={value!r} is not supported by cnnlab")
        if not isinstance(from_logits, bool):
            raise ConfigError(f"{type(self).__name__}: from_logits must be True or False, got {from_logits!r}")
        self.smoothing_given = label_smoothing is not None  # else a recipe's own smoothing (fast's) stays
        label_smoothing = 0.0 if label_smoothing is None else label_smoothing
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0 <= label_smoothing < 1:
            raise ConfigError(f"{type(self).__name__}: label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.from_logits, self.label_smoothing = from_logits, float(label_smoothing)
        self.display_name = name or self.name

    def options(self) -> dict:
        """The TrainConfig fields: loss and from_logits, and label_smoothing where it was given."""
        smoothing = {"label_smoothing": self.label_smoothing} if self.smoothing_given else {}
        return {"loss": self.name, "from_logits": self.from_logits, **smoothing}

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """Keras' value of this loss on ``y_pred`` (what the model outputs) against ``y_true``."""
        import numpy as np
        import torch

        from cnnlab.engine.steps import Objective, reduce_losses

        outputs = torch.as_tensor(np.asarray(y_pred, dtype=np.float32))
        target = torch.as_tensor(self._indices(np.asarray(y_true), outputs.shape))
        losses = Objective(self.name, self.from_logits, self.label_smoothing, False).sample_losses(outputs, target)
        weights = None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight, dtype=np.float32))
        return float(reduce_losses(losses, weights, None))

    def _indices(self, y_true, shape):
        """Class indices ``(B,)`` of ``y_true`` in this loss's label format."""
        from cnnlab.engine.inputs import check_labels

        labels = check_labels(y_true, shape[0], "y_true")
        if self.name == "categorical_crossentropy" and labels.one_hot_width != shape[1]:
            raise ConfigError(f"{type(self).__name__}: y_true must be one-hot rows of width {shape[1]}")
        return labels.indices

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits}, label_smoothing={self.label_smoothing})"


class CategoricalCrossentropy(Loss):
    """Keras' ``CategoricalCrossentropy``: one-hot labels ``(N, K)``."""

    name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(Loss):
    """Keras' ``SparseCategoricalCrossentropy``: class indices ``(N,)``. ``label_smoothing`` is cnnlab's
    addition (Keras takes none here; the smoothing is the one-hot labels' of the same classes)."""

    name = "sparse_categorical_crossentropy"


class BinaryCrossentropy(Loss):
    """Keras' ``BinaryCrossentropy`` for two classes: one output unit (``Dense(1, activation='sigmoid')``,
    or linear with ``from_logits=True``), labels 0 or 1 ``(N,)`` or ``(N, 1)``; accuracy is Keras' binary
    accuracy. Several units (multi-label) are refused when the model is fitted."""

    name = "binary_crossentropy"

    def _indices(self, y_true, shape):
        from cnnlab.engine.inputs import check_labels

        if shape[1:] != (1,):
            raise ConfigError("BinaryCrossentropy: cnnlab takes one output unit (two classes); multi-label "
                              f"outputs {tuple(shape[1:])} are not supported")
        labels = check_labels(y_true, shape[0], "y_true")
        if labels.indices.max() > 1:
            raise ConfigError("BinaryCrossentropy: y_true must be 0 or 1")
        return labels.indices


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float | None = None):
    """Keras' function: the mean loss of ``y_pred`` against one-hot ``y_true`` (also compile's ``loss=``)."""
    return CategoricalCrossentropy(from_logits, label_smoothing)(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False):
    """Keras' function: the mean loss of ``y_pred`` against class indices ``y_true`` (also compile's ``loss=``)."""
    return SparseCategoricalCrossentropy(from_logits)(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float | None = None):
    """Keras' function: the mean binary loss of one unit ``y_pred`` against 0/1 ``y_true`` (compile's ``loss=``)."""
    return BinaryCrossentropy(from_logits, label_smoothing)(y_true, y_pred)


_BY_NAME = {"categorical_crossentropy": CategoricalCrossentropy, "sparse_categorical_crossentropy":
            SparseCategoricalCrossentropy, "binary_crossentropy": BinaryCrossentropy}
_FUNCTIONS = {categorical_crossentropy: CategoricalCrossentropy,
              sparse_categorical_crossentropy: SparseCategoricalCrossentropy, binary_crossentropy: BinaryCrossentropy}


def get(identifier) -> Loss:
    """A loss from compile's ``loss=``: an object, one of this module's functions, or a name (any case,
    CamelCase class names too: ``"CategoricalCrossentropy"``)."""
    if isinstance(identifier, Loss):
        return identifier
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if isinstance(identifier, str):
        key = identifier.lower()
        for name, cls in _BY_NAME.items():
            if key in (name, cls.__name__.lower()):
                return cls()
    raise ConfigError(f"compile: unsupported loss {identifier!r}; cnnlab trains classifiers with cross-entropy: "
                      f"{', '.join(_BY_NAME)} (names, cnnlab.losses functions or objects such as "
                      "cnnlab.losses.CategoricalCrossentropy(from_logits=True))")


__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "Loss", "SparseCategoricalCrossentropy",
           "binary_crossentropy", "categorical_crossentropy", "get", "sparse_categorical_crossentropy"]
