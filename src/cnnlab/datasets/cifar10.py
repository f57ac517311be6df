"""``cifar10.load_data()`` as Keras has it: 50,000 train / 10,000 test images 32x32x3 (uint8) and
labels ``(N, 1)`` (uint8), downloaded once from the official archive, verified and cached."""

from cnnlab.datasets.keras_arrays import keras_arrays


def load_data(**options):
    """``(x_train, y_train), (x_test, y_test)``; ``options`` are :func:`cnnlab.load_data`'s (``cache``...)."""
    return keras_arrays("cifar10", **options)
