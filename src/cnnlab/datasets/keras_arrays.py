"""A cnnlab dataset as the arrays Keras' ``load_data()`` returns."""

from __future__ import annotations

import numpy as np


def keras_arrays(name: str, **options) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)``: uint8 images and uint8 labels ``(N, 1)``, as Keras gives them."""
    from cnnlab.data import load_dataset

    data = load_dataset(name, **options)
    return ((data.x_train, _column(data.y_train)), (data.x_test, _column(data.y_test)))


def _column(labels: np.ndarray) -> np.ndarray:
    return np.asarray(labels, dtype=np.uint8).reshape(-1, 1)  # Keras' CIFAR-10 labels: (N, 1) uint8
