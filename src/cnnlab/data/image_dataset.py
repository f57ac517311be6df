"""Keras' ``image_dataset_from_directory``: a ``<class>/*`` folder as batches of (images, labels).

The folder is read through :func:`cnnlab.data.folders.load_image_folder` (decoded once, cached by
content, every file bounded), so the batches are drawn from uint8 arrays in memory: ``fit`` takes
the arrays themselves (:attr:`ImageDataset.images`), which keeps its seeded shuffle and exact
resume, and iterating gives Keras' batches: float32 pixels in 0..255 (as Keras yields them; a
network starts with ``Rescaling(1./255)``, or ``fit`` is given the dataset and scales uint8 itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.data.dataset import DatasetError

LABEL_MODES = ("int", "categorical", "binary", None)
COLOR_MODES = {"rgb": 3, "grayscale": 1}
SUBSETS = ("training", "validation", "both", None)


@dataclass
class ImageDataset:
    """Batches of ``(images, labels)`` over uint8 ``images`` ``(N, H, W, C)`` and class indices ``labels``.

    Iterating yields float32 images ``(B, H, W, C)`` in 0..255 and labels as ``label_mode`` says
    (``int``: int32 ``(B,)``; ``categorical``: float32 one-hot ``(B, K)``; ``binary``: float32 ``(B, 1)``;
    None: images only), reshuffled on every pass when ``shuffle`` is set (from its own generator).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    batch_size: int | None = 32
    label_mode: str | None = "int"
    shuffle: bool = True
    seed: int | None = None
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self._rng = np.random.default_rng(self.seed)

    def __len__(self) -> int:
        """The number of batches in one pass, as ``len(tf.data.Dataset)`` gives it."""
        return 1 if self.batch_size is None else -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator:
        order = self._rng.permutation(len(self.labels)) if self.shuffle else np.arange(len(self.labels))
        size = self.batch_size or 1  # unbatched: one image at a time, without a batch axis
        for start in range(0, len(order), size):
            chosen = order[start:start + size]
            images = self.images[chosen].astype(np.float32)  # (B, H, W, C), 0..255 as Keras yields them
            labels = self._labels(self.labels[chosen])
            if self.batch_size is None:
                images, labels = images[0], None if labels is None else labels[0]
            yield images if labels is None else (images, labels)

    def _labels(self, indices: np.ndarray):
        if self.label_mode == "int":
            return indices.astype(np.int32)
        if self.label_mode == "categorical":
            return np.eye(len(self.class_names), dtype=np.float32)[indices]
        if self.label_mode == "binary":
            return indices.astype(np.float32).reshape(-1, 1)
        return None

    def __repr__(self) -> str:
        return (f"<ImageDataset: {len(self.labels):,} images {'x'.join(map(str, self.images.shape[1:]))}, "
                f"{len(self.class_names)} classes, {len(self)} batches of {self.batch_size}>")


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256), shuffle=True,
                                 seed=None, validation_split=None, subset=None, cache=None):
    """Keras' arguments and meaning: class folders ``directory/<class>/*`` in alphabetical order;
    ``validation_split`` with ``subset`` ``"training"``, ``"validation"`` or ``"both"`` (a pair)
    holds out the last fraction after a seeded shuffle, as Keras does (a seed is then required)."""
    _check_arguments(labels, label_mode, color_mode, validation_split, subset, shuffle, seed)
    images, indices, names = _read_folder(Path(directory), COLOR_MODES[color_mode], image_size, cache)
    if class_names is not None:
        images, indices, names = _keep_classes(images, indices, names, list(class_names), directory)
    if label_mode == "binary" and len(names) != 2:
        raise DatasetError(f"{directory}: label_mode='binary' needs exactly 2 classes, found {len(names)}")
    order = np.random.default_rng(seed).permutation(len(indices)) if shuffle and seed is not None else None
    parts = _subsets(len(indices), validation_split, subset, order)

    def dataset(chosen):
        return ImageDataset(images[chosen], indices[chosen], names, batch_size, label_mode, shuffle, seed)

    return tuple(dataset(chosen) for chosen in parts) if subset == "both" else dataset(parts[0])


def _check_arguments(labels, label_mode, color_mode, validation_split, subset, shuffle, seed) -> None:
    if labels != "inferred":
        raise DatasetError("image_dataset_from_directory: labels must be 'inferred' (from the class folders); "
                           "for labels of your own, load the images and fit on arrays")
    if label_mode not in LABEL_MODES:
        raise DatasetError(f"image_dataset_from_directory: label_mode must be 'int', 'categorical', 'binary' or "
                           f"None, got {label_mode!r}")
    if color_mode not in COLOR_MODES:
        raise DatasetError(f"image_dataset_from_directory: color_mode must be 'rgb' or 'grayscale', got "
                           f"{color_mode!r}")
    if subset not in SUBSETS:
        raise DatasetError(f"image_dataset_from_directory: subset must be 'training', 'validation' or 'both', "
                           f"got {subset!r}")
    if validation_split is not None and not (isinstance(validation_split, float) and 0 < validation_split < 1):
        raise DatasetError(f"image_dataset_from_directory: validation_split must be a float between 0 and 1, "
                           f"got {validation_split!r}")
    if (validation_split is None) != (subset is None):
        raise DatasetError("image_dataset_from_directory: give validation_split and subset together")
    if validation_split is not None and shuffle and seed is None:  # Keras' rule: the two subsets must agree
        raise DatasetError("image_dataset_from_directory: with validation_split and shuffling, give a seed so "
                           "the training and validation subsets do not overlap")


def _read_folder(directory: Path, channels: int, image_size, cache) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All of the folder's images, class by class (alphabetical), as uint8 ``(N, H, W, C)`` and indices."""
    from cnnlab.data.folders import load_image_folder

    if (directory / "train").is_dir() and (directory / "test").is_dir():
        raise DatasetError(f"{directory}: has train/ and test/ folders; point image_dataset_from_directory at "
                           "one of them (or use cnnlab.load_data for both)")
    loaded = load_image_folder(directory, cache, channels, tuple(image_size))
    images = np.concatenate([loaded.x_train, loaded.x_test])  # the single tree's two parts, together again
    indices = np.concatenate([loaded.y_train, loaded.y_test]).astype(np.int64)
    by_class = np.argsort(indices, kind="stable")  # Keras' order before any shuffle: class by class
    return images[by_class], indices[by_class], list(loaded.class_names)


def _keep_classes(images, indices, names: list[str], wanted: list[str], directory):
    """Keras' ``class_names``: must name the class folders; their order sets the label indices."""
    if sorted(wanted) != sorted(names):
        raise DatasetError(f"{directory}: class_names must be the class folders {names}, got {wanted}")
    renumber = np.array([wanted.index(name) for name in names])
    relabelled = renumber[indices]
    by_class = np.argsort(relabelled, kind="stable")
    return images[by_class], relabelled[by_class], wanted


def _subsets(count: int, fraction, subset, order) -> list[np.ndarray]:
    """Index arrays for the subsets asked for: the validation part is the last ``int(fraction * count)``."""
    everything = order if order is not None else np.arange(count)
    if fraction is None:
        return [everything]
    held = int(fraction * count)
    training, validation = everything[:count - held], everything[count - held:]
    return {"training": [training], "validation": [validation], "both": [training, validation]}[subset]
