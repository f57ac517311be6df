"""The one shape every dataset source yields, and helpers to feed it to a network."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from cnnlab.errors import CnnlabError


class DatasetError(CnnlabError):
    """A dataset that cannot be found, fetched, verified or read; names the file or URL."""


@dataclass
class Dataset:
    """uint8 images ``(N, H, W, C)``, integer labels and class names, as train and test parts.

    ``identity`` says where the data came from (source, location, sha256 and whether
    it was verified); ``notes`` lists what loading did (conversions, skipped files).
    """

    name: str
    class_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    identity: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _content_sha256: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        # With one class every prediction is right: training "reaches" accuracy 1.0 and means nothing.
        where = f"dataset '{self.name}'" + (f" ({self.identity['location']})" if "location" in self.identity else "")
        if len(self.class_names) < 2:
            raise DatasetError(f"{where} has {len(self.class_names)} class(es) {list(self.class_names)}; "
                               "a classifier needs at least two")
        present = np.unique(np.asarray(self.y_train))
        if present.size < 2:
            raise DatasetError(f"{where}: its training part holds images of "
                               f"{'one class only' if present.size else 'no class'}; a classifier needs "
                               "at least two")

    def __iter__(self):
        """Unpacks as Keras' ``load_data()`` result: ``(x_train, y_train), (x_test, y_test)``.

        The images stay uint8 in 0..255 and the labels integers ``(N,)``, as Keras gives them;
        ``fit`` scales uint8 images itself, and ``to_categorical`` takes the labels.
        """
        return iter(((self.x_train, self.y_train), (self.x_test, self.y_test)))

    def __repr__(self) -> str:
        return (f"<Dataset {self.name!r}: {len(self.y_train):,} train / {len(self.y_test):,} test images "
                f"{'x'.join(map(str, self.image_shape))}, {self.num_classes} classes>")

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(f"<tr><td>{escape(name)}</td><td>{train:,}</td><td>{test:,}</td></tr>"
                       for (name, train), test in zip(self.per_class(self.y_train).items(),
                                                      self.per_class(self.y_test).values()))
        return (f"<p><b>{escape(self.name)}</b>: {len(self.y_train):,} train / {len(self.y_test):,} test images "
                f"of {'x'.join(map(str, self.image_shape))}, {self.num_classes} classes</p>"
                f"<table><tr><th>class</th><th>train</th><th>test</th></tr>{rows}</table>")

    def content_sha256(self) -> str:
        """sha256 of the decoded images and labels, train then test (computed once): a byte-identical
        copy of a folder matches whatever its files' dates, which the source's own hash may include.

        A memory-mapped array is hashed in chunks, its pages released as they are hashed, so hashing a
        dataset larger than RAM neither copies it nor leaves it resident."""
        from cnnlab.data.pages import byte_chunks

        if self._content_sha256 is None:
            digest = hashlib.sha256()
            for array in (self.x_train, self.y_train, self.x_test, self.y_test):
                array = np.asanyarray(array)  # a memmap stays one
                digest.update(f"{array.dtype.str}{array.shape}".encode())
                for chunk in byte_chunks(array):  # no copy of the pixels
                    digest.update(chunk)
            self._content_sha256 = digest.hexdigest()
        return self._content_sha256

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of 'train' or 'test'."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "test":
            return self.x_test, self.y_test
        raise DatasetError(f"unknown split '{name}'; expected 'train' or 'test'")

    def per_class(self, labels: np.ndarray) -> dict[str, int]:
        counts = np.bincount(labels, minlength=self.num_classes)
        return {name: int(count) for name, count in zip(self.class_names, counts)}

    def info(self) -> dict:
        """What ``cnnlab data info --json`` prints."""
        return {
            "name": self.name,
            "classes": list(self.class_names),
            "image_shape": list(self.image_shape),
            "train": {"count": int(len(self.y_train)), "per_class": self.per_class(self.y_train)},
            "test": {"count": int(len(self.y_test)), "per_class": self.per_class(self.y_test)},
            "source": self.identity,
            "notes": list(self.notes),
        }


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images to float32 in [0, 1]."""
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Integer labels ``(N,)`` to float32 one-hot rows ``(N, num_classes)``."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    out = np.zeros((labels.shape[0], num_classes), dtype=np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out
