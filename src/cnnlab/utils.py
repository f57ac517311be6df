"""Keras' utilities that course code calls: ``to_categorical``, ``plot_model``,
``image_dataset_from_directory``."""

from __future__ import annotations

import numpy as np

from cnnlab.data.image_dataset import ImageDataset as ImageDataset  # what image_dataset_from_directory returns
from cnnlab.data.image_dataset import image_dataset_from_directory as image_dataset_from_directory  # Keras' name
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


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=False,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False,
               **kwargs):
    """A picture of the model's graph in ``to_file`` (.png, .svg or .pdf), with Keras' arguments; drawn with
    matplotlib, so neither pydot nor Graphviz is needed. Returns an ``IPython.display`` image where IPython
    is installed (it shows inline in a notebook), else None. ``show_dtype``, ``expand_nested`` and Graphviz's
    ``splines`` change nothing: every layer is float32 and none nests another."""
    from cnnlab.net.resolve import summarize
    from cnnlab.presenters.graph_plot import GraphOptions, graph_figure, save_graph

    options = GraphOptions(bool(show_shapes), bool(show_layer_names), bool(show_layer_activations),
                           bool(show_trainable), rankdir)
    info = summarize(model.spec)  # needs the input shape, as Keras needs a built model
    save_graph(graph_figure(info, options), to_file, dpi)
    return _notebook_image(to_file)


def _notebook_image(path):
    try:
        from IPython import display
    except ImportError:
        return None
    suffix = str(path).lower().rsplit(".", 1)[-1]
    return display.SVG(filename=str(path)) if suffix == "svg" else \
        display.Image(filename=str(path)) if suffix == "png" else None
