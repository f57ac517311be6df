"""Results by class, with scikit-learn: the confusion matrix and each class's accuracy (its recall).

scikit-learn's ``confusion_matrix`` and ``recall_score`` do the counting. Around them this module
does the two things they do not: a label or prediction outside ``0..classes-1`` is refused
(scikit-learn silently leaves it out of the matrix when ``labels`` is given), and an empty split
gives a matrix of zeros and None for every class (scikit-learn refuses empty inputs). A class with
no images in the split has accuracy None, never 0 or NaN. No torch here: the report can use it.
"""

from __future__ import annotations

import numpy as np


def _checked(values, classes: int, what: str) -> np.ndarray:
    """``values`` as a flat int64 array, every one a class index below ``classes``."""
    array = np.asarray(values).reshape(-1)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must be class indices (integers), got {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= classes):
        raise ValueError(f"{what} must lie in 0..{classes - 1}, found {array.min()}..{array.max()}")
    return array


def _pairs(labels, predictions, classes: int) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _checked(labels, classes, "labels"), _checked(predictions, classes, "predictions")
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    return y_true, y_pred


def confusion(labels, predictions, classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs as a ``(classes, classes)`` array, rows the true class."""
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = _pairs(labels, predictions, classes)
    if not len(y_true):
        return np.zeros((classes, classes), np.int64)
    return confusion_matrix(y_true, y_pred, labels=np.arange(classes))


def per_class_accuracy(labels, predictions, class_names: list[str]) -> dict[str, float | None]:
    """Each class's accuracy on its own images (its recall); None for a class with no images here."""
    from sklearn.metrics import recall_score

    y_true, y_pred = _pairs(labels, predictions, len(class_names))
    if not len(y_true):
        return dict.fromkeys(class_names)
    recall = recall_score(y_true, y_pred, labels=np.arange(len(class_names)), average=None,
                          zero_division=np.nan)
    return {name: None if np.isnan(value) else float(value) for name, value in zip(class_names, recall)}


def classification_report(y_true, y_pred, class_names: list[str]) -> dict:
    """``confusion_matrix`` (a list of rows, rows the true class) and ``per_class_accuracy`` (see above)."""
    matrix = confusion(y_true, y_pred, len(class_names))
    return {"confusion_matrix": matrix.tolist(), "per_class_accuracy": per_class_accuracy(y_true, y_pred, class_names)}
