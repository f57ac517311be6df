"""``model.save("m.keras")``, ``"m.h5"`` and ``model.save_weights("m.weights.h5")``: Keras 3's own files.

Written by Keras itself: the model is built from the Keras export's generated code with its weights
set and checked against cnnlab's predictions (:func:`cnnlab.export.keras_export.keras_model`), then
saved with Keras' public API (``keras.saving.save_model``, ``save_weights``) in a private temporary
folder. Keras writing its own format keeps ``config.json`` exactly what ``keras.saving.load_model``
expects in this Keras version; a copy of Keras' schema kept here would drift from it.

The bytes then reach ``path`` as every file cnnlab keeps does (:func:`cnnlab.files.write_file`:
atomically, never through a link), and only where nothing is there or the file there is one cnnlab
wrote (its mark, :mod:`cnnlab.runs.keras_file`); a user's other file is never replaced. The mark and
cnnlab's own description of the network (spec, class names) ride in ``metadata.json`` of a ``.keras``
file, in the root attributes of an HDF5 one; Keras ignores both, and ``cnnlab.load_model`` reads the
network back exactly (cnnlab's augmentation layers included).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from copy import deepcopy
from pathlib import Path

from cnnlab.export.network import ExportError, Network
from cnnlab.files import check_replaceable, read_regular, write_file
from cnnlab.runs.keras_file import (
    H5_MARK,
    KERAS_MARK,
    MARK_KEY,
    KerasFileError,
    generators_kept,
    keras_kind,
    require,
    written_by_cnnlab,
)
from cnnlab.runs.model_file import MAX_MODEL_BYTES as MAX_SAVED_BYTES  # what Keras wrote: the model, whole


def save_keras(model, path) -> Path:
    """Save a built :class:`cnnlab.Model` as Keras 3 saves it: ``.keras`` (the zip Keras 3 writes) or
    ``.h5`` (Keras' legacy HDF5, which Keras 3 still loads)."""
    path = Path(path)
    kind = keras_kind(path)
    _check_target(path, kind)
    with generators_kept():  # Keras draws each layer's default seed from Python's global generator
        keras_model = _verified(model, path, kind)
        mark = _mark(model)
        if kind == "keras":
            data = _with_metadata(_saved(lambda target: keras_model.save(target), "model.keras"), mark)
        else:
            data = _saved(lambda target: _save_h5(keras_model, target, mark), "model.h5")
    return write_file(path, data, root=path.parent)


def save_keras_weights(model, path) -> Path:
    """The weights as Keras 3's ``.weights.h5`` (what ``keras_model.load_weights`` reads)."""
    path = Path(path)
    _check_target(path, "weights")
    with generators_kept():
        keras_model = _verified(model, path, "weights")
        data = _saved(lambda target: _save_weights(keras_model, target), "model.weights.h5")
    return write_file(path, data, root=path.parent)


def _check_target(path: Path, kind: str) -> None:
    """The packages are there, the folder exists, and ``path`` is free or a file cnnlab wrote as ``kind``."""
    require(kind, path, "save")
    if not path.parent.is_dir():
        raise KerasFileError(f"{path}: the folder {path.parent} does not exist")
    if check_replaceable(path) and not written_by_cnnlab(path, kind):
        raise KerasFileError(f"{path}: exists and is not a file cnnlab wrote; left as it is (choose another name)")


def _verified(model, path: Path, kind: str):
    """The Keras model of ``model``, its predictions checked against cnnlab's; a clear error otherwise."""
    from cnnlab.export.keras_export import keras_model

    module = model._require_module()
    training = module.training
    try:
        built, _ = keras_model(_network(model, module), path)
    except ExportError as exc:
        raise KerasFileError(f"cannot save as a Keras file: {exc}; model.save('{path.stem}.cnnlab') "
                             "saves it in cnnlab's own format") from None
    finally:
        module.train(training)  # ModelCheckpoint saves mid-fit: the module is left as it was
    _compile(built, getattr(model, "_compiled", None))
    return built


LOSSES = {"categorical_crossentropy": "CategoricalCrossentropy", "binary_crossentropy": "BinaryCrossentropy",
          "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy"}


def _compile(keras_model, compiled) -> None:
    """Compile the Keras model as ``model.compile`` was called (optimizer and learning rate, loss, accuracy),
    so that Keras' ``load_model`` gives a compiled model, as for a file Keras saved; left uncompiled where
    compile was not called or its loss has no Keras class. The optimizer's state is not carried over."""
    import keras

    options = compiled.options if compiled is not None else {}
    if compiled is None or compiled.loss not in LOSSES or options.get("optimizer") not in ("adam", "adamw", "sgd",
                                                                                             "rmsprop"):
        return
    arguments = {"from_logits": bool(options.get("from_logits", False))}
    if options.get("label_smoothing"):
        arguments["label_smoothing"] = options["label_smoothing"]
    loss = getattr(keras.losses, LOSSES[compiled.loss])(**arguments)
    optimizer = keras.optimizers.get(options["optimizer"])
    optimizer.learning_rate = options.get("lr", optimizer.learning_rate)
    for name in ("momentum", "nesterov"):
        if name in options and hasattr(optimizer, name):
            setattr(optimizer, name, options[name])
    keras_model.compile(optimizer=optimizer, loss=loss, metrics=[compiled.metric])
    # Built, its (zero) moments are saved too, so Keras' load_model finds the variables it builds and does not
    # warn that it skipped the optimizer's ("... has 10 variables whereas the saved optimizer has 2").
    optimizer.build(keras_model.trainable_variables)


def _network(model, module) -> Network:
    """The model as an export's Network, on the CPU where the check runs: the module itself, or a copy where
    it trains on an accelerator (moving it would move the optimizer's tensors under a running fit)."""
    on_cpu = all(tensor.device.type == "cpu" for tensor in module.state_dict().values())
    copy = module if on_cpu else deepcopy(module).cpu()
    return Network(copy.eval(), model.spec.name, f"model '{model.spec.name}'", True, model.class_names,
                   model.spec.name)


def _mark(model) -> dict:
    return {"format": KERAS_MARK, "spec": model.spec.to_dict(), "class_names": model.class_names}


def _saved(save, name: str) -> bytes:
    """What ``save(target)`` writes at a new path in a private temporary folder (0700, removed after):
    Keras' public API saves to a path, and ``path`` itself must be written only by write_file."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-keras-") as folder:
        target = os.path.join(folder, name)
        save(target)
        return read_regular(target, MAX_SAVED_BYTES, KerasFileError, "Keras file")


def _with_metadata(data: bytes, mark: dict) -> bytes:
    """Keras' ``.keras`` zip with cnnlab's mark added to ``metadata.json``; members stay stored (uncompressed),
    as Keras writes them."""
    source = zipfile.ZipFile(io.BytesIO(data))
    with source, zipfile.ZipFile(io.BytesIO(), "w", zipfile.ZIP_STORED) as target:
        out = target.fp  # the BytesIO: closing the archive writes its directory there and leaves it open
        for member in source.infolist():
            content = source.read(member)
            if member.filename == "metadata.json":
                content = json.dumps({**json.loads(content), MARK_KEY: mark}).encode()
            target.writestr(member, content)
    return out.getvalue()


def _save_h5(keras_model, target: str, mark: dict) -> None:
    import h5py

    keras_model.save(target)  # Keras 3 writes the legacy HDF5 format for a .h5 name
    with h5py.File(target, "r+") as handle:
        handle.attrs[MARK_KEY] = json.dumps({**mark, "format": H5_MARK})


def _save_weights(keras_model, target: str) -> None:
    import h5py

    from cnnlab.runs.keras_file import WEIGHTS_MARK

    keras_model.save_weights(target)
    with h5py.File(target, "r+") as handle:
        handle.attrs[MARK_KEY] = json.dumps({"format": WEIGHTS_MARK})
