"""Keras' dataset modules: ``from cnnlab.datasets import cifar10``, then ``cifar10.load_data()``.

Each ``load_data()`` returns ``(x_train, y_train), (x_test, y_test)`` with Keras' shapes and
dtypes: uint8 images ``(N, H, W, C)`` in 0..255 and uint8 labels ``(N, 1)``. The data come
through :func:`cnnlab.load_data` (downloaded once, verified by sha256, cached). ``digits`` is
cnnlab's small offline dataset (8x8 grey scans of handwritten digits) with the same call.
"""

from cnnlab.datasets import cifar10, digits

__all__ = ["cifar10", "digits"]
