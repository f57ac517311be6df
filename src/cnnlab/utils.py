"""Keras' utilities that course code calls: ``to_categorical``."""

from __future__ import annotations

import numpy as np

from cnnlab.engine.inputs import InputError
from cnnlab.engine.seeds import set_random_seed as set_random_seed  # Keras' name: makes everything after it repeat


def to_categorical(y, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """One-hot rows ``(N, num_classes)`` from class indices, as ``keras.utils.to_categorical``."""
    labels = np.asarray(y)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])  # Keras also drops a trailing axis of 1
    if labels.size and (labels.dtype.kind not in "iub" or labels.min() < 0):
        raise InputError("to_categorical: expects non-negative integer class indices")
    classes = int(labels.max()) + 1 if num_classes is None and labels.size else num_classes or 0
    if labels.size and labels.max() >= classes:
        raise InputError(f"to_categorical: label {int(labels.max())} does not fit num_classes={classes}")
    return np.eye(classes, dtype=dtype)[labels.reshape(-1)].reshape(*labels.shape, classes)
