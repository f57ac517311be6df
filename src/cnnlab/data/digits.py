"""scikit-learn's bundled 8x8 handwritten digits: a real dataset that needs no network."""

from __future__ import annotations

import numpy as np

from cnnlab.data.dataset import Dataset

DIGITS_TRAIN = 1437  # the first 1,437 images train, the last 360 test (20%)


def load_digits() -> Dataset:
    """1,797 8x8 grayscale digits, pixels 0..16 scaled to uint8 0..255, shape (N, 8, 8, 1).

    The split is fixed: sklearn's first 1,437 images for training and the last 360 for
    test; the classes are interleaved through the file, so both parts hold every digit.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    labels = bunch.target.astype(np.int64)
    identity = {"source": "scikit-learn bundled digits (offline)",
                "location": "sklearn.datasets.load_digits", "sha256": _content_hash(images, labels),
                "verified": "bundled with scikit-learn"}
    return Dataset("digits", [str(d) for d in range(10)], images[:DIGITS_TRAIN], labels[:DIGITS_TRAIN],
                   images[DIGITS_TRAIN:], labels[DIGITS_TRAIN:], identity)


def _content_hash(images: np.ndarray, labels: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
