"""Keras' metrics for ``model.compile(metrics=[...])``, with Keras' names, arguments and log keys.

``metrics=["accuracy", "top_k_categorical_accuracy", "precision", "recall", "f1_score"]`` or objects
(``TopKCategoricalAccuracy(k=3, name="top3")``, ``Precision()``, ``F1Score(average="macro")``)
log ``top3``/``val_top3`` and so on in ``history.history``, as Keras names them. They are
counted on the device during each epoch and read once at its end (see
:mod:`cnnlab.engine.metric_counts`). A metric object also works alone, as in Keras:
``m.update_state(y_true, y_pred)``, ``m.result()``, ``m.reset_state()``.

Where cnnlab differs: accuracy is always reported (named as ``compile`` names it); labels may
be class indices for every metric (Keras' Precision, Recall and F1Score want one-hot rows);
``sample_weight`` and lists of thresholds are refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cnnlab.engine.config import ConfigError

if TYPE_CHECKING:
    from cnnlab.engine.metric_counts import CountedMetric

# torch is imported where a metric is counted, not on `import cnnlab` (as keras.metrics, at no cost)
ACCURACY_NAMES = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy")
AVERAGES = (None, "micro", "macro", "weighted")  # FBetaScore's, as Keras names them


class Metric:
    """A Keras metric: its ``name`` (the log key) and, for use alone, ``update_state``/``result``/``reset_state``."""

    def __init__(self, name: str):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
        self.name, self._tally = name, None

    def counted(self) -> CountedMetric | None:
        """What the engine counts for it (None: the accuracy the engine always counts)."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Add a batch: ``y_true`` class indices ``(N,)`` or one-hot rows ``(N, K)``; ``y_pred`` ``(N, K)``."""
        import torch

        from cnnlab.engine.metric_counts import MetricTally, TopK

        if sample_weight is not None:
            raise ConfigError(f"{type(self).__name__}.update_state: sample_weight is not supported")
        outputs = torch.as_tensor(np.asarray(y_pred, dtype=np.float32))
        if outputs.ndim != 2:
            raise ConfigError(f"{type(self).__name__}.update_state: y_pred must be (samples, classes), "
                              f"got shape {tuple(outputs.shape)}")
        target = _indices(y_true, outputs.shape)
        if self._tally is None:
            counted = self.counted() or TopK(self.name, 1)
            self._tally = MetricTally([counted], outputs.shape[1], outputs.device, softmax=False)
        self._tally.add(outputs, target)

    def result(self):
        """The value over every batch added since the last reset (0 before any)."""
        if self._tally is None:
            return 0.0
        return self._tally.values()[self.name]

    def reset_state(self) -> None:
        self._tally = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _indices(y_true, shape):
    """The labels as an int64 tensor of class indices ``(N,)``."""
    import torch

    labels = np.asarray(y_true)
    if labels.ndim == 2 and labels.shape == tuple(shape):  # one-hot rows, as Keras' categorical metrics take
        if not np.all((labels == 0) | (labels == 1)) or not np.all(labels.sum(axis=1) == 1):
            raise ConfigError("y_true: rows must be one-hot (a single 1 each); multi-label rows are not supported")
        labels = labels.argmax(axis=1)
    labels = labels.reshape(-1)
    if len(labels) != shape[0] or (labels.size and (labels.min() < 0 or labels.max() >= shape[1])):
        raise ConfigError(f"y_true: expected {shape[0]} class indices in 0..{shape[1] - 1} or one-hot rows")
    return torch.as_tensor(labels.astype(np.int64))


class _Accuracy(Metric):
    """The accuracy the engine always counts, under this object's name."""

    def counted(self):
        return None


class CategoricalAccuracy(_Accuracy):
    """Keras' CategoricalAccuracy: how often the largest output is the label's class."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name)


class SparseCategoricalAccuracy(_Accuracy):
    """Keras' SparseCategoricalAccuracy: CategoricalAccuracy for class-index labels."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name)


class Accuracy(Metric):
    """Keras' Accuracy compares labels and predictions value by value: for a classifier's probabilities it is
    near 0. In compile cnnlab refuses it; use ``"accuracy"`` or :class:`CategoricalAccuracy`."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name)

    def counted(self):
        raise ConfigError("compile: keras.metrics.Accuracy() compares labels with probabilities value by value "
                          "(about 0 for a classifier); use metrics=['accuracy'] or CategoricalAccuracy()")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        if sample_weight is not None:
            raise ConfigError("Accuracy.update_state: sample_weight is not supported")
        same = np.asarray(y_true).reshape(-1) == np.asarray(y_pred).reshape(-1)
        hits, seen = self._tally or (0, 0)
        self._tally = (hits + int(same.sum()), seen + same.size)

    def result(self):
        return _ratio(*self._tally) if self._tally else 0.0


def _ratio(top, bottom) -> float:
    return float(top / bottom) if bottom else 0.0


class TopKCategoricalAccuracy(Metric):
    """Keras' TopKCategoricalAccuracy: how often the label's class is among the ``k`` largest outputs."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(name)
        self.k = _positive_int(type(self).__name__, "k", k)

    def counted(self):
        from cnnlab.engine.metric_counts import TopK

        return TopK(self.name, self.k)


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """Keras' SparseTopKCategoricalAccuracy: TopKCategoricalAccuracy for class-index labels."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(k, name)


class Precision(Metric):
    """Keras' Precision: each output above ``thresholds`` (0.5) counts as a yes for its class; the share of
    yes answers that are right, over every class (or ``class_id``'s). ``top_k``: a row's k largest say yes."""

    kind = "precision"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name or self.kind)
        if thresholds is not None and not isinstance(thresholds, (int, float)) or isinstance(thresholds, bool):
            raise ConfigError(f"{type(self).__name__}: thresholds must be one number (a list of thresholds is "
                              f"not supported), got {thresholds!r}")
        if thresholds is not None and not 0 <= thresholds <= 1:
            raise ConfigError(f"{type(self).__name__}: thresholds must lie in [0, 1], got {thresholds}")
        self.thresholds = thresholds
        self.top_k = None if top_k is None else _positive_int(type(self).__name__, "top_k", top_k)
        self.class_id = None if class_id is None else _positive_int(type(self).__name__, "class_id", class_id, 0)

    def counted(self):
        from cnnlab.engine.metric_counts import Confusion

        return Confusion(self.name, self.kind, self.thresholds, self.top_k, self.class_id)


class Recall(Precision):
    """Keras' Recall: the share of each label's yes (its class) that the outputs say yes to (see Precision)."""

    kind = "recall"


class FBetaScore(Metric):
    """Keras' FBetaScore: per class, the F-beta score of the rows' largest outputs (or those above
    ``threshold``) against the labels; ``average`` None (one score per class), "micro", "macro" or "weighted"."""

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name)
        if average not in AVERAGES:
            raise ConfigError(f"{type(self).__name__}: average must be None, 'micro', 'macro' or 'weighted', "
                              f"got {average!r}")
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not beta > 0:
            raise ConfigError(f"{type(self).__name__}: beta must be a positive number, got {beta!r}")
        if threshold is not None and (not isinstance(threshold, float) or not 0 < threshold <= 1):
            raise ConfigError(f"{type(self).__name__}: threshold must be a float in (0, 1], got {threshold!r}")
        self.average, self.beta, self.threshold = average, float(beta), threshold

    def counted(self):
        from cnnlab.engine.metric_counts import FBeta

        return FBeta(self.name, self.average, self.beta, self.threshold)


class F1Score(FBetaScore):
    """Keras' F1Score: FBetaScore with beta 1."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average, 1.0, threshold, name)


def top_k_categorical_accuracy(y_true, y_pred, k=5) -> np.ndarray:
    """Keras' function: per sample, 1.0 where the label's class (one-hot rows) is among the k largest outputs."""
    import torch

    outputs = torch.as_tensor(np.asarray(y_pred, dtype=np.float32))
    target = _indices(y_true, outputs.shape)
    kth = torch.topk(outputs, min(k, outputs.shape[1]), dim=1).values[:, -1:]
    return (outputs.gather(1, target[:, None]) >= kth).float().reshape(-1).numpy()


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5) -> np.ndarray:
    """Keras' function for class-index labels (see :func:`top_k_categorical_accuracy`)."""
    return top_k_categorical_accuracy(y_true, y_pred, k)


# compile's strings, as keras.metrics.get names them
NAMED = {"top_k_categorical_accuracy": TopKCategoricalAccuracy, "sparse_top_k_categorical_accuracy":
         SparseTopKCategoricalAccuracy, "precision": Precision, "recall": Recall, "f1_score": F1Score,
         "fbeta_score": FBetaScore}
FUNCTIONS = {top_k_categorical_accuracy: TopKCategoricalAccuracy,
             sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy}


def get(identifier) -> Metric:
    """The metric object for a name (Keras' strings), one of Keras' metric functions, or an object."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in ACCURACY_NAMES:
        return CategoricalAccuracy(name=identifier)  # logged under the name given: "acc" stays "acc"
    if isinstance(identifier, str) and identifier.lower() in NAMED:
        return NAMED[identifier.lower()](name=identifier.lower())
    if callable(identifier) and identifier in FUNCTIONS:
        return FUNCTIONS[identifier](name=identifier.__name__)
    known = ", ".join((*ACCURACY_NAMES, *NAMED))
    raise ConfigError(f"compile: unsupported metric {_label(identifier)}; cnnlab's metrics are {known}, "
                      "or cnnlab.metrics objects (TopKCategoricalAccuracy, Precision, Recall, F1Score...)")


def _label(identifier) -> str:
    return repr(identifier) if isinstance(identifier, str) else type(identifier).__name__


def _positive_int(owner: str, what: str, value, least: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConfigError(f"{owner}: {what} must be an integer of at least {least}, got {value!r}")
    return value
