"""Keras' file names in ``model.save``, ``save_weights``, ``load_weights`` and ``cnnlab.load_model``.

The suffix decides, as in Keras 3: ``.keras`` is Keras 3's zip and ``.h5``/``.hdf5`` Keras' legacy HDF5
model (written by Keras itself: :mod:`cnnlab.export.keras_file`; read by :mod:`cnnlab.runs.keras_file`),
``.weights.h5`` Keras' weights (``save_weights``/``load_weights``). Any other name keeps cnnlab's own
format (``.cnnlab``: one safetensors file, nothing pickled), as before (and such a file, which earlier
versions wrote under Keras' names too, still loads); ``save_weights`` to a ``.keras``
or a ``.h5`` name that is not ``.weights.h5`` is refused, as Keras 3 refuses it.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.runs.keras_file import check_keras_name, cnnlab_format, keras_kind


def save_keras(model, path) -> Path | None:
    """``model.save(path)`` for a Keras name (the file written); None for cnnlab's own format."""
    if keras_kind(path) is None:
        return None
    from cnnlab.export.keras_file import save_keras as save

    return save(model, path)


def save_keras_weights(model, path) -> Path | None:
    """``model.save_weights(path)`` for ``*.weights.h5`` (the file written); None for cnnlab's safetensors."""
    if check_keras_name(path, weights_only=True) is None:
        return None
    from cnnlab.export.keras_file import save_keras_weights as save

    return save(model, path)


def load_keras_weights(module, path) -> bool:
    """``model.load_weights(path)`` from a Keras file (``.weights.h5``, ``.keras``, ``.h5``); False for others."""
    if keras_kind(path, weights=True) is None or cnnlab_format(path):
        return False
    from cnnlab.runs.keras_file import load_keras_weights as load

    load(module, path)
    return True


def read_any_model(path):
    """A :class:`cnnlab.runs.model_file.LoadedModel` from a Keras file, a ``.cnnlab`` file or a run directory."""
    from cnnlab.runs.model_file import read_model

    if keras_kind(path) is not None and not Path(path).is_dir() and not cnnlab_format(path):
        from cnnlab.runs.keras_file import read_keras_model

        return read_keras_model(path)
    return read_model(path)
