"""Reading Keras 3's files into cnnlab: ``cnnlab.load_model("m.keras")`` / ``"m.h5"`` and
``model.load_weights("m.weights.h5")``; and what the writer (:mod:`cnnlab.export.keras_file`) shares.

Which files: ``.keras`` (Keras 3's zip: ``config.json``, ``metadata.json``, ``model.weights.h5``), ``.h5``
(Keras' legacy HDF5 model) and ``.weights.h5`` (Keras 3's weights), named as Keras names them. A file
cnnlab wrote carries cnnlab's spec and class names (see the writer), so it reads back exactly. A
file Keras wrote is read from its ``config.json`` (:mod:`cnnlab.runs.keras_config`): a ``Sequential``
or single-input functional model of the layer kinds cnnlab has; anything else is refused, naming it.

Reading is bounded, and nothing is unpickled or run: the file is opened by
:func:`cnnlab.files.open_regular` and at most :data:`MAX_MODEL_BYTES` long; a ``.keras`` zip must hold
its members stored (as Keras writes them: :func:`cnnlab.formats.check_stored_zip`, no zip bombs) and
its JSON members at most :data:`MAX_JSON_BYTES`; in HDF5 only hard links to plain datasets are
followed (no external links, files or virtual datasets), each dataset's shape is checked before it
is read, and the network is built only once its weights are known to fit (as for ``.cnnlab`` files).
"""

from __future__ import annotations

import importlib
import io
import os
import random
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.files import open_regular
from cnnlab.formats import check_stored_zip, parse_json
from cnnlab.net.spec import parse_spec
from cnnlab.runs.keras_weights_store import set_keras_weights
from cnnlab.runs.model_file import (
    FORMAT_FAMILY,
    MAX_MODEL_BYTES,
    LoadedModel,
    ModelFileError,
    _build_for,
    _metadata,
    _names,
)

MARK_KEY = "cnnlab"  # metadata.json's key / the HDF5 root attribute holding cnnlab's mark
KERAS_MARK, H5_MARK, WEIGHTS_MARK = "cnnlab-keras/1", "cnnlab-keras-h5/1", "cnnlab-keras-weights/1"
MARKS = {"keras": KERAS_MARK, "h5": H5_MARK, "weights": WEIGHTS_MARK}
MAX_JSON_BYTES = 64 * 1024**2
EXTRA = "pip install 'cnnlab[keras]'"


class KerasFileError(ModelFileError):
    """A Keras file (.keras, .h5, .weights.h5) that cannot be written or read; names it and the way out."""


def keras_kind(path, weights: bool = False) -> str | None:
    """Which Keras file a name asks for, told apart by its suffix as Keras does: ``"keras"`` (``*.keras``),
    ``"h5"`` (``*.h5``, ``*.hdf5``: Keras' legacy HDF5 model) and, where ``weights`` (``save_weights`` and
    ``load_weights``), ``"weights"`` (``*.weights.h5``); None for any other name (cnnlab's own format)."""
    name = Path(path).name
    if weights and name.endswith(".weights.h5"):
        return "weights"
    return "keras" if name.endswith(".keras") else "h5" if name.endswith((".h5", ".hdf5")) else None


def require(kind: str, path, action: str) -> None:
    """Refuse, naming the missing package, the extra and ``.cnnlab`` as the way out, where saving (Keras and
    h5py) or reading (h5py) the file ``path`` is not possible here."""
    os.environ.setdefault("KERAS_BACKEND", "torch")  # cnnlab's torch is there; TensorFlow may not be
    for package in (("keras", "h5py") if action == "save" else ("h5py",)):
        try:
            with generators_kept():  # importing Keras draws from Python's global generator
                importlib.import_module(package)
        except Exception:  # ImportError, or a Keras whose backend fails to load
            what = "a Keras file" if kind != "weights" else "Keras weights"
            way_out = (f"or use cnnlab's own format: model.save('{Path(path).stem}.cnnlab')" if action == "save"
                       else "or load a model saved in cnnlab's own format (.cnnlab)")
            raise KerasFileError(f"{path}: {'saving' if action == 'save' else 'reading'} {what} needs the "
                                 f"'{package}' package, which cannot be imported here ({EXTRA}); "
                                 f"{way_out}") from None


def check_keras_name(path, weights_only: bool = False) -> str | None:
    """The Keras kind a name asks ``save`` (or, ``weights_only``, ``save_weights``) for, once the packages it
    needs are there; None for cnnlab's own format. ``save_weights`` to ``.keras``/``.h5`` (not
    ``.weights.h5``) is refused, as Keras 3 refuses it. ``ModelCheckpoint`` asks before training."""
    kind = keras_kind(path, weights=weights_only)
    if kind is None:
        return None
    if weights_only and kind != "weights":
        raise KerasFileError(f"{path}: Keras' weights are saved to a name ending in .weights.h5 (as Keras 3 "
                             "requires; safetensors to any other name); a whole .keras or .h5 model is saved "
                             "by model.save()")
    require(kind, path, "save")
    return kind


@contextmanager
def generators_kept():
    """Give Python's, numpy's and torch's global generators back as they were: Keras draws from Python's
    as it is imported and as it builds a model (each layer's default seed: ``random.randint``), and a save
    must not move the user's random numbers (``ModelCheckpoint`` saves in the middle of fit)."""
    import torch

    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def written_by_cnnlab(path, kind: str) -> bool:
    """Whether ``path`` is a file that cnnlab wrote (its mark says so): one ``save`` may replace. Any of
    cnnlab's marks: save("m.weights.h5") may replace the weights save_weights wrote there, and a Keras name
    may hold cnnlab's own safetensors file (earlier versions wrote ``model.save("m.keras")`` so)."""
    if cnnlab_format(path):
        return True
    try:
        with open_regular(path, "Keras file", KerasFileError, links=False) as handle:
            return _mark(handle, path, kind).get("format") in MARKS.values()
    except (CnnlabError, OSError, ValueError, KeyError):  # unreadable, or not one of cnnlab's
        return False


def cnnlab_format(path) -> str | None:
    """The format of a ``.cnnlab`` model or a ``save_weights`` file at ``path`` (cnnlab's safetensors files,
    which earlier versions wrote under Keras' names too: they are still read as such); None otherwise."""
    from cnnlab.engine.checkpoint import WEIGHTS_FORMAT

    if not os.path.isfile(path):
        return None
    found = str((_metadata(Path(path)) or {}).get("format", ""))
    return found if found.startswith(FORMAT_FAMILY) or found == WEIGHTS_FORMAT else None


def read_keras_model(path, images: int = 1) -> LoadedModel:
    """The network of a ``.keras`` or ``.h5`` file, built and holding its weights, in eval mode."""
    path = Path(path)
    kind = keras_kind(path)
    require(kind, path, "read")
    with _open(path) as handle, _weights_store(handle, path, kind) as (store, mark, config):
        spec = _spec(mark, config, path)
        module = _build_for(spec, path, KerasFileError, images)
        set_keras_weights(module, store)
    classes = _names(mark.get("class_names"))
    outputs = module.info.output_shape[-1]
    if classes is not None and len(classes) != outputs:
        raise KerasFileError(f"{path}: {len(classes)} class names for the network's {outputs} outputs; damaged")
    return LoadedModel(module.eval(), spec, classes, "fp32", f"Keras file {path}", path.stem)


def load_keras_weights(module, path) -> None:
    """Set a built module's weights from a Keras ``.weights.h5`` or ``.keras`` file, layer by layer name."""
    path = Path(path)
    kind = keras_kind(path, weights=True)
    require(kind, path, "read")
    with _open(path) as handle, _weights_store(handle, path, kind) as (store, _, _):
        set_keras_weights(module, store)


def _open(path: Path):
    handle = open_regular(path, "Keras file", KerasFileError)
    size = os.fstat(handle.fileno()).st_size
    if size > MAX_MODEL_BYTES:
        handle.close()
        raise KerasFileError(f"{path}: {size:,} bytes, more than a model file may have ({MAX_MODEL_BYTES:,})")
    return handle


class _weights_store:  # noqa: N801 (a context manager used as a function)
    """``(store, cnnlab's mark or {}, Keras' config or None)`` of an open file; the HDF5 file closes after."""

    def __init__(self, handle, path: Path, kind: str):
        self.handle, self.path, self.kind, self.h5 = handle, path, kind, None

    def __enter__(self):
        from cnnlab.runs.keras_weights_store import KerasStore, LegacyStore, h5_file

        if self.kind == "h5":
            self.h5 = h5_file(self.handle, self.path)
            mark = _json_attr(self.h5, MARK_KEY, self.path)
            return LegacyStore(self.h5, self.path), mark, _json_attr(self.h5, "model_config", self.path) or None
        if self.kind == "weights":
            self.h5 = h5_file(self.handle, self.path)
            return KerasStore(self.h5, self.path), {}, None
        archive = _zip(self.handle, self.path)
        config = parse_json(_member(archive, "config.json", self.path), f"{self.path}: config.json", KerasFileError)
        mark = _metadata_mark(archive, self.path)
        self.h5 = h5_file(io.BytesIO(_member(archive, "model.weights.h5", self.path, MAX_MODEL_BYTES)), self.path)
        return KerasStore(self.h5, self.path), mark, config

    def __exit__(self, *exc):
        if self.h5 is not None:
            self.h5.close()


def _zip(handle, path: Path) -> zipfile.ZipFile:
    check_stored_zip(handle, str(path), KerasFileError)
    return zipfile.ZipFile(handle)


def _member(archive: zipfile.ZipFile, name: str, path: Path, limit: int = MAX_JSON_BYTES) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise KerasFileError(f"{path}: has no {name}; not a Keras 3 .keras file") from None
    if info.file_size > limit:
        raise KerasFileError(f"{path}: its {name} declares {info.file_size:,} bytes, more than {limit:,}; refused")
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise KerasFileError(f"{path}: its {name} holds more than {limit:,} bytes; refused")
    return data


def _metadata_mark(archive: zipfile.ZipFile, path: Path) -> dict:
    if "metadata.json" not in archive.namelist():
        return {}
    metadata = parse_json(_member(archive, "metadata.json", path), f"{path}: metadata.json", KerasFileError)
    mark = metadata.get(MARK_KEY) if isinstance(metadata, dict) else None
    return mark if isinstance(mark, dict) and mark.get("format") == KERAS_MARK else {}


def _json_attr(h5, key: str, path: Path):
    value = h5.attrs.get(key)
    if value is None:
        return {}
    text = value.decode() if isinstance(value, bytes) else str(value)
    if len(text) > MAX_JSON_BYTES:
        raise KerasFileError(f"{path}: its attribute {key} is longer than {MAX_JSON_BYTES:,} bytes; refused")
    parsed = parse_json(text, f"{path}: its {key}", KerasFileError)
    return parsed if isinstance(parsed, dict) else {}


def _mark(handle, path, kind: str) -> dict:
    """cnnlab's mark in an open file (``{}`` without one)."""
    from cnnlab.runs.keras_weights_store import h5_file

    if kind == "keras":
        return _metadata_mark(_zip(handle, Path(path)), Path(path))
    with h5_file(handle, Path(path)) as h5:
        return _json_attr(h5, MARK_KEY, Path(path))


def _spec(mark: dict, config, path: Path):
    """The network: cnnlab's own spec where cnnlab wrote the file, else read from Keras' config."""
    if mark.get("format") in (KERAS_MARK, H5_MARK) and isinstance(mark.get("spec"), dict):
        return parse_spec(mark["spec"], source=str(path))
    from cnnlab.runs.keras_config import spec_from_keras_config

    if not isinstance(config, dict):
        raise KerasFileError(f"{path}: has no model configuration; damaged, or not a Keras model file")
    return parse_spec(spec_from_keras_config(config, str(path)), source=str(path))
