"""Checking what a Python user hands to fit/evaluate/predict, before any of it reaches torch.

Arrays come from notebooks in every shape and dtype; a silent mistake here (labels
paired with the wrong images, a one-hot row read as class 0, images left in 0..255)
trains a wrong model without a word. Each check either converts the way a Keras user
expects or raises an :class:`InputError` that names the argument and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlab.errors import CnnlabError


class InputError(CnnlabError, ValueError):
    """An array given to the Python API that cnnlab cannot use as it is; names the argument."""


def _array(value, name: str) -> np.ndarray:
    from cnnlab.data.pages import is_mapped

    try:
        array = value if is_mapped(value) else np.asarray(value)  # a memory-mapped array stays mapped
    except (ValueError, TypeError) as exc:  # ragged nested lists, objects
        raise InputError(f"{name}: not an array of numbers ({exc})") from None
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise InputError(f"{name}: expected numbers, got an array of dtype {array.dtype}")
    if array.ndim == 0 or len(array) == 0:
        raise InputError(f"{name}: empty (shape {array.shape}); give at least one sample")
    return array


def check_images(x, name: str = "x", sample_shape: tuple[int, ...] | None = None,
                 raw_pixels: bool = False) -> np.ndarray:
    """Images ``(N, H, W, C)`` or vectors ``(N, D)``: uint8, integers in 0..255, or floats.

    Integer pixels in 0..255 become uint8 (scaled to [0, 1] later, as uint8 always is);
    floats pass as they are, unless they look like unscaled 0..255 pixels and the network
    does not scale them itself (``raw_pixels``: it begins with ``Rescaling(1./255)``). With
    ``sample_shape`` (the model's input), each sample must have it, and a single sample
    without the batch axis gets one, as Keras' predict takes it.
    """
    if sample_shape is not None and np.shape(x) == tuple(sample_shape):
        x = np.asarray(x)[None]
    array = _array(x, name)
    if sample_shape is not None and array.shape[1:] != tuple(sample_shape):
        raise InputError(f"{name}: each sample must have shape {tuple(sample_shape)} (the model's input), "
                         f"got {array.shape[1:]} (array shape {array.shape})")
    if array.ndim not in (2, 4):
        hint = "; add a channel axis: x[..., None]" if array.ndim == 3 else ""
        raise InputError(f"{name}: expected images (N, H, W, C) or vectors (N, D), got shape {array.shape}{hint}")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "biu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise InputError(f"{name}: integer images must hold pixels in 0..255, these span {low}..{high}")
        return array.astype(np.uint8)
    if not np.isfinite(array).all():
        raise InputError(f"{name}: holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low >= 0 and 1.5 < high <= 255 and not raw_pixels:
        raise InputError(f"{name}: float images reach {high:g}: they look like unscaled 0..255 pixels; "
                         "divide by 255 (or pass them as uint8, which cnnlab scales)")
    return array


@dataclass(frozen=True)
class Labels:
    """Class indices ``(N,)`` and, for one-hot labels, how many columns they had."""

    indices: np.ndarray
    one_hot_width: int | None = None

    def class_count(self, name: str = "y") -> int:
        """How many outputs these labels ask for (building a preset's head from them).

        Labels such as {0, 1, 99} would build 100 outputs for 3 classes: refused, saying so.
        """
        if self.one_hot_width is not None:
            return self.one_hot_width
        present, declared = len(np.unique(self.indices)), int(self.indices.max()) + 1
        if present * 2 < declared:
            raise InputError(f"{name}: {present} distinct labels up to {declared - 1}, so {declared} outputs "
                             f"would be built; number the classes 0..{present - 1}")
        return declared


def check_labels(y, count: int, name: str = "y") -> Labels:
    """Integer labels ``(N,)`` or ``(N, 1)``, or one-hot rows ``(N, K)``, for ``count`` images."""
    array = _array(y, name)
    if len(array) != count:
        raise InputError(f"{name}: {len(array):,} labels for {count:,} images; they must pair one to one")
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]  # (N, 1) class indices, as Keras' sparse labels often come
    if array.ndim == 2:
        return Labels(_one_hot(array, name), array.shape[1])
    if array.ndim != 1:
        raise InputError(f"{name}: expected class indices (N,) or one-hot rows (N, K), got shape {array.shape}")
    if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array == np.round(array)).all()):
        raise InputError(f"{name}: class indices must be whole numbers; got fractional or NaN labels")
    indices = array.astype(np.int64)
    if indices.min() < 0:
        raise InputError(f"{name}: class indices must be 0 or more, got {int(indices.min())}")
    return Labels(indices)


def _one_hot(array: np.ndarray, name: str) -> np.ndarray:
    rows_ok = np.isin(array, (0, 1)).all() and (array.sum(axis=1) == 1).all()
    if not rows_ok:
        raise InputError(f"{name}: a 2-D label array must be one-hot (each row a single 1); "
                         "for class indices pass shape (N,)")
    return array.argmax(axis=1).astype(np.int64)


def check_classes(labels: Labels, outputs: int, name: str = "y") -> None:
    """The labels must fit the model's output units (and one-hot rows must be as wide)."""
    if labels.one_hot_width is not None and labels.one_hot_width != outputs:
        raise InputError(f"{name}: one-hot rows have {labels.one_hot_width} columns but the model has "
                         f"{outputs} outputs")
    if int(labels.indices.max()) >= outputs:
        raise InputError(f"{name}: label {int(labels.indices.max())} does not fit the model's {outputs} outputs "
                         f"(classes 0..{outputs - 1})")
