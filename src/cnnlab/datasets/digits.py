"""``digits.load_data()``: cnnlab's small offline dataset (1,797 8x8 grey digit scans) with Keras' call and
shapes, for trying course code where CIFAR-10 cannot be downloaded."""

from cnnlab.datasets.keras_arrays import keras_arrays


def load_data(**options):
    """``(x_train, y_train), (x_test, y_test)``: uint8 images ``(N, 8, 8, 1)`` and uint8 labels ``(N, 1)``."""
    return keras_arrays("digits", **options)
