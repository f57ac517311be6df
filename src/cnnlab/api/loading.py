"""``cnnlab.load_model``: a :class:`Model` from a file or a run folder."""

from __future__ import annotations

from cnnlab.api.model import Model


def load_model(path, **options) -> Model:
    """A :class:`Model` from a file ``model.save`` wrote (``.cnnlab``, or Keras' ``.keras``/``.h5``: also one
    Keras wrote, of the layer kinds cnnlab has), or from a run directory (``cnnlab train``); ``options`` are
    :class:`Model`'s (``device``, ``seed``...). Read by :mod:`cnnlab.runs.model_file`, as ``cnnlab export``
    and ``cnnlab evaluate`` read models, or :mod:`cnnlab.runs.keras_file`."""
    from cnnlab.api.keras_saving import read_any_model

    loaded = read_any_model(path)
    model = Model(loaded.spec, **options)
    model.module = loaded.module
    model._precision = loaded.precision  # evaluated as `cnnlab evaluate` evaluates a run
    model.class_names = loaded.class_names
    return model
