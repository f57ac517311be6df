"""Keras' weights inside an HDF5 file, by layer name, read only as far as is safe, and set into cnnlab's module.

Two layouts: Keras 3's (``model.weights.h5`` in a ``.keras`` zip, and ``.weights.h5``): a group
``layers/<path>/vars`` per layer, its attribute ``name`` the layer's name, its datasets ``0``, ``1``...
in the order of the layer's weights; and Keras' legacy ``.h5``: ``model_weights/<layer name>``, its
attribute ``weight_names`` naming the datasets in order. Only hard links are followed (an external
or soft link could open another file), only plain datasets are read (no external storage, no virtual
datasets pointing at other files), and each one's shape is checked before its bytes are read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError


class StoreError(CnnlabError):
    """An HDF5 file whose weights cannot be read safely or do not fit the network; names it."""


def h5_file(source, path: Path):
    """The HDF5 file of an open binary handle (or BytesIO), read-only; a StoreError if it is not one."""
    import h5py

    try:
        return h5py.File(source, "r")
    except (OSError, ValueError):
        raise StoreError(f"{path}: not a readable HDF5 file (damaged or another format)") from None


def _child(group, name: str, path: Path, what: str):
    """``group[name]`` reached through a hard link only; None where it is absent."""
    import h5py

    if name not in group:
        return None
    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise StoreError(f"{path}: {what} is a link to elsewhere ({type(link).__name__}); refused")
    return group[name]


def _read(dataset, shape: tuple[int, ...], path: Path, what: str) -> np.ndarray:
    import h5py

    if not isinstance(dataset, h5py.Dataset):
        raise StoreError(f"{path}: {what} is missing or not an array")
    if dataset.external or dataset.is_virtual:
        raise StoreError(f"{path}: {what} keeps its numbers in another file; refused")
    if tuple(dataset.shape) != tuple(shape):
        raise StoreError(f"{path}: {what} has shape {tuple(dataset.shape)}, the network needs {tuple(shape)}")
    if dataset.dtype.kind != "f":
        raise StoreError(f"{path}: {what} holds {dataset.dtype}, not floating-point numbers")
    return np.asarray(dataset[()], dtype=np.float32)


class KerasStore:
    """Keras 3's layout: ``layers/<path>/vars`` groups found by their ``name`` attribute."""

    def __init__(self, h5, path: Path):
        self.path = path
        self.by_name = {}
        layers = _child(h5, "layers", path, "its layers group")
        for key in (layers.keys() if layers is not None else ()):
            group = _child(layers, key, path, f"layers/{key}")
            variables = _child(group, "vars", path, f"layers/{key}/vars") if hasattr(group, "keys") else None
            name = variables.attrs.get("name") if variables is not None else None
            if isinstance(name, bytes):
                name = name.decode()
            if isinstance(name, str):
                self.by_name[name] = (variables, f"layers/{key}/vars")

    def arrays(self, layer: str, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        """The layer's weights in Keras' order, each of the shape given."""
        if layer not in self.by_name:
            raise StoreError(f"{self.path}: holds no weights for layer '{layer}' (layers are matched by name)")
        group, where = self.by_name[layer]
        if len(group.keys()) != len(shapes):
            raise StoreError(f"{self.path}: layer '{layer}' has {len(group.keys())} weights, the network's "
                             f"{len(shapes)}")
        return [_read(_child(group, str(i), self.path, f"{where}/{i}"), shape, self.path, f"{where}/{i}")
                for i, shape in enumerate(shapes)]


class LegacyStore:
    """Keras' legacy HDF5 layout: ``model_weights/<layer>`` with its ``weight_names`` attribute."""

    def __init__(self, h5, path: Path):
        self.path = path
        self.root = _child(h5, "model_weights", path, "its model_weights group")
        if self.root is None:
            raise StoreError(f"{path}: has no model_weights; not a Keras model saved as HDF5")

    def arrays(self, layer: str, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        group = _child(self.root, layer, self.path, f"model_weights/{layer}")
        if group is None:
            raise StoreError(f"{self.path}: holds no weights for layer '{layer}'")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
        if len(names) != len(shapes):
            raise StoreError(f"{self.path}: layer '{layer}' has {len(names)} weights, the network's {len(shapes)}")
        return [_read(self._dataset(group, name, layer), shape, self.path, f"model_weights/{layer}/{name}")
                for name, shape in zip(names, shapes, strict=True)]

    def _dataset(self, group, name: str, layer: str):
        node = group
        for part in name.split("/"):  # 'sequential/dense/kernel': one hard link at a time
            node = _child(node, part, self.path, f"model_weights/{layer}/{name}") if hasattr(node, "keys") else None
            if node is None:
                return None
        return node


def set_keras_weights(module, store) -> None:
    """Each layer's weights from ``store`` (Keras' arrays by layer name), into cnnlab's torch layout."""
    import torch

    state = module.state_dict()
    for index, info in enumerate(module.info.layers):
        prefix, kind = f"blocks.{index}.", info.layer.definition
        own = {key[len(prefix):] for key in state if key.startswith(prefix) and not key.endswith("num_batches_tracked")}
        if not own:
            continue
        present = [(name, key) for name, key in kind.keras_layout if key in own]
        arrays = store.arrays(info.layer.name, [_keras_shape(kind, name, tuple(state[prefix + key].shape), info)
                                                for name, key in present])
        for (name, key), array in zip(present, arrays, strict=True):
            value = _torch_array(kind, name, array, tuple(state[prefix + key].shape), info, store.path)
            state[prefix + key] = torch.from_numpy(value)
    module.load_state_dict(state)


def _index(kind, name: str, shape: tuple[int, ...], info) -> np.ndarray:
    """Where each of Keras' numbers sits in torch's array: the layer kind's conversion applied to indices
    (every conversion is a rearrangement), so one ``keras_array`` serves both directions."""
    count = int(np.prod(shape, dtype=np.int64))
    return np.asarray(kind.keras_array(name, np.arange(count, dtype=np.float64).reshape(shape), info))


def _keras_shape(kind, name: str, shape: tuple[int, ...], info) -> tuple[int, ...]:
    return _index(kind, name, shape, info).shape


def _torch_array(kind, name: str, array: np.ndarray, shape: tuple[int, ...], info, path: Path) -> np.ndarray:
    where = _index(kind, name, shape, info).astype(np.int64).ravel()
    if not np.array_equal(np.sort(where), np.arange(where.size)):
        raise StoreError(f"{path}: {info.layer.label}'s {name} is not a rearrangement of cnnlab's weights; "
                         "cannot read it back")
    flat = np.empty(where.size, np.float32)
    flat[where] = np.asarray(array, np.float32).ravel()
    return flat.reshape(shape)
